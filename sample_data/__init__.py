"""Recorded upstream payloads for the tests, and the seeded demo fleet generator."""
