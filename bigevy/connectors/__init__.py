"""Data-source connectors: CAP alerts, RSS/Atom news, JSON APIs and a watched folder, each
fetched on its own schedule and delivered to a sink (the knowledge base and alert service).

Build a `ConnectorRunner` from `SourceSpec`s and a `Sink`; call `run_due()` per tick or
`run_forever()`. Nothing here needs Ray. (Import from the modules: the settings import
`spec` without pulling in the knowledge store.)
"""
