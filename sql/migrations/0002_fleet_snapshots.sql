-- Snapshots from the fleet's own CLIs: sysmoni, ru, caut, caam, cass, ntm (collectors/<tool>.py).
-- Each row keeps the upstream object it came from in raw_json, so a field we do not map today can
-- be read later without re-collecting. Natural keys are PRIMARY KEYs (INSERT OR IGNORE dedupes).
-- NULL means "the tool did not say" (or said something of the wrong type, which the collector
-- reports as a warning); it never stands for zero.

-- sysmoni (SRPS): one row per sample. `ts` is the sample's own time (the Go or bash payload's
-- timestamp), so the same sample collected twice is one row. `variant` is 'go' or 'bash'.
-- `first_sample`: the Go one-shot's first reading, whose CPU and IO rates are deltas against
-- nothing; its cpu_pct and rates are NULL rather than a fake 0.
CREATE TABLE sysmoni_snapshots (
    machine_id                  VARCHAR NOT NULL,
    ts                          TIMESTAMPTZ NOT NULL,
    collected_at                TIMESTAMPTZ NOT NULL,
    source                      VARCHAR NOT NULL,
    source_version              VARCHAR,
    schema_version              INTEGER NOT NULL,
    variant                     VARCHAR NOT NULL,
    interval_s                  DOUBLE,
    first_sample                BOOLEAN,
    cpu_pct                     DOUBLE,
    cpu_cores                   INTEGER,
    per_core_json               VARCHAR,
    load1                       DOUBLE,
    load5                       DOUBLE,
    load15                      DOUBLE,
    mem_used_bytes              BIGINT,
    mem_total_bytes             BIGINT,
    mem_used_pct                DOUBLE,
    mem_cached_bytes            BIGINT,
    mem_buffers_bytes           BIGINT,
    swap_used_bytes             BIGINT,
    swap_total_bytes            BIGINT,
    disk_read_mbs               DOUBLE,   -- MB/s
    disk_write_mbs              DOUBLE,
    net_rx_mbps                 DOUBLE,   -- Mbit/s
    net_tx_mbps                 DOUBLE,
    io_per_device_json          VARCHAR,
    inotify_max_user_watches    BIGINT,
    inotify_max_user_instances  BIGINT,
    inotify_nr_watches          BIGINT,
    temp_max_c                  DOUBLE,
    temp_max_zone               VARCHAR,
    gpu_count                   INTEGER,
    gpu_json                    VARCHAR,
    throttled_count             INTEGER,  -- processes with nice > 0 (Go only)
    cgroups_json                VARCHAR,
    battery_json                VARCHAR,
    raw_json                    VARCHAR,
    PRIMARY KEY (machine_id, ts)
);

-- list_kind: 'top' (by CPU, capped by the top_processes option) | 'throttled' (reniced, nice > 0).
-- cpu_pct may exceed 100 (per-core sum); mem_pct is % of RAM.
CREATE TABLE sysmoni_top_processes (
    machine_id      VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    list_kind       VARCHAR NOT NULL,
    rank            INTEGER NOT NULL,
    source          VARCHAR NOT NULL,
    source_version  VARCHAR,
    schema_version  INTEGER NOT NULL,
    pid             INTEGER,
    nice            INTEGER,
    cpu_pct         DOUBLE,
    mem_pct         DOUBLE,
    command         VARCHAR,
    fd_count        INTEGER,
    read_kbs        DOUBLE,
    write_kbs       DOUBLE,
    fd_diff         INTEGER,
    PRIMARY KEY (machine_id, ts, list_kind, rank)
);

