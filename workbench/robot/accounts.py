"""`vc robot accounts`: provider accounts, their rate windows and resets, one entry per real account.

An agent deciding which account to switch to needs each account once, with every window's figure
and reset time and the machines that use it; that is the merged view (workbench.views.accounts)
regrouped per account.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from workbench.robot.envelope import envelope, to_jsonable
from workbench.store import Store
from workbench.views import accounts as va
from workbench.views import forecast as fc
from workbench.views import ops

# Accounts are polled less often than machines; older than this and the figures may be wrong.
STALE_AFTER_S = 1800.0
HOT_PCT = 90.0
COST_DAYS = timedelta(days=14)  # spend per provider and day (caut cost), most recent days
_WINDOW_FIELDS = ("window_name", "used_pct", "max_used_pct", "remaining_pct", "window_minutes", "resets_at",
                  "resets_in_seconds", "reset_passed", "reset_description", "reported_at", "age_seconds",
                  "latest_machine", "machines", "sources", "error")
_ACCOUNT_FIELDS = ("provider", "account_key", "account_email", "account_label", "organization", "plan_type",
                   "credits_remaining", "auth_warning")


def _accounts(usage: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows per (account, window), already ordered by the view, regrouped into one entry per account."""
    out: dict[str, dict[str, Any]] = {}
    for row in usage:
        acct = out.get(row["account_key"])
        if acct is None:
            acct = {k: row.get(k) for k in _ACCOUNT_FIELDS} | {"machines": [], "sources": [], "windows": []}
            out[row["account_key"]] = acct
        for k in ("plan_type", "organization", "credits_remaining", "auth_warning", "account_email"):
            if acct.get(k) is None and row.get(k) is not None:
                acct[k] = row[k]
        acct["machines"] = sorted(set(acct["machines"]) | set(row.get("machines") or []))
        acct["sources"] = sorted(set(acct["sources"]) | set(row.get("sources") or []))
        acct["windows"].append({k: row.get(k) for k in _WINDOW_FIELDS})
    return list(out.values())


def build(store: Store, now: datetime, machine_ids: list[str] | None = None) -> dict:
    with store.reader() as con:
        usage = to_jsonable(va.account_usage(con, now, machine_ids=machine_ids).execute().to_dict("records"))
        providers = va.provider_summary(con, now, machine_ids=machine_ids).execute().to_dict("records")
        poll = ops.poll_freshness(con, now).execute().to_dict("records")[0]
        cost = fc.cost_per_day(con, machine_ids=machine_ids, since=(now - COST_DAYS).date()).execute()
    cost_per_day = [{"provider": r["provider"], "day": str(r["day"])[:10], "cost_usd": round(float(r["cost_usd"]), 4),
                     "tokens": None if pd.isna(r["tokens"]) else int(r["tokens"]),
                     "machines": int(r["machines"])} for r in cost.to_dict("records")]
    accounts = _accounts(usage)
    warnings: list[str] = []
    if not accounts:
        warnings.append("no account usage collected yet: caut or caam must run on at least one machine")
    last = max((w["reported_at"] for a in accounts for w in a["windows"] if w["reported_at"]), default=None)
    ages = [w["age_seconds"] for a in accounts for w in a["windows"] if w["age_seconds"] is not None]
    age = min(ages) if ages else None
    if age is not None and age > STALE_AFTER_S:
        warnings.append(f"newest account report is {age:.0f}s old: figures may be stale")
    for a in accounts:
        for w in a["windows"]:
            where = f"{a['account_key']} {w['window_name']}"
            if w["reset_passed"]:
                warnings.append(f"{where}: the window reset after the last report; used_pct is out of date")
            elif w["used_pct"] is not None and w["used_pct"] >= HOT_PCT:
                warnings.append(f"{where}: {w['used_pct']:.0f}% used")
            if w["error"]:
                warnings.append(f"{where}: {w['error']}")
    staleness = {
        "last_report_at": last,
        "report_age_seconds": age,
        "last_poll_at": poll.get("last_run_at"),
        "poll_age_seconds": poll.get("age_seconds"),
        "stale": age is None or age > STALE_AFTER_S,
    }
    return envelope({"accounts": accounts, "providers": providers, "cost_per_day": cost_per_day},
                    staleness, warnings, now)


def to_markdown(doc: dict) -> str:
    lines = [f"# Accounts — {doc['generated_at']}", "",
             "| provider | account | window | used % | max % | resets at | machines | tools |",
             "|---|---|---|---|---|---|---|---|"]
    for a in doc["data"]["accounts"]:
        who = a.get("account_email") or a.get("account_label") or a["account_key"]
        for w in a["windows"]:
            resets = "reset since report" if w.get("reset_passed") else (w.get("resets_at") or "-")
            lines.append(f"| {a['provider']} | {who} | {w['window_name']} | {_pct(w.get('used_pct'))} | "
                         f"{_pct(w.get('max_used_pct'))} | {resets} | {', '.join(w.get('machines') or [])} | "
                         f"{', '.join(w.get('sources') or [])} |")
    if not doc["data"]["accounts"]:
        lines.append("| - | no data yet | | | | | | |")
    if doc["data"]["cost_per_day"]:
        lines += ["", "## Spend per day (caut cost)", "", "| day | provider | USD | machines |", "|---|---|---|---|"]
        lines += [f"| {c['day']} | {c['provider']} | {c['cost_usd']:.2f} | {c['machines']} |"
                  for c in sorted(doc["data"]["cost_per_day"], key=lambda c: (c["day"], c["provider"]),
                                  reverse=True)]
    return "\n".join(lines + [f"- warning: {w}" for w in doc["warnings"]]) + "\n"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.0f}"
