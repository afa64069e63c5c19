-- Fleet events and tool snapshots from incremental / misc collectors:
-- beads (br, bv), rano network events, rch build farm, pt process triage, afsc setup checker.
-- Events carry `ts` (or their own time) and a natural key; snapshots carry `collected_at`.
-- Self-contained: depends only on 0001_core.

-- One row per issue version seen in a repo's `.beads/issues.jsonl`. The export is rewritten as a
-- whole, so re-reading it adds rows only for issues whose `updated_at` moved: the latest state of
-- an issue is its row with the greatest updated_at.
CREATE TABLE beads_issues (
    machine_id          VARCHAR NOT NULL,
    repo_path           VARCHAR NOT NULL,
    issue_id            VARCHAR NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    title               VARCHAR,
    status              VARCHAR,            -- open | in_progress | blocked | deferred | closed | tombstone | pinned | custom
    priority            INTEGER,            -- 0 (highest) .. 4
    issue_type          VARCHAR,
    assignee            VARCHAR,
    owner               VARCHAR,
    created_at          TIMESTAMPTZ,
    created_by          VARCHAR,
    closed_at           TIMESTAMPTZ,
    close_reason        VARCHAR,
    deleted_at          TIMESTAMPTZ,
    due_at              TIMESTAMPTZ,
    defer_until         TIMESTAMPTZ,
    estimated_minutes   INTEGER,
    labels              VARCHAR[],
    dependency_count    INTEGER,
    blocked_by_ids      VARCHAR[],          -- depends_on_id of `blocks` / `conditional-blocks` / `waits-for`
    parent_id           VARCHAR,            -- depends_on_id of the `parent-child` dependency
    comment_count       INTEGER,
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, repo_path, issue_id, updated_at)
);

-- `br ready --json` per repo per collection: one row even when nothing is ready (ready_count 0).
CREATE TABLE beads_ready_snapshots (
    machine_id          VARCHAR NOT NULL,
    repo_path           VARCHAR NOT NULL,
    collected_at        TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    ready_count         INTEGER NOT NULL,
    p0_count            INTEGER,
    p1_count            INTEGER,
    in_progress_count   INTEGER,
    issue_ids           VARCHAR[],          -- in br's order
    top_issue_id        VARCHAR,            -- highest priority (lowest number), first on ties
    top_priority        INTEGER,
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, repo_path, collected_at)
);

-- `bv --robot-triage` per repo per collection (shape reconstructed from bv's structs).
CREATE TABLE beads_triage_snapshots (
    machine_id              VARCHAR NOT NULL,
    repo_path               VARCHAR NOT NULL,
    collected_at            TIMESTAMPTZ NOT NULL,
    source                  VARCHAR NOT NULL,
    source_version          VARCHAR,
    schema_version          INTEGER NOT NULL,
    generated_at            TIMESTAMPTZ,
    data_hash               VARCHAR,
    bv_version              VARCHAR,
    issue_count             INTEGER,
    open_count              INTEGER,
    actionable_count        INTEGER,
    blocked_count           INTEGER,
    in_progress_count       INTEGER,
    not_closed_count        INTEGER,
    top_pick_ids            VARCHAR[],
    top_pick_id             VARCHAR,
    top_pick_score          DOUBLE,
    recommendation_count    INTEGER,
    quick_win_count         INTEGER,
    blockers_to_clear_count INTEGER,
    alert_count             INTEGER,
    has_cycles              BOOLEAN,
    closed_last_7_days      INTEGER,
    closed_last_30_days     INTEGER,
    stale_count             INTEGER,
    raw_json                VARCHAR,
    is_demo                 BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, repo_path, collected_at)
);