-- ru (repo_updater): one row per configured repo per collection, keyed by local path (the same
-- owner/name can be cloned twice under different names). ahead/behind NULL = unknown (ru's -1).
-- in_status false: configured (`ru list`) but absent from `ru status`.
CREATE TABLE repo_status_snapshots (
    machine_id      VARCHAR NOT NULL,
    collected_at    TIMESTAMPTZ NOT NULL,
    path            VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,
    source_version  VARCHAR,
    schema_version  INTEGER NOT NULL,
    repo            VARCHAR,
    url             VARCHAR,
    status          VARCHAR,   -- current | behind | ahead | diverged | no_upstream | not_git | missing
    branch          VARCHAR,
    ahead           INTEGER,
    behind          INTEGER,
    dirty           BOOLEAN,
    mismatch        BOOLEAN,   -- local remote URL differs from the configured one
    in_status       BOOLEAN,
    ru_version      VARCHAR,
    generated_at    TIMESTAMPTZ,
    raw_json        VARCHAR,
    PRIMARY KEY (machine_id, collected_at, path)
);

-- Provider rate windows per account, from caut (`source` 'caut') and caam (`source` 'caam').
-- account_key is global where it can be: '<provider>:<email lowercased>', else
-- '<provider>:id:<account id>', else '<provider>:label:<profile/account label>', else the
-- machine-local '<provider>:unknown@<machine_id>'. A view merges one account across machines and
-- tools by (provider, account_key, window_name).
-- window_name: 'primary' (session, e.g. 5h) | 'secondary' (weekly) | 'tertiary' (model tier) |
-- 'model:<name>' (caam model windows) | 'none' (the account reported no window: see error).
CREATE TABLE account_usage_snapshots (
    machine_id              VARCHAR NOT NULL,
    collected_at            TIMESTAMPTZ NOT NULL,
    source                  VARCHAR NOT NULL,
    account_key             VARCHAR NOT NULL,
    window_name             VARCHAR NOT NULL,
    source_version          VARCHAR,
    schema_version          INTEGER NOT NULL,
    provider                VARCHAR NOT NULL,
    account_email           VARCHAR,
    account_label           VARCHAR,   -- caut `account`, caam profile name
    account_id              VARCHAR,
    organization            VARCHAR,
    plan_type               VARCHAR,
    rate_limit_tier         VARCHAR,
    login_method            VARCHAR,
    used_pct                DOUBLE,    -- 0..100
    window_minutes          INTEGER,
    resets_at               TIMESTAMPTZ,
    reset_description       VARCHAR,
    reported_at             TIMESTAMPTZ,   -- when the tool fetched the figures
    fetch_method            VARCHAR,   -- caut fetch strategy: cli | oauth | openai-web | local | web
    provider_status         VARCHAR,   -- provider statuspage indicator (caut)
    credits_remaining       DOUBLE,
    auth_warning            VARCHAR,
    error                   VARCHAR,
    burn_tokens_per_hour    DOUBLE,
    burn_pct_per_hour       DOUBLE,
    estimated_depletion_at  TIMESTAMPTZ,
    depletion_confidence    DOUBLE,
    raw_json                VARCHAR,
    PRIMARY KEY (machine_id, collected_at, source, account_key, window_name)
);

-- caam status: one row per tool (codex | claude | gemini) per collection.
-- notices_json: caam's own warnings that concern this tool (token expiry, cooldowns).
CREATE TABLE caam_status_snapshots (
    machine_id              VARCHAR NOT NULL,
    collected_at            TIMESTAMPTZ NOT NULL,
    tool                    VARCHAR NOT NULL,
    source                  VARCHAR NOT NULL,
    source_version          VARCHAR,
    schema_version          INTEGER NOT NULL,
    logged_in               BOOLEAN,
    active_profile          VARCHAR,
    account_key             VARCHAR,
    error                   VARCHAR,
    health_status           VARCHAR,   -- healthy | warning | critical | unknown
    health_reason           VARCHAR,
    health_expires_at       TIMESTAMPTZ,
    health_error_count      INTEGER,   -- errors in the last hour
    cooldown_remaining      VARCHAR,
    identity_email          VARCHAR,
    identity_organization   VARCHAR,
    identity_plan_type      VARCHAR,
    identity_account_id     VARCHAR,
    identity_expires_at     TIMESTAMPTZ,
    notices_json            VARCHAR,
    recommendations_json    VARCHAR,
    raw_json                VARCHAR,
    PRIMARY KEY (machine_id, collected_at, tool)
);

-- cass health: one row per collection. Freshness: index_stale / index_age_seconds /
-- index_last_indexed_at, pending_sessions, rebuild_* (active, stalled, progress).
-- raw_json omits cass's internal controller telemetry (responsiveness, parallel_wal_shadow,
-- runtime_optimizations, policy_registry): kilobytes per poll that nothing reads.
CREATE TABLE cass_health_snapshots (
    machine_id                      VARCHAR NOT NULL,
    collected_at                    TIMESTAMPTZ NOT NULL,
    source                          VARCHAR NOT NULL,
    source_version                  VARCHAR,
    schema_version                  INTEGER NOT NULL,
    status                          VARCHAR,   -- healthy | not_initialized | degraded | rebuilding | stalled | unhealthy
    healthy                         BOOLEAN,
    health_level                    VARCHAR,
    initialized                     BOOLEAN,
    explanation                     VARCHAR,
    recommended_action              VARCHAR,
    warnings_json                   VARCHAR,
    errors_json                     VARCHAR,
    latency_ms                      DOUBLE,
    data_dir                        VARCHAR,
    db_exists                       BOOLEAN,
    db_opened                       BOOLEAN,
    db_conversations                BIGINT,
    db_messages                     BIGINT,
    db_open_error                   VARCHAR,
    index_exists                    BOOLEAN,
    index_status                    VARCHAR,
    index_fresh                     BOOLEAN,
    index_stale                     BOOLEAN,
    index_last_indexed_at           TIMESTAMPTZ,
    index_age_seconds               DOUBLE,
    index_stale_threshold_seconds   DOUBLE,
    index_documents                 BIGINT,
    index_rebuilding                BOOLEAN,
    index_stalled                   BOOLEAN,
    pending_sessions                BIGINT,
    watch_active                    BOOLEAN,
    rebuild_active                  BOOLEAN,
    rebuild_stalled                 BOOLEAN,
    rebuild_phase                   VARCHAR,
    rebuild_processed_conversations BIGINT,
    rebuild_total_conversations     BIGINT,
    rebuild_completion_ratio        DOUBLE,
    rebuild_last_progress_at        TIMESTAMPTZ,
    semantic_status                 VARCHAR,
    semantic_available              BOOLEAN,
    quarantined_conversations       BIGINT,
    quarantine_breaker_active       BOOLEAN,
    remote_sync_status              VARCHAR,
    remote_sync_staleness           VARCHAR,
    remote_sync_gap_count           BIGINT,
    search_complete                 BOOLEAN,
    reported_at                     TIMESTAMPTZ,   -- state._meta.timestamp
    raw_json                        VARCHAR,
    PRIMARY KEY (machine_id, collected_at)
);

