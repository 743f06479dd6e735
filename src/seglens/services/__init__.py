"""Use cases: segment, query, render, prompt; later jobs, history and the assistant."""
