"""The gateway process: clients' order entry (PROTOCOL §2, §3) in front of the engine.

Pure logic lives in ``sessions`` (sessions, reply order, flood guard), ``ratelimit`` (token
buckets), ``replies`` (replies made here), ``routing`` (engine messages to sessions) and
``dispatch`` (what each request does); ``engine_link`` and ``server`` are the I/O shell;
``python -m gateway`` runs ``server.GatewayApp``.
"""
