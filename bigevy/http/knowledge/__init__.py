"""The knowledge endpoints."""
