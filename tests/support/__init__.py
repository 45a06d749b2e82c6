"""What the tests share: a Ray + Serve per module, PostgreSQL, replayed feeds, fuzzing."""
