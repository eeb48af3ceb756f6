"""An application-level (HTTP / JSON-RPC aware) fault proxy for a stack's links.

Toxiproxy acts on bytes; this proxy acts on messages: a rule (rules.py) answers an error
for one JSON-RPC method, delays, drops or cuts an answer, serves a stale head, rewrites
a field, or answers an HTTP status. It runs as its own process (``python -m
l2chaos.l7proxy``), one listener per link, behind the link's Toxiproxy proxy (client ->
Toxiproxy -> L7 proxy -> service), controlled through a small token-protected HTTP API
(server.py; client.py is the harness side).
"""
