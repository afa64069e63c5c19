-- Forecasts made by workbench.views.forecast (written by workbench.views.forecast_job after each
-- daemon cycle). Derived rows, not collected ones: no source columns.
--
-- kind: disk_full | rate_limit | queue_growth.
-- subject: what the forecast is about, unique within its kind:
--     disk_full    '<machine_id>:<mount>'
--     rate_limit   '<account_key>/<window_name>' (one account however many machines report it)
--     queue_growth '<machine_id>' (the rch daemon's host)
-- made_at: the time of the newest observation the forecast used (its "as of"), not the wall clock:
--     the same data gives the same key, so re-running the job over unchanged data writes nothing.
--     computed_at is when that forecast was first written.
-- status: disk_full: filling | not filling | at limit | beyond horizon;
--     rate_limit: reaches limit | resets first | not rising | at limit | reset passed | too few points;
--     queue_growth: growing | not growing | at limit.
-- eta / eta_low / eta_high: when the limit is reached (point estimate and the ~80 % interval).
--     NULL means "not within reach of this model": eta NULL when not rising; eta_high NULL when the
--     slope's lower bound is <= 0 (it may never get there); eta_low NULL when even the upper bound
--     of the slope does not rise.
-- horizon_s: how far ahead the forecast looks (disk: 7 days; rate limit: until the window resets).
-- confidence in [0, 1]: for a finite eta, the probability (normal approximation of the rate until
--     then) that the real time-to-limit is within ±50 % of the stated one; when not rising, the
--     probability that the series is really not rising; 1 at the limit.
-- action: rate limits only (continue | slow down | prepare swap | swap now), NULL otherwise.
-- inputs_json: window, n points, slope and its standard error, level, method, the holdout error of
--     each candidate window, the rate's measured variability by time scale, the settings.
-- details_json: per-kind extras (rate limits: machines reporting, per-machine breakdown, the
--     alternative account with the most headroom; disk: bytes per hour, total bytes).

CREATE TABLE predictions (
    kind            VARCHAR NOT NULL,
    subject         VARCHAR NOT NULL,
    made_at         TIMESTAMPTZ NOT NULL,
    status          VARCHAR NOT NULL,
    level           DOUBLE,
    limit_value     DOUBLE,
    slope_per_hour  DOUBLE,
    eta             TIMESTAMPTZ,
    eta_low         TIMESTAMPTZ,
    eta_high        TIMESTAMPTZ,
    horizon_s       DOUBLE,
    confidence      DOUBLE,
    action          VARCHAR,
    inputs_json     VARCHAR NOT NULL,
    details_json    VARCHAR,
    computed_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, subject, made_at)
);
