"""The sequencer: mempool, block production every N ms, the exchange engine, the
market-data cache and its reload, trading modes, rollback; persisted to Postgres.

Run with ``python -m l2chaos.stacks.perpdex.sequencer``.
"""
