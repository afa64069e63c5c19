-- Alerting: evaluation state per rule and dedupe key, transition history, and the columns the
-- engine needs on the alerts skeleton of 0001.
--
-- `alerts` holds one row per episode (an alert_id lives from pending to resolved/cancelled; a new
-- episode of the same rule+machine+key gets a new alert_id). `alert_state` holds one row per
-- rule+dedupe key: the engine's memory between evaluations (timers for `for:` and
-- `keep_firing_for`), so a restarted daemon neither re-fires nor forgets a pending alert.
-- `alert_events` is the append-only history of transitions, delivered or not.

ALTER TABLE alerts ADD COLUMN fired_at TIMESTAMPTZ;
ALTER TABLE alerts ADD COLUMN labels_json VARCHAR;
ALTER TABLE alerts ADD COLUMN value DOUBLE;
ALTER TABLE alerts ADD COLUMN actions_json VARCHAR;

-- Snoozes apply to the dedupe key (rule+machine+key), so a new episode inside the snooze window
-- stays quiet too; acks are per episode (alert_id).
ALTER TABLE alert_acks ADD COLUMN dedupe_key VARCHAR;

CREATE TABLE alert_state (
    rule_id         VARCHAR NOT NULL,
    dedupe_key      VARCHAR NOT NULL,
    alert_id        VARCHAR NOT NULL,
    state           VARCHAR NOT NULL,   -- pending | firing | resolved | cancelled
    machine_id      VARCHAR,
    severity        VARCHAR NOT NULL,
    labels_json     VARCHAR,
    active_since    TIMESTAMPTZ NOT NULL,   -- first evaluation the condition held (episode start)
    fired_at        TIMESTAMPTZ,
    cleared_since   TIMESTAMPTZ,            -- firing but condition false since (keep_firing_for timer)
    resolved_at     TIMESTAMPTZ,
    last_eval_at    TIMESTAMPTZ NOT NULL,
    value           DOUBLE,
    value_text      VARCHAR,
    summary         VARCHAR,
    evidence_json   VARCHAR,
    actions_json    VARCHAR,
    PRIMARY KEY (rule_id, dedupe_key)
);

CREATE TABLE alert_events (
    event_id        VARCHAR PRIMARY KEY,    -- hash of alert_id, to_state, ts
    ts              TIMESTAMPTZ NOT NULL,
    alert_id        VARCHAR NOT NULL,
    rule_id         VARCHAR NOT NULL,
    machine_id      VARCHAR,
    dedupe_key      VARCHAR NOT NULL,
    from_state      VARCHAR NOT NULL,       -- inactive | pending | firing
    to_state        VARCHAR NOT NULL,       -- pending | firing | resolved | cancelled
    severity        VARCHAR NOT NULL,
    value           DOUBLE,
    reason          VARCHAR,
    summary         VARCHAR,
    labels_json     VARCHAR,
    evidence_json   VARCHAR,
    snoozed_until   TIMESTAMPTZ
);
