"""The faq endpoints."""
