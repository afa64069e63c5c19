"""Executors: where a collector's commands run (this machine, or a remote one over SSH)."""
