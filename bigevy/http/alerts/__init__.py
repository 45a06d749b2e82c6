"""The alerts endpoints."""
