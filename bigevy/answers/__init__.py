"""Answering a lilEVY escalation from vetted knowledge: composing, refusing, checking."""
