"""The AI assistant: chat with an LLM or the offline advisor, screen context, guide, conversations."""
