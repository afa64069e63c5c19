-- Sources read out of upstream SQLite databases on the machines (collectors/sqlite_reader.py):
-- mcp_agent_mail (Python and Rust servers) and dcg's history.db, plus `dcg stats` snapshots.
-- `db_path` is the database path as configured (e.g. `~/.config/dcg/history.db`); one machine may
-- hold several mail databases. Keys include the row's creation time next to its SQLite id, so a
-- database that is deleted and recreated (ids restart at 1) adds rows instead of colliding with old
-- ones, while re-reading the same database adds nothing.
-- Self-contained: depends only on 0001_core.

-- One row per message (`messages`). Timestamps are normalized from either encoding: the Python server
-- stores naive-UTC ISO text, the Rust server integer microseconds (`variant` says which schema).
CREATE TABLE mail_messages (
    machine_id          VARCHAR NOT NULL,
    db_path             VARCHAR NOT NULL,
    message_id          BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    variant             VARCHAR,            -- python | rust
    project_id          BIGINT,
    project_slug        VARCHAR,
    project_key         VARCHAR,            -- projects.human_key: the repo's absolute path
    sender_id           BIGINT,
    sender_name         VARCHAR,            -- agents.name, e.g. GreenCastle
    thread_id           VARCHAR,
    topic               VARCHAR,            -- Python server only
    subject             VARCHAR,
    body_md             VARCHAR,            -- cut at the reader's value cap (body_truncated)
    body_chars          INTEGER,            -- length of the stored body, before any cut
    body_truncated      BOOLEAN,
    importance          VARCHAR,            -- low | normal | high | urgent
    is_urgent           BOOLEAN,
    ack_required        BOOLEAN,
    attachments_json    VARCHAR,
    recipients_json     VARCHAR,            -- Rust server only: denormalized recipient map
    observed_at         TIMESTAMPTZ NOT NULL,
    raw_json            VARCHAR,            -- the row as stored, minus body_md
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, db_path, message_id, created_at)
);

-- Recipient read/ack state (`message_recipients`), one row per state a recipient was seen in:
-- unread -> read -> acked. read_ts / ack_ts are updated in place upstream, so the collector reads new
-- recipients by rowid and, every cycle, the recipients whose read/ack timestamp moved past a
-- high-water mark; each new state adds a row (observed_at = first cycle that saw it).
-- Current state of a recipient = its row with the greatest observed_at.
-- "Ack pending" = ack_required AND state <> 'acked'.
CREATE TABLE mail_recipients (
    machine_id          VARCHAR NOT NULL,
    db_path             VARCHAR NOT NULL,
    message_id          BIGINT NOT NULL,
    message_created_at  TIMESTAMPTZ NOT NULL,
    agent_id            BIGINT NOT NULL,
    state               VARCHAR NOT NULL,   -- unread | read | acked
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    variant             VARCHAR,
    agent_name          VARCHAR,
    kind                VARCHAR,            -- to | cc | bcc
    read_at             TIMESTAMPTZ,
    ack_at              TIMESTAMPTZ,
    ack_required        BOOLEAN,
    observed_at         TIMESTAMPTZ NOT NULL,
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, db_path, message_id, message_created_at, agent_id, state)
);

-- File reservations (`file_reservations`; Rust releases via `file_reservation_releases`), one row per
-- version seen: a release or a renewal (expires_at moved) adds a row. Reservations that are live or
-- expired recently are re-read each cycle. Current version = greatest observed_at; a reservation is
-- active when that version has state 'held' and expires_at > now.
CREATE TABLE mail_file_reservations (
    machine_id          VARCHAR NOT NULL,
    db_path             VARCHAR NOT NULL,
    reservation_id      BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    state               VARCHAR NOT NULL,   -- held | released
    expires_at          TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    variant             VARCHAR,
    project_id          BIGINT,
    project_slug        VARCHAR,
    agent_id            BIGINT,
    agent_name          VARCHAR,
    path_pattern        VARCHAR,            -- a glob, e.g. src/api/**
    exclusive           BOOLEAN,
    reason              VARCHAR,
    released_at         TIMESTAMPTZ,
    observed_at         TIMESTAMPTZ NOT NULL,
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, db_path, reservation_id, created_at, state, expires_at)
);

-- dcg (destructive_command_guard) decisions from `~/.config/dcg/history.db` table `commands`.
CREATE TABLE dcg_events (
    machine_id          VARCHAR NOT NULL,
    db_path             VARCHAR NOT NULL,
    event_id            BIGINT NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    outcome             VARCHAR,            -- allow | deny | warn | bypass
    rule_id             VARCHAR,            -- pack_id:pattern_name, e.g. core.git:reset-hard
    pack_id             VARCHAR,
    pattern_name        VARCHAR,
    command             VARCHAR,
    command_truncated   BOOLEAN,
    command_hash        VARCHAR,
    agent_type          VARCHAR,            -- claude_code | codex | ...
    working_dir         VARCHAR,
    eval_duration_us    BIGINT,
    session_id          VARCHAR,
    exit_code           INTEGER,
    parent_command_id   BIGINT,
    hostname            VARCHAR,
    allowlist_layer     VARCHAR,
    bypass_code         VARCHAR,
    history_schema      INTEGER,            -- history.db schema_version (5 when written)
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, db_path, event_id, ts)
);

-- `dcg stats --format json`: decision-log totals over dcg's window (default 30 days) per collection.
CREATE TABLE dcg_stats_snapshots (
    machine_id          VARCHAR NOT NULL,
    collected_at        TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    period_start        TIMESTAMPTZ,
    period_end          TIMESTAMPTZ,
    total_entries       BIGINT,
    total_blocks        BIGINT,
    total_allows        BIGINT,
    total_bypasses      BIGINT,
    total_warns         BIGINT,
    pack_count          INTEGER,
    top_block_pack      VARCHAR,            -- pack with the most blocks (first on ties)
    by_pack_json        VARCHAR,            -- [{pack_id, blocks, allows, bypasses, warns}]
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, collected_at)
);
