-- The bridge's L1 side, in its own schema: the escrow ledger, the messages both ways
-- and the relayer's cursor over L2 events.

CREATE SCHEMA l1;

CREATE TABLE l1.ledger (
    seq         bigserial PRIMARY KEY,
    host_ts_ns  bigint NOT NULL,
    kind        text   NOT NULL CHECK (kind IN ('lock', 'release')),
    nonce       bigint NOT NULL,
    account     bigint NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0)
);
CREATE UNIQUE INDEX l1_ledger_once ON l1.ledger (kind, nonce);

CREATE TABLE l1.messages (
    direction     text    NOT NULL CHECK (direction IN ('l1_to_l2', 'l2_to_l1')),
    nonce         bigint  NOT NULL,
    account       bigint  NOT NULL,
    amount        bigint  NOT NULL,
    -- l1_to_l2: pending -> credited (-> pending again after a rollback)
    -- l2_to_l1: pending -> released, or dropped when its L2 block was orphaned
    status        text    NOT NULL,
    l2_tx         text,
    l2_block      bigint,
    l2_block_seq  bigint,
    attempts      integer NOT NULL DEFAULT 0,
    last_attempt_ns bigint NOT NULL DEFAULT 0,
    created_ns    bigint  NOT NULL,
    updated_ns    bigint  NOT NULL,
    PRIMARY KEY (direction, nonce)
);
CREATE INDEX l1_messages_pending ON l1.messages (direction, nonce) WHERE status = 'pending';

CREATE SEQUENCE l1.deposit_nonce START 1;

CREATE TABLE l1.state (
    id              integer PRIMARY KEY CHECK (id = 1),
    event_cursor    bigint  NOT NULL DEFAULT 0,   -- last L2 event seq processed
    escrow_balance  bigint  NOT NULL DEFAULT 0,   -- what the bridge reports (never trusted)
    genesis_done    boolean NOT NULL DEFAULT false
);
INSERT INTO l1.state (id) VALUES (1);
