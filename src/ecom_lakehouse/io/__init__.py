"""The edges: finding and reading the raw source files, writing and reading Delta tables."""
