"""Answering a lilEVY escalation from vetted knowledge, without Ray or HTTP: `service.py`
drives the use case over a retriever and a generator (`ports.py`); the other modules are its
steps (triage, emergency numbers, passages, composing, checks, the cache, SMS fitting)."""
