-- caut cost: spend and tokens per provider and day, as `caut cost --json` reports it on a machine.
-- caut computes cost from the agent logs on that machine, so two machines' figures for one provider
-- add up (unlike usage windows, which are one account seen twice). A day's figure is a running
-- total: a new row is written only when it changes (reported_at = the payload's updatedAt), and the
-- latest row per (machine, provider, day) is the figure. Self-contained: depends only on 0001_core.

CREATE TABLE account_cost_daily (
    machine_id              VARCHAR NOT NULL,
    provider                VARCHAR NOT NULL,
    day                     DATE NOT NULL,
    reported_at             TIMESTAMPTZ NOT NULL,
    source                  VARCHAR NOT NULL,
    source_version          VARCHAR,
    schema_version          INTEGER NOT NULL,
    fetch_method            VARCHAR,            -- caut's `source`: local | web | oauth ...
    total_cost_usd          DOUBLE,
    input_tokens            BIGINT,
    output_tokens           BIGINT,
    cache_read_tokens       BIGINT,
    cache_creation_tokens   BIGINT,
    total_tokens            BIGINT,
    models_used             VARCHAR[],
    raw_json                VARCHAR,
    is_demo                 BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (machine_id, provider, day, reported_at)
);
