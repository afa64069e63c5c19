-- Anomalies found by workbench.views.anomaly (written by workbench.views.anomaly_job after each
-- daemon cycle). Derived rows, not collected ones: no source columns, and re-detecting the same
-- bucket or sample is ignored by the primary key, so `detected_at` is when it was FIRST seen.
--
-- detector: robust_seasonal (statistical, scored per `step` bucket) | threshold | rate | absence.
-- rule: the deterministic rule's name (NULL for the statistical detector).
-- metric: cpu_pct | load_per_core | mem_used_pct | swap_used_pct …, or sys_samples for absence.
-- ts: the bucket start (statistical), the sample time (threshold, rate), or the last sample before
--     the gap (absence).
-- score in [0, 1]: 1 − 2^(−|z| / z_threshold) for the detector (0.5 at the threshold), 1 for rules.
-- baseline / scale: the rolling median and robust scale the value was judged against (detector only).
-- value: the metric's value (a bucket mean for the detector); for absence, the gap in seconds when
--     first detected.
-- details_json: z, event (first row of a run: what an alert fires on), seasonal range, limits, gap end.

CREATE TABLE anomalies (
    machine_id      VARCHAR NOT NULL,
    metric          VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    detector        VARCHAR NOT NULL,
    rule            VARCHAR,
    value           DOUBLE,
    score           DOUBLE NOT NULL,
    baseline        DOUBLE,
    scale           DOUBLE,
    details_json    VARCHAR,
    detected_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (machine_id, metric, ts, detector)
);
