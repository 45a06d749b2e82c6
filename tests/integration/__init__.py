"""Tests against a real Ray + Serve running the bigEVY app, over HTTP."""
