"""The contributions endpoints."""
