-- Core schema: machines, system samples, collector bookkeeping, cursors, alerts skeleton.
-- Events carry `ts`; snapshots carry `collected_at`. Natural keys are PRIMARY KEYs so that
-- INSERT OR IGNORE makes re-ingestion idempotent row by row.

CREATE TABLE machines (
    machine_id      VARCHAR PRIMARY KEY,
    display_name    VARCHAR,
    hostname        VARCHAR,
    ssh             VARCHAR,
    tags            VARCHAR[],
    is_demo         BOOLEAN NOT NULL DEFAULT FALSE,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    cpu_count       INTEGER,
    added_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sys_samples (
    machine_id          VARCHAR NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    cpu_pct             DOUBLE,
    cpu_count           INTEGER,
    load1               DOUBLE,
    load5               DOUBLE,
    load15              DOUBLE,
    mem_total_bytes     BIGINT,
    mem_used_bytes      BIGINT,
    mem_available_bytes BIGINT,
    swap_total_bytes    BIGINT,
    swap_used_bytes     BIGINT,
    net_rx_bps          DOUBLE,
    net_tx_bps          DOUBLE,
    uptime_seconds      DOUBLE,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, ts)
);

CREATE TABLE sys_filesystems (
    machine_id      VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    mount           VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,
    source_version  VARCHAR,
    schema_version  INTEGER NOT NULL,
    device          VARCHAR,
    fstype          VARCHAR,
    total_bytes     BIGINT,
    used_bytes      BIGINT,
    free_bytes      BIGINT,
    used_pct        DOUBLE,
    is_demo         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, ts, mount)
);

CREATE TABLE sys_top_processes (
    machine_id      VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    rank_by         VARCHAR NOT NULL,   -- 'cpu' | 'memory'
    rank            INTEGER NOT NULL,
    source          VARCHAR NOT NULL,
    source_version  VARCHAR,
    schema_version  INTEGER NOT NULL,
    pid             INTEGER,
    name            VARCHAR,
    username        VARCHAR,
    cpu_pct         DOUBLE,
    mem_rss_bytes   BIGINT,
    cmdline         VARCHAR,
    is_demo         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, ts, rank_by, rank)
);

CREATE TABLE collector_runs (
    run_id          VARCHAR PRIMARY KEY,
    cycle_id        VARCHAR,
    machine_id      VARCHAR NOT NULL,
    collector       VARCHAR NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    duration_ms     DOUBLE,
    rows_written    BIGINT NOT NULL DEFAULT 0,
    status          VARCHAR NOT NULL,   -- ok | warning | error | skipped | timeout
    warnings        VARCHAR[],
    error           VARCHAR,
    source_version  VARCHAR,
    schema_version  INTEGER
);

CREATE TABLE ingestion_cursors (
    machine_id      VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,
    cursor_key      VARCHAR NOT NULL,
    cursor_json     VARCHAR NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (machine_id, source, cursor_key)
);

-- Who blocked whom: written by workbench.store when a write had to wait for the file lock.
CREATE TABLE store_lock_events (
    ts              TIMESTAMPTZ NOT NULL,
    writer          VARCHAR NOT NULL,
    writer_pid      INTEGER NOT NULL,
    blocked_by_pid  INTEGER,
    blocked_by      VARCHAR,
    waited_ms       DOUBLE NOT NULL,
    attempts        INTEGER NOT NULL,
    outcome         VARCHAR NOT NULL,   -- written | spooled | replayed
    PRIMARY KEY (ts, writer_pid, outcome)
);

CREATE TABLE alerts (
    alert_id        VARCHAR PRIMARY KEY,
    rule_id         VARCHAR NOT NULL,
    machine_id      VARCHAR,
    dedupe_key      VARCHAR,
    severity        VARCHAR NOT NULL,
    state           VARCHAR NOT NULL,   -- pending | firing | resolved
    summary         VARCHAR,
    evidence_json   VARCHAR,
    started_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    resolved_at     TIMESTAMPTZ
);

CREATE TABLE alert_acks (
    alert_id        VARCHAR NOT NULL,
    acked_at        TIMESTAMPTZ NOT NULL,
    acked_by        VARCHAR NOT NULL,
    note            VARCHAR,
    snooze_until    TIMESTAMPTZ,
    PRIMARY KEY (alert_id, acked_at, acked_by)
);
