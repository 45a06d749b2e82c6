"""bigEVY's state saved and brought back: the knowledge base, the metadata database, the
signing key, packages and artifacts, in one checksummed, passphrase-sealed backup."""