-- rano `export --format jsonl` rows: one per connect/close of an AI CLI's socket.
-- event_hash = sha256 of the canonical event JSON, so overlapping `--since` windows dedupe.
CREATE TABLE net_events (
    machine_id      VARCHAR NOT NULL,
    event_hash      VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    source          VARCHAR NOT NULL,
    source_version  VARCHAR,
    schema_version  INTEGER NOT NULL,
    run_id          VARCHAR,
    event           VARCHAR,            -- connect | close
    provider        VARCHAR,            -- anthropic | openai | google | unknown
    pid             INTEGER,
    comm            VARCHAR,
    cmdline         VARCHAR,
    proto           VARCHAR,
    local_ip        VARCHAR,
    local_port      INTEGER,
    remote_ip       VARCHAR,
    remote_port     INTEGER,
    domain          VARCHAR,
    ancestry_path   VARCHAR,
    duration_ms     BIGINT,             -- close events only
    raw_json        VARCHAR,
    is_demo         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, event_hash)
);

-- `rch status --json` per collection. A failed envelope (daemon down) is a row too: success = false.
CREATE TABLE rch_status_snapshots (
    machine_id          VARCHAR NOT NULL,
    collected_at        TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    reported_at         TIMESTAMPTZ,        -- envelope `timestamp` (unix seconds)
    api_version         VARCHAR,
    status_schema       VARCHAR,            -- data.schema_version, e.g. "1.0.0"
    success             BOOLEAN NOT NULL,
    error_code          VARCHAR,
    error_message       VARCHAR,
    posture             VARCHAR,            -- remote_ready | degraded | local_only
    daemon_pid          INTEGER,
    daemon_version      VARCHAR,
    uptime_secs         BIGINT,
    daemon_started_at   TIMESTAMPTZ,
    workers_total       INTEGER,
    workers_healthy     INTEGER,
    slots_total         INTEGER,
    slots_available     INTEGER,
    active_builds       INTEGER,
    queued_builds       INTEGER,
    issues_count        INTEGER,
    alerts_active       INTEGER,
    total_builds        BIGINT,
    success_count       BIGINT,
    failure_count       BIGINT,
    remote_count        BIGINT,
    local_count         BIGINT,
    avg_duration_ms     DOUBLE,
    time_saved_ms       BIGINT,
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, collected_at)
);

CREATE TABLE rch_workers_snapshots (
    machine_id              VARCHAR NOT NULL,
    collected_at            TIMESTAMPTZ NOT NULL,
    worker_id               VARCHAR NOT NULL,
    source                  VARCHAR NOT NULL,
    source_version          VARCHAR,
    schema_version          INTEGER NOT NULL,
    host                    VARCHAR,
    ssh_user                VARCHAR,
    status                  VARCHAR,        -- healthy | degraded | unreachable | draining | drained | disabled
    circuit_state           VARCHAR,        -- closed | open | half_open
    used_slots              INTEGER,
    total_slots             INTEGER,
    speed_score             DOUBLE,
    last_error              VARCHAR,
    consecutive_failures    INTEGER,
    recovery_in_secs        BIGINT,
    recent_checks           INTEGER,        -- len(failure_history)
    recent_failures         INTEGER,        -- false entries in failure_history
    pressure_state          VARCHAR,
    pressure_disk_free_ratio DOUBLE,
    pressure_memory_pressure DOUBLE,
    raw_json                VARCHAR,
    is_demo                 BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, collected_at, worker_id)
);

-- Completed builds: lines of rchd's `--history-file` JSONL (BuildRecord) and `recent_builds` of
-- `rch status --json`; the same build from both sources is one row. Build ids are epoch-seeded u64.
CREATE TABLE rch_build_events (
    machine_id          VARCHAR NOT NULL,
    build_id            BIGINT NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    completed_at        TIMESTAMPTZ,
    project_id          VARCHAR,
    worker_id           VARCHAR,
    command             VARCHAR,
    exit_code           INTEGER,
    duration_ms         BIGINT,
    location            VARCHAR,            -- remote | local
    bytes_transferred   BIGINT,
    cancelled           BOOLEAN,
    log_path            VARCHAR,            -- NULL when seen in `rch status` first
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, build_id, started_at)
);

-- rchd Prometheus `/metrics`, downsampled to the charted series (no histogram buckets).
CREATE TABLE rch_metrics (
    machine_id      VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    metric          VARCHAR NOT NULL,       -- sample name, e.g. rch_builds_total, rch_build_duration_seconds_sum
    labels_json     VARCHAR NOT NULL,       -- sorted-key JSON object, '{}' when unlabelled
    source          VARCHAR NOT NULL,
    source_version  VARCHAR,
    schema_version  INTEGER NOT NULL,
    value           DOUBLE NOT NULL,
    is_demo         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, ts, metric, labels_json)
);

