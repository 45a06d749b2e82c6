"""The fleet endpoints."""
