"""Segmentation use cases: segment, query, refine, search, view data, file runs."""
