"""The exchange's pure domain logic: ledger, books, margin, funding, liquidation and
the state root. No I/O here: the sequencer feeds transactions in and persists what
comes out."""
