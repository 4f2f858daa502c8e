"""Talking to the three systems: the resilient HTTP layer, connection profiles, health
probes, the Tryton JSON-RPC codec and one connector per protocol."""
