-- cloud_benchmarker: sysbench subscores and the weighted overall score per benchmarked host and run.
-- `machine_id` is the machine whose benchmarker API was read (the control node); `host` is the
-- inventory host that was benchmarked (often also a fleet machine id). Events keyed by run time, so
-- re-reading the API's history adds nothing. Self-contained: depends only on 0001_core.

CREATE TABLE benchmark_subscores (
    machine_id              VARCHAR NOT NULL,
    host                    VARCHAR NOT NULL,
    run_at                  TIMESTAMPTZ NOT NULL,
    source                  VARCHAR NOT NULL,
    source_version          VARCHAR,
    schema_version          INTEGER NOT NULL,
    server_row_id           BIGINT,
    ip_address              VARCHAR,
    cpu_events_per_second   DOUBLE,     -- sysbench cpu, 4 threads: higher is better
    fileio_reads_per_second DOUBLE,     -- sysbench fileio rndrw: higher is better
    memory_mib_transferred  DOUBLE,     -- sysbench memory, 1K blocks: higher is better
    mutex_avg_latency_ms    DOUBLE,     -- sysbench mutex: lower is better
    threads_avg_latency_ms  DOUBLE,     -- sysbench threads: lower is better
    raw_json                VARCHAR,
    is_demo                 BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, host, run_at)
);

CREATE TABLE benchmark_overall_scores (
    machine_id              VARCHAR NOT NULL,
    host                    VARCHAR NOT NULL,
    run_at                  TIMESTAMPTZ NOT NULL,
    source                  VARCHAR NOT NULL,
    source_version          VARCHAR,
    schema_version          INTEGER NOT NULL,
    server_row_id           BIGINT,
    ip_address              VARCHAR,
    overall_score           DOUBLE,     -- 0..100 across the hosts of the same run (relative, not absolute)
    raw_json                VARCHAR,
    is_demo                 BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, host, run_at)
);
