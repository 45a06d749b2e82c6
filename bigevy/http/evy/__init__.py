"""The evy endpoints."""
