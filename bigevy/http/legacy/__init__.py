"""The legacy endpoints."""
