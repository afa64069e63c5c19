"""Provider accounts: rate-window usage and resets, one row per real account however many report it.

caut and caam on every machine report the subscriptions that machine is logged into, so one account
used from ten machines arrives ten times (twenty with both tools). Collectors key each report by a
normalized `account_key` (provider + lowercased email where known); here each machine's latest
report per tool is taken, and the reports of one (provider, account_key, window) are merged: the
figure of the most recent report, the highest figure any current report gives, and the machines
and tools that report it. Nothing is summed: two machines on one account share one quota.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from workbench.views.machines import pick_bucket_seconds
from workbench.views.snapshots import age_seconds, latest_rows, scoped

ACCOUNT_KEY = ("provider", "account_key", "window_name")
# Windows in the order a person reads them: the session window first, then weekly, model tiers.
WINDOW_ORDER = {"primary": 0, "secondary": 1, "tertiary": 2}


def latest_usage(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None,
                 since: datetime | None = None) -> ir.Table:
    """Each machine's most recent collection per tool (caut, caam): its rows as they were reported.

    An account that a machine no longer reports (logged out) drops out with that machine's next
    collection instead of lingering at its last figure.
    """
    u = scoped(con.table("account_usage_snapshots"), machine_ids, since)
    return latest_rows(u, ["machine_id", "source"])


def account_usage(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None,
                  since: datetime | None = None) -> ir.Table:
    """One row per (provider, account_key, window_name) across machines and tools.

    used_pct / resets_at / window_minutes: from the most recent report (by the tool's own fetch
    time, else the collection time); max_used_pct: the highest current report; machines / sources:
    who reports it; reset_passed: the window reset after that report, so used_pct is stale.
    """
    u = latest_usage(con, machine_ids, since)
    u = u.mutate(seen_at=ibis.coalesce(u.reported_at, u.collected_at))
    seen = u.seen_at

    def last(col: ir.Column) -> ir.Scalar:
        # The most recent report that has this field; fields a tool leaves out do not erase another's.
        return col.argmax(seen, where=col.notnull())

    g = u.group_by(list(ACCOUNT_KEY)).agg(
        account_email=last(u.account_email),
        account_label=last(u.account_label),
        organization=last(u.organization),
        plan_type=last(u.plan_type),
        used_pct=last(u.used_pct),
        max_used_pct=u.used_pct.max(),
        window_minutes=last(u.window_minutes),
        resets_at=last(u.resets_at),
        reset_description=last(u.reset_description),
        credits_remaining=last(u.credits_remaining),
        burn_pct_per_hour=last(u.burn_pct_per_hour),
        estimated_depletion_at=last(u.estimated_depletion_at),
        error=u.error.argmax(seen),
        auth_warning=u.auth_warning.argmax(seen),
        reported_at=seen.max(),
        latest_machine=u.machine_id.argmax(seen),
        machines=u.machine_id.collect(distinct=True, order_by=u.machine_id),
        sources=u.source.collect(distinct=True, order_by=u.source),
        machine_count=u.machine_id.nunique(),
    )
    now_lit = ibis.literal(now)
    out = g.mutate(
        remaining_pct=100.0 - g.used_pct,
        resets_in_seconds=(g.resets_at.epoch_seconds() - now_lit.epoch_seconds()).cast("float64"),
        reset_passed=g.resets_at.notnull() & (g.resets_at <= now_lit) & (g.resets_at > g.reported_at),
        age_seconds=age_seconds(now, g.reported_at),
        window_order=ibis.cases(*[(g.window_name == k, v) for k, v in WINDOW_ORDER.items()], else_=9),
    )
    return out.order_by(["provider", "account_key", "window_order", "window_name"])


def provider_summary(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None,
                     since: datetime | None = None) -> ir.Table:
    """Per provider: accounts, the fullest window (which account, which window) and the next reset."""
    a = account_usage(con, now, machine_ids, since)
    live = a.resets_at > ibis.literal(now)
    return a.group_by("provider").agg(
        accounts=a.account_key.nunique(),
        max_used_pct=a.used_pct.max(),
        fullest_account=a.account_key.argmax(a.used_pct, where=a.used_pct.notnull()),
        fullest_window=a.window_name.argmax(a.used_pct, where=a.used_pct.notnull()),
        next_reset_at=a.resets_at.min(where=live),
        errors=(a.error.notnull()).sum(),
    ).order_by("provider")


def usage_series(con: ibis.BaseBackend, start: datetime, end: datetime, machine_ids: Sequence[str] | None = None,
                 windows: Sequence[str] = ("primary", "secondary"),
                 bucket_seconds: int | None = None) -> ir.Table:
    """used_pct per account window over time (highest report per bucket: machines share one quota)."""
    u = scoped(con.table("account_usage_snapshots"), machine_ids, start, end)
    u = u.filter(u.window_name.isin(list(windows)) & u.used_pct.notnull())
    step = bucket_seconds or pick_bucket_seconds(start, end)
    u = u.mutate(bucket=u.collected_at.bucket(ibis.interval(seconds=step)))
    g = u.group_by(["bucket", "provider", "account_key", "window_name"]).agg(used_pct=u.used_pct.max())
    return g.mutate(series=g.account_key + " · " + g.window_name).rename(ts="bucket").order_by(["series", "ts"])


def account_logins(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """caam's view per machine and tool: logged in, which profile/account, token health, cooldowns."""
    s = latest_rows(scoped(con.table("caam_status_snapshots"), machine_ids), ["machine_id"])
    return s.select(
        "machine_id", "tool", "logged_in", "active_profile", "account_key", "health_status", "health_reason",
        "health_expires_at", "health_error_count", "cooldown_remaining", "identity_plan_type", "error",
        "notices_json", "collected_at", age_seconds=age_seconds(now, s.collected_at),
    ).order_by(["machine_id", "tool"])


def account_totals(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None,
                   since: datetime | None = None) -> ir.Table:
    """One row: accounts and providers, accounts shared by machines, the fullest window, the next reset."""
    a = account_usage(con, now, machine_ids, since)
    has_pct = a.used_pct.notnull()
    return a.aggregate(
        accounts=a.account_key.nunique(),
        providers=a.provider.nunique(),
        shared_accounts=a.account_key.nunique(where=a.machine_count > 1),
        fullest_used_pct=a.used_pct.max(),
        fullest_account=a.account_key.argmax(a.used_pct, where=has_pct),
        fullest_window=a.window_name.argmax(a.used_pct, where=has_pct),
        next_reset_in_seconds=a.resets_in_seconds.min(where=a.resets_in_seconds > 0),
        errors=a.error.notnull().sum(),
    )
