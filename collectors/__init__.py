"""Collectors: one module per source; each only parses and normalizes."""
