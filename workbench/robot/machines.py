"""`vc robot machines` and `vc robot machine ID`: machine inventory and one machine in depth."""

from __future__ import annotations

from datetime import datetime

from workbench.config import VcConfig
from workbench.robot.envelope import envelope, to_jsonable
from workbench.store import Store
from workbench.views import health as vh
from workbench.views import machines as vm
from workbench.views import ops

STALE_AFTER_S = 900.0


def _staleness(last_sample, poll: dict) -> dict:
    age = to_jsonable(poll.get("age_seconds"))
    return {"last_sample_at": last_sample, "last_poll_at": poll.get("last_run_at"), "poll_age_seconds": age,
            "stale": age is None or age > STALE_AFTER_S}


def build_list(cfg: VcConfig, store: Store, now: datetime) -> dict:
    with store.reader() as con:
        state = vm.machine_state(con, now).execute()
        mh = vh.machine_health(con, cfg.health, now).execute()[["machine_id", "score", "severity", "worst_factor",
                                                                "worst_detail"]]
        poll = ops.poll_freshness(con, now).execute().to_dict("records")[0]
    df = state.merge(mh, on="machine_id", how="left")
    warnings = [] if len(df) else ["no machines known yet"]
    last = df["last_ts"].max() if len(df) else None
    return envelope({"machines": df.to_dict("records")}, _staleness(last, poll), warnings, now)


def build_one(cfg: VcConfig, store: Store, now: datetime, machine_id: str) -> dict | None:
    """None when the machine is unknown (the CLI turns that into a clear error)."""
    with store.reader() as con:
        state = vm.machine_state(con, now, machine_ids=[machine_id]).execute()
        if not len(state):
            return None
        factors = vh.health_factors(con, cfg.health, now, machine_ids=[machine_id]).execute()
        mh = vh.machine_health(con, cfg.health, now, machine_ids=[machine_id]).execute()
        fs = vm.latest_filesystems(con).execute()
        top = vm.top_processes(con, machine_id).execute()
        runs = ops.collector_status(con, now).execute()
        poll = ops.poll_freshness(con, now).execute().to_dict("records")[0]
    st = state.to_dict("records")[0]
    h = mh.to_dict("records")[0] if len(mh) else {}
    data = {
        "machine": st,
        "health": {"score": h.get("score"), "severity": h.get("severity"), "worst_factor": h.get("worst_factor"),
                   "worst_detail": h.get("worst_detail"),
                   "factors": factors.drop(columns=["machine_id", "tiebreak"]).to_dict("records")},
        "filesystems": fs[fs["machine_id"] == machine_id].drop(columns=["machine_id"]).to_dict("records"),
        "top_processes": top.to_dict("records"),
        "collectors": runs[runs["machine_id"] == machine_id].drop(columns=["machine_id"]).to_dict("records"),
    }
    warnings = []
    if st.get("last_ts") is None or (st.get("age_seconds") or 0) > STALE_AFTER_S:
        warnings.append(f"{machine_id}: no recent sample; its readings may be stale or missing")
    return envelope(data, _staleness(st.get("last_ts"), poll), warnings, now)


def list_markdown(doc: dict) -> str:
    lines = [f"# Machines — {doc['generated_at']}", "", "| machine | score | severity | cpu % | mem % | load/core "
             "| fullest disk | last sample age s |", "|---|---|---|---|---|---|---|---|"]
    for m in doc["data"]["machines"]:
        lines.append(f"| {m['machine_id']} | {m.get('score')} | {m.get('severity')} | {_r(m.get('cpu_pct'))} | "
                     f"{_r(m.get('mem_used_pct'))} | {_r(m.get('load_per_core'), 2)} | "
                     f"{m.get('worst_disk_mount') or '-'} {_r(m.get('worst_disk_pct'))}% | "
                     f"{_r(m.get('age_seconds'), 0)} |")
    return "\n".join(lines + [f"- warning: {w}" for w in doc["warnings"]]) + "\n"


def one_markdown(doc: dict) -> str:
    d = doc["data"]
    m, h = d["machine"], d["health"]
    lines = [f"# {m['machine_id']} — score {h.get('score')} ({h.get('severity')})", "",
             f"Worst factor: **{h.get('worst_factor')}** — {h.get('worst_detail')}", "",
             "| factor | value | score | detail |", "|---|---|---|---|"]
    lines += [f"| {f['factor']} | {_r(f.get('value'))} | {f.get('score')} | {f.get('detail')} |" for f in h["factors"]]
    if d["filesystems"]:
        lines += ["", "| mount | used % | free bytes |", "|---|---|---|"]
        lines += [f"| {f['mount']} | {_r(f.get('used_pct'))} | {f.get('free_bytes')} |" for f in d["filesystems"]]
    if d["collectors"]:
        lines += ["", "| collector | status | last run | error |", "|---|---|---|---|"]
        lines += [f"| {c['collector']} | {c['status']} | {c.get('last_started_at')} | {c.get('last_error') or ''} |"
                  for c in d["collectors"]]
    return "\n".join(lines + [f"- warning: {w}" for w in doc["warnings"]]) + "\n"


def _r(v, digits: int = 1):
    return "-" if v is None else round(v, digits)
