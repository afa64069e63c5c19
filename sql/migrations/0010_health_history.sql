-- Health history, written by workbench.views.health_job after each daemon cycle so scores can be
-- charted over time. Derived rows (no source columns). `ts` is the evaluation time floored to the
-- minute: re-running the job within the same minute adds nothing (INSERT OR IGNORE on the key).

-- One row per machine, factor and minute (factor names: workbench.views.health FACTORS plus
-- workbench.views.health_fleet FLEET_FACTORS, e.g. 'disk', 'accounts', 'freshness:caut').
-- score NULL = the factor had no data that minute; value/unit/detail explain the score.
CREATE TABLE health_factors (
    machine_id      VARCHAR NOT NULL,
    factor          VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    value           DOUBLE,
    unit            VARCHAR,
    score           DOUBLE,
    weight          DOUBLE,
    detail          VARCHAR,
    PRIMARY KEY (machine_id, factor, ts)
);

-- One row per machine and minute, plus one row for the whole fleet with machine_id '*'.
-- severity: ok | warning | critical | unknown. worst_*: the factor that set the cap.
CREATE TABLE health_summary (
    machine_id      VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    score           DOUBLE,
    severity        VARCHAR NOT NULL,
    worst_factor    VARCHAR,
    worst_detail    VARCHAR,
    worst_score     DOUBLE,
    factors_scored  INTEGER,
    PRIMARY KEY (machine_id, ts)
);
