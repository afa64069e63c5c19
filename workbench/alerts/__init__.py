"""Alerts: rules over named series, a pending → firing → resolved state machine, delivery.

Modules: `rules` (YAML rules), `sources` (the series registry of Ibis views), `engine` (pure
`evaluate`, `evaluate_and_store`, `ack`, `snooze`), `delivery` (alerts.jsonl and webhooks),
`service` (`AlertService`, what the daemon calls after each cycle), `rules_test` (promtool-like
rule tests). Nothing is imported here, so `workbench.config` can import `alerts.config` freely.
"""
