"""lilEVY: the edge node's client of bigEVY (enrol, heartbeat, escalate, sync, alerts)."""