-- `pt robot plan --format json`: one plan row per collection (also when nothing was found) ...
CREATE TABLE pt_plan_snapshots (
    machine_id                  VARCHAR NOT NULL,
    collected_at                TIMESTAMPTZ NOT NULL,
    source                      VARCHAR NOT NULL,
    source_version              VARCHAR,
    schema_version              INTEGER NOT NULL,
    exit_code                   INTEGER,    -- 0 clean, 1 plan ready
    pt_version                  VARCHAR,
    plan_schema                 VARCHAR,    -- upstream schema_version, e.g. "1.0.0"
    session_id                  VARCHAR,
    generated_at                TIMESTAMPTZ,
    total_processes_scanned     INTEGER,
    candidates_returned         INTEGER,
    kill_recommendations        INTEGER,
    review_recommendations      INTEGER,
    policy_blocked              INTEGER,
    expected_memory_freed_gb    DOUBLE,
    memory_total_gb             DOUBLE,
    memory_used_gb              DOUBLE,
    raw_json                    VARCHAR,    -- the plan without its candidates (they are in pt_findings)
    is_demo                     BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, collected_at)
);

-- ... and one row per candidate process.
CREATE TABLE pt_findings (
    machine_id          VARCHAR NOT NULL,
    collected_at        TIMESTAMPTZ NOT NULL,
    pid                 INTEGER NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    session_id          VARCHAR,
    start_id            VARCHAR,            -- "<pid>:<start_time_unix>": the process across plans
    ppid                INTEGER,
    username            VARCHAR,
    command             VARCHAR,
    command_short       VARCHAR,
    state               VARCHAR,
    classification      VARCHAR,            -- useful | useful_bad | abandoned | zombie
    score               INTEGER,            -- 0..100
    confidence          VARCHAR,            -- low | medium | high | very_high
    recommended_action  VARCHAR,            -- keep | kill | review | ...
    action_rationale    VARCHAR,
    age_seconds         BIGINT,
    memory_mb           DOUBLE,
    cpu_percent         DOUBLE,
    p_abandoned         DOUBLE,
    p_zombie            DOUBLE,
    policy_blocked      BOOLEAN,
    reversibility       VARCHAR,
    risk_level          VARCHAR,            -- blast_radius.risk_level
    supervisor_type     VARCHAR,
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, collected_at, pid)
);

-- `automated_flywheel_setup_checker status --format json`: the last run's summary per collection ...
CREATE TABLE afsc_status_snapshots (
    machine_id          VARCHAR NOT NULL,
    collected_at        TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    status              VARCHAR NOT NULL,   -- ok | no_runs
    run_id              VARCHAR,
    results_file        VARCHAR,
    total               INTEGER,
    passed              INTEGER,
    failed              INTEGER,
    skipped             INTEGER,
    timed_out           INTEGER,
    duration_total_ms   BIGINT,
    run_started_at      TIMESTAMPTZ,
    run_ended_at        TIMESTAMPTZ,
    failed_installers   VARCHAR[],
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, collected_at)
);

-- ... and each installer result as an event (re-reading the same results file adds nothing).
CREATE TABLE afsc_installer_results (
    machine_id          VARCHAR NOT NULL,
    installer_name      VARCHAR NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR,
    schema_version      INTEGER NOT NULL,
    run_id              VARCHAR,
    status              VARCHAR,            -- passed | failed | skipped | timedout | pending | running
    duration_ms         BIGINT,
    exit_code           INTEGER,
    error_category      VARCHAR,
    error_severity      VARCHAR,            -- Transient | Configuration | ... (Capitalized upstream)
    retryable           BOOLEAN,
    error_confidence    DOUBLE,
    stderr_excerpt      VARCHAR,
    retry_count         INTEGER,
    sha256_verified     BOOLEAN,
    raw_json            VARCHAR,
    is_demo             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, installer_name, ts)
);
