"""Routes of bigEVY's backups."""
