-- The L2 chain: blocks, transactions, the append-only event log, current state and
-- per-block snapshots. Every block's rows are written in one transaction by the
-- sequencer. Integers everywhere (quote quanta, base quanta, P, funding index x 1e6).

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value jsonb NOT NULL
);

CREATE TABLE blocks (
    seq          bigint PRIMARY KEY,          -- production order, never reused
    number       bigint  NOT NULL,            -- restarts at N+1 after a rollback to N
    hash         text    NOT NULL,
    parent_hash  text    NOT NULL,
    state_root   text    NOT NULL,
    tx_root      text    NOT NULL,
    chain_ts_ns  bigint  NOT NULL,
    host_ts_ns   bigint  NOT NULL,
    tx_count     integer NOT NULL,
    canonical    boolean NOT NULL DEFAULT true,
    mode         text    NOT NULL
);
CREATE UNIQUE INDEX blocks_canonical_number ON blocks (number) WHERE canonical;

CREATE TABLE transactions (
    block_seq  bigint  NOT NULL,
    idx        integer NOT NULL,
    hash       text    NOT NULL,
    block      bigint  NOT NULL,
    kind       text    NOT NULL,
    account    bigint,
    status     text    NOT NULL,             -- accepted | rejected
    reason     text,
    order_id   bigint,
    client_id  text,
    nonce      text,
    body       jsonb   NOT NULL,
    receipt    jsonb   NOT NULL,
    PRIMARY KEY (block_seq, idx)
);
CREATE INDEX transactions_hash ON transactions (hash);

CREATE TABLE events (
    seq          bigint PRIMARY KEY,          -- append-only, never reused
    block        bigint NOT NULL,
    block_seq    bigint NOT NULL,
    host_ts_ns   bigint NOT NULL,
    chain_ts_ns  bigint NOT NULL,
    kind         text   NOT NULL,
    tx           text,
    account      bigint,
    data         jsonb  NOT NULL,
    ledger       jsonb
);
CREATE INDEX events_kind_seq ON events (kind, seq);
CREATE INDEX events_block_seq ON events (block_seq);
CREATE INDEX events_account ON events (account, seq) WHERE account IS NOT NULL;

-- current state (the dust account's cash is in micro-quanta)
CREATE TABLE accounts (
    account            bigint PRIMARY KEY,
    cash               bigint NOT NULL,
    updated_block_seq  bigint NOT NULL
);

CREATE TABLE positions (
    account       bigint NOT NULL,
    market        text   NOT NULL,
    size          bigint NOT NULL,
    cached_index  bigint NOT NULL,
    PRIMARY KEY (account, market)
);

-- the state of every account a block touched, after the block (rollback restores from here)
CREATE TABLE account_snapshots (
    block_seq  bigint NOT NULL,
    block      bigint NOT NULL,
    account    bigint NOT NULL,
    cash       bigint NOT NULL,
    positions  jsonb  NOT NULL,               -- {market: [size, cached_index]}
    PRIMARY KEY (block_seq, account)
);
CREATE INDEX account_snapshots_account ON account_snapshots (account, block_seq DESC);

CREATE TABLE orders (
    order_id           bigint PRIMARY KEY,
    account            bigint  NOT NULL,
    market             text    NOT NULL,
    side               text    NOT NULL,
    type               text    NOT NULL,
    price              bigint,
    size               bigint  NOT NULL,
    remaining          bigint  NOT NULL,
    post_only          boolean NOT NULL,
    reduce_only        boolean NOT NULL,
    client_id          text,
    tx                 text,
    status             text    NOT NULL,      -- open | filled | cancelled
    reason             text,
    created_block_seq  bigint  NOT NULL,
    updated_block_seq  bigint  NOT NULL
);
CREATE INDEX orders_open ON orders (order_id) WHERE status = 'open';
CREATE INDEX orders_account ON orders (account, order_id);

CREATE TABLE fills (
    fill_id      bigint PRIMARY KEY,
    block_seq    bigint NOT NULL,
    block        bigint NOT NULL,
    market       text   NOT NULL,
    price        bigint NOT NULL,
    size         bigint NOT NULL,
    buyer        bigint NOT NULL,
    seller       bigint NOT NULL,
    maker_order  bigint NOT NULL,
    taker_order  bigint NOT NULL,
    maker_fee    bigint NOT NULL,
    taker_fee    bigint NOT NULL
);

CREATE TABLE liquidations (
    event_seq     bigint PRIMARY KEY,
    block_seq     bigint NOT NULL,
    block         bigint NOT NULL,
    account       bigint NOT NULL,
    market        text   NOT NULL,
    size          bigint NOT NULL,
    price         bigint NOT NULL,
    oracle_price  bigint NOT NULL,
    mark_price    bigint NOT NULL,
    fee           bigint NOT NULL
);

CREATE TABLE funding_payments (
    event_seq   bigint PRIMARY KEY,
    block_seq   bigint NOT NULL,
    block       bigint NOT NULL,
    account     bigint NOT NULL,
    market      text   NOT NULL,
    size        bigint NOT NULL,
    index_from  bigint NOT NULL,
    index_to    bigint NOT NULL,
    cash        bigint NOT NULL,
    dust_micro  bigint NOT NULL
);

-- current market data, written by every block from what that block saw
CREATE TABLE market_state (
    market             text PRIMARY KEY,
    index_price        bigint NOT NULL,
    index_ts_ns        bigint NOT NULL,
    mark_price         bigint NOT NULL,
    funding_index      bigint NOT NULL,
    funding_ts_ns      bigint NOT NULL,
    updated_block_seq  bigint NOT NULL
);

-- market data history: a row per block where it changed
CREATE TABLE prices (
    block_seq      bigint NOT NULL,
    block          bigint NOT NULL,
    market         text   NOT NULL,
    index_price    bigint NOT NULL,
    index_ts_ns    bigint NOT NULL,
    mark_price     bigint NOT NULL,
    funding_index  bigint NOT NULL,
    funding_ts_ns  bigint NOT NULL,
    PRIMARY KEY (block_seq, market)
);

-- L1 -> L2 bridge messages consumed on L2 (a nonce is credited at most once)
CREATE TABLE consumed_messages (
    nonce      bigint PRIMARY KEY,
    block_seq  bigint NOT NULL,
    account    bigint NOT NULL,
    amount     bigint NOT NULL
);

CREATE TABLE chain_state (
    id          integer PRIMARY KEY CHECK (id = 1),
    head_seq    bigint NOT NULL,
    head_number bigint NOT NULL,
    head_hash   text   NOT NULL,
    mode        text   NOT NULL
);
