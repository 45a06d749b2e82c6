"""Tests that need no Ray: each builds the real objects in-process."""
