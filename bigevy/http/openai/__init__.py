"""The openai endpoints."""