CREATE TABLE cass_stats_snapshots (
    machine_id                          VARCHAR NOT NULL,
    collected_at                        TIMESTAMPTZ NOT NULL,
    source                              VARCHAR NOT NULL,
    source_version                      VARCHAR,
    schema_version                      INTEGER NOT NULL,
    conversations                       BIGINT,
    messages                            BIGINT,
    agent_count                         INTEGER,
    by_agent_json                       VARCHAR,   -- {"claude_code": 120, ...}
    top_workspaces_json                 VARCHAR,
    oldest_at                           TIMESTAMPTZ,
    newest_at                           TIMESTAMPTZ,
    db_path                             VARCHAR,
    raw_mirror_initialized              BOOLEAN,
    raw_mirror_total_bytes              BIGINT,
    raw_mirror_manifest_count           BIGINT,
    raw_mirror_missing_blob_count       BIGINT,
    raw_mirror_invalid_manifest_count   BIGINT,
    raw_mirror_newest_capture_at        TIMESTAMPTZ,
    raw_json                            VARCHAR,
    PRIMARY KEY (machine_id, collected_at)
);

-- cass timeline: sessions of the last 7 days. A session grows while it runs, so each distinct
-- content is one row (content_hash); the latest version of a session is the one with the
-- greatest first_seen_at per (machine_id, cass_source_id, session_id).
CREATE TABLE cass_timeline_sessions (
    machine_id          VARCHAR NOT NULL,
    cass_source_id      VARCHAR NOT NULL,   -- 'local' or a remote source name
    session_id          BIGINT NOT NULL,    -- cass's conversation id on that machine
    content_hash        VARCHAR NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    first_seen_at       TIMESTAMPTZ NOT NULL,
    origin_kind         VARCHAR,
    origin_host         VARCHAR,
    agent               VARCHAR,
    title               VARCHAR,
    workspace           VARCHAR,
    started_at          TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ,
    duration_seconds    DOUBLE,
    message_count       INTEGER,
    source_path         VARCHAR,
    raw_json            VARCHAR,
    PRIMARY KEY (machine_id, cass_source_id, session_id, content_hash)
);

-- ntm: one row per agent pane (row_kind 'agent', from --robot-snapshot) or per session
-- (row_kind 'session', pane '': from --robot-status, or a snapshot session with no agents).
-- state: active | idle | waiting | error | unknown. context_pct 0..100.
CREATE TABLE ntm_sessions_snapshot (
    machine_id              VARCHAR NOT NULL,
    collected_at            TIMESTAMPTZ NOT NULL,
    session                 VARCHAR NOT NULL,
    pane                    VARCHAR NOT NULL,
    source                  VARCHAR NOT NULL,
    source_version          VARCHAR,
    schema_version          INTEGER NOT NULL,
    row_kind                VARCHAR NOT NULL,
    schema_id               VARCHAR,
    ntm_schema_version      VARCHAR,
    reported_at             TIMESTAMPTZ,
    attached                BOOLEAN,
    session_agent_count     INTEGER,
    session_health_status   VARCHAR,
    session_health_reason   VARCHAR,
    agent_type              VARCHAR,
    variant                 VARCHAR,
    type_confidence         DOUBLE,
    state                   VARCHAR,
    last_output_age_sec     BIGINT,
    output_tail_lines       INTEGER,
    context_pct             DOUBLE,
    current_bead            VARCHAR,
    pending_mail            INTEGER,
    raw_json                VARCHAR,
    PRIMARY KEY (machine_id, collected_at, session, pane)
);
