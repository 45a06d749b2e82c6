"""The admin endpoints."""
