-- The demo fleet's parameters and injected episodes, so the daemon can keep demo machines alive
-- with the same generator and tests can check every episode is detected.
CREATE TABLE demo_fleet (
    fleet_id        VARCHAR PRIMARY KEY,
    seed            BIGINT NOT NULL,
    machines        INTEGER NOT NULL,
    days            INTEGER NOT NULL,
    start_ts        TIMESTAMPTZ NOT NULL,
    end_ts          TIMESTAMPTZ NOT NULL,
    episodes_json   VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
