"""The sync endpoints."""
