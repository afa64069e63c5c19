"""Alert rules: YAML files validated by pydantic.

A rule says which source series to watch (see `workbench.alerts.sources`), how to turn it into
one number at evaluation time (kind), when that number is bad (condition), for how long it must be
bad before anyone is told (`for:`) and for how long it keeps firing after it recovers
(`keep_firing_for`, so a value hovering around the threshold does not flap). Every error names
the file, the rule and the key, because a rule that silently does not load is an alert that never
fires.

    rules:
      - id: disk_free_low
        kind: threshold            # threshold | rate | absence | pattern | anomaly | forecast
        source: disk_free_pct
        condition: {op: "<", value: 10}
        for: 5m
        keep_firing_for: 15m
        severity: critical         # info | warning | critical
        labels: {team: fleet}
        summary: "{mount} on {machine_id} has {value:.1f}% free"
        actions: ["Find what grew: du -xh --max-depth=2 {mount} | sort -h | tail"]
        dedupe: [machine_id, mount]   # default: all of the source's labels

Kinds and the value they compare (all over points at or before the evaluation time):
  threshold  the newest sample not older than `stale_after` (default 10m)
  rate       (last - first) / elapsed over `window`, scaled to `per` (default 1h)
  absence    seconds since the newest sample, however old; value may be a duration ("10m")
  pattern    string samples in `window` matching the regex (op `matches`), or matching and not
             seen in the `history` before the window (op `new`)
  anomaly    robust z-score of the newest sample against the median/MAD of the rest of `window`
  forecast   seconds until a least-squares line over `window` reaches `target` (inf: never)
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from workbench.alerts.model import human_duration, parse_duration
from workbench.alerts.sources import REGISTRY

DEFAULT_RULES = Path(__file__).resolve().parent / "rules" / "default.yaml"

Kind = Literal["threshold", "rate", "absence", "pattern", "anomaly", "forecast"]
NUMERIC_OPS = (">", ">=", "<", "<=", "==", "!=")
PATTERN_OPS = ("matches", "new")
SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

# Kind-specific keys: which a kind accepts, which it requires.
KIND_PARAMS: dict[str, set[str]] = {
    "threshold": {"stale_after"},
    "rate": {"window", "per", "min_samples"},
    "absence": set(),
    "pattern": {"window", "history"},
    "anomaly": {"window", "min_samples", "direction"},
    "forecast": {"window", "target", "min_samples"},
}
KIND_REQUIRED: dict[str, set[str]] = {"rate": {"window"}, "pattern": {"window"}, "anomaly": {"window"},
                                      "forecast": {"window", "target"}}
ALL_PARAMS = set().union(*KIND_PARAMS.values())

# Fields every summary/action template may use besides the alert's labels.
TEMPLATE_FIELDS = {"rule_id", "severity", "value", "value_human", "threshold", "threshold_human", "op",
                   "window", "unit"}


class RulesError(ValueError):
    """A rule file that cannot be used; the message names file, rule and key."""


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal[">", ">=", "<", "<=", "==", "!=", "matches", "new"]
    value: float | str

    @property
    def number(self) -> float:
        """The numeric threshold (durations already turned into seconds by the rule check)."""
        return float(self.value)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]
    kind: Kind
    source: Annotated[str, Field(min_length=1)]
    condition: Condition
    for_: Annotated[Duration, Field(alias="for")] = timedelta(0)
    keep_firing_for: Duration = timedelta(0)
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = {}
    summary: Annotated[str, Field(min_length=1)]
    description: str | None = None
    actions: list[str] = []
    dedupe: list[str] | None = None
    enabled: bool = True
    # kind-specific (see KIND_PARAMS)
    window: Duration | None = None
    per: Duration | None = None
    stale_after: Duration | None = None
    target: float | None = None
    history: Duration | None = None
    min_samples: Annotated[int, Field(ge=1, le=100_000)] | None = None
    direction: Literal["up", "down", "both"] | None = None
    # where the rule came from, for messages; not part of the YAML
    origin: str = Field(default="", exclude=True)

    # ---- resolved parameters (defaults per kind) ----
    @property
    def stale_after_td(self) -> timedelta:
        return self.stale_after or timedelta(minutes=10)

    @property
    def per_td(self) -> timedelta:
        return self.per or timedelta(hours=1)

    @property
    def history_td(self) -> timedelta:
        return self.history or timedelta(days=7)

    @property
    def min_samples_n(self) -> int:
        if self.min_samples:
            return self.min_samples
        return {"rate": 2, "anomaly": 10, "forecast": 5}.get(self.kind, 1)

    @property
    def direction_s(self) -> str:
        return self.direction or "both"

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(str(self.condition.value))

    @property
    def dedupe_fields(self) -> list[str]:
        if self.dedupe is not None:
            return list(self.dedupe)
        spec = REGISTRY.get(self.source)
        return list(spec.labels) if spec else ["machine_id"]

    def lookback(self) -> timedelta:
        """How much history before `now` the kind reads."""
        if self.kind == "threshold":
            return self.stale_after_td
        if self.kind == "pattern" and self.condition.op == "new":
            return (self.window or timedelta(0)) + self.history_td
        return self.window or timedelta(0)

    @property
    def fetch_mode(self) -> str:
        return "latest" if self.kind == "absence" else "window"

    def describe_condition(self) -> str:
        v = self.condition.value
        if isinstance(v, float):
            v = human_duration(v) if is_duration_valued(self) else f"{v:g}"
        return f"{self.condition.op} {v}"


# ---------------------------------------------------------------- loading

def _rule_lines(text: str) -> list[int]:
    """1-based line of each item under `rules:`, for messages (best effort)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(node, yaml.MappingNode):
        return []
    for k, v in node.value:
        if getattr(k, "value", None) == "rules" and isinstance(v, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in v.value]
    return []


def _where(path: Path | str, index: int, raw: Any, lines: list[int]) -> str:
    rid = raw.get("id") if isinstance(raw, dict) else None
    line = f", line {lines[index]}" if index < len(lines) else ""
    who = f"rule {rid!r}" if rid else "rule (no id)"
    return f"{path}: {who} (#{index + 1}{line})"


def _kind_checks(rule: Rule, raw: dict[str, Any]) -> tuple[Rule, list[tuple[str, str]]]:
    """Checks pydantic cannot express per kind; returns the rule with normalized condition value."""
    errs: list[tuple[str, str]] = []
    allowed = KIND_PARAMS[rule.kind]
    for key in sorted(ALL_PARAMS - allowed):
        if raw.get(key) is not None:
            accepts = ", ".join(sorted(allowed)) or "none"
            errs.append((key, f"not used by kind {rule.kind!r} (it accepts: {accepts})"))
    for key in sorted(KIND_REQUIRED.get(rule.kind, set())):
        if raw.get(key) is None:
            errs.append((key, f"required for kind {rule.kind!r}"))
    if rule.window is not None and rule.window <= timedelta(0):
        errs.append(("window", "must be longer than 0s"))
    if rule.per is not None and rule.per <= timedelta(0):
        errs.append(("per", "must be longer than 0s"))
    cond = rule.condition
    if rule.kind == "pattern":
        if cond.op not in PATTERN_OPS:
            errs.append(("condition.op",
                         f"kind 'pattern' needs one of {', '.join(PATTERN_OPS)} (got {cond.op!r})"))
        elif not isinstance(cond.value, str):
            errs.append(("condition.value",
                         f"kind 'pattern' needs a regular expression (got {cond.value!r})"))
        else:
            try:
                re.compile(cond.value)
            except re.error as e:
                errs.append(("condition.value", f"not a valid regular expression: {e}"))
        if cond.op != "new" and raw.get("history") is not None:
            errs.append(("history", "only used with condition op 'new'"))
    else:
        if cond.op not in NUMERIC_OPS:
            errs.append(("condition.op",
                         f"kind {rule.kind!r} needs one of {' '.join(NUMERIC_OPS)} (got {cond.op!r})"))
        elif isinstance(cond.value, str):
            # Durations read better for ages and ETAs: "10m" means 600 (seconds).
            try:
                rule = rule.model_copy(update={"condition": Condition(
                    op=cond.op, value=parse_duration(cond.value).total_seconds())})
            except ValueError:
                errs.append(("condition.value",
                             f"expected a number or a duration like 10m (got {cond.value!r})"))
    spec = REGISTRY.get(rule.source)
    if spec is None and rule.enabled:
        known = ", ".join(sorted(REGISTRY))
        errs.append(("source", f"unknown source {rule.source!r} (known: {known}); "
                               "a rule for a source not collected yet must say `enabled: false`"))
    if spec is not None:
        for f in rule.dedupe or []:
            if f not in spec.labels:
                errs.append(("dedupe", f"{f!r} is not a label of source {spec.name!r} "
                                       f"(labels: {', '.join(spec.labels)})"))
        clash = sorted(set(rule.labels) & set(spec.labels))
        if clash:
            errs.append(("labels", f"{', '.join(clash)} would override the series' own label(s)"))
        if spec.value_type == "string" and rule.kind != "pattern":
            errs.append(("kind", f"source {spec.name!r} carries text; only kind 'pattern' can use it"))
    errs.extend(_template_checks(rule, spec.labels if spec else None))
    return rule, errs


def is_duration_valued(rule: Rule) -> bool:
    """Ages and ETAs read better as 12m than as 720."""
    spec = REGISTRY.get(rule.source)
    if rule.kind in ("absence", "forecast"):
        return True
    seconds = rule.source.endswith("_seconds") or (spec is not None and spec.unit == "s")
    return rule.kind == "threshold" and seconds


def template_values(rule: Rule, labels: dict[str, str], value: Any, value_human: str) -> dict[str, Any]:
    spec = REGISTRY.get(rule.source)
    thr = rule.condition.value
    human_thr = thr
    if is_duration_valued(rule) and isinstance(thr, float):
        human_thr = human_duration(thr)
    return {
        **labels, "rule_id": rule.id, "severity": rule.severity, "value": value, "value_human": value_human,
        "threshold": thr, "threshold_human": human_thr, "op": rule.condition.op,
        "window": "" if rule.window is None else _short(rule.window), "unit": spec.unit if spec else "",
    }


def _short(td: timedelta) -> str:
    return human_duration(td.total_seconds())


def _template_checks(rule: Rule, source_labels: tuple[str, ...] | None) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    names = set(TEMPLATE_FIELDS) | set(rule.labels)
    if source_labels is not None:
        names |= set(source_labels)
    templates = [("summary", rule.summary)] + [(f"actions.{i}", a) for i, a in enumerate(rule.actions)]
    sample_value: Any = "sample text" if rule.kind == "pattern" else 12.5
    fake_labels = {n: "x" for n in (source_labels or ())} | dict(rule.labels)
    for key, tpl in templates:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(tpl) if f is not None]
        except ValueError as e:
            errs.append((key, f"bad template: {e}"))
            continue
        bad = [f for f in fields if not f or "." in f or "[" in f]
        if bad:
            errs.append((key, "placeholders must be plain names like {machine_id} (got "
                              + ", ".join("{" + b + "}" for b in bad) + ")"))
            continue
        if source_labels is not None:
            unknown = sorted(set(fields) - names)
            if unknown:
                errs.append((key, f"unknown placeholder(s) {', '.join(unknown)}; "
                                  f"available: {', '.join(sorted(names))}"))
                continue
            try:
                tpl.format_map(template_values(rule, fake_labels, sample_value, "12m"))
            except (ValueError, TypeError, KeyError) as e:
                errs.append((key, f"template does not render: {e}"))
    return errs


def parse_rules(text: str, origin: str | Path) -> list[Rule]:
    """All rules of one YAML document (enabled or not); raises RulesError listing every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RulesError(f"{origin}: not valid YAML: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RulesError(f"{origin}: expected a mapping with a `rules:` list at the top level")
    extra = sorted(set(data) - {"rules", "version"})
    if extra:
        raise RulesError(f"{origin}: unknown top-level key(s) {', '.join(extra)} (expected: rules, version)")
    lines = _rule_lines(text)
    problems: list[str] = []
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(data["rules"]):
        where = _where(origin, i, raw, lines)
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
            continue
        if "origin" in raw:
            problems.append(f"{where}: key 'origin': not a rule key")
            continue
        try:
            rule = Rule.model_validate({**raw, "origin": f"{origin}#{i + 1}"})
        except ValidationError as e:
            for err in e.errors():
                key = ".".join(str(p) for p in err["loc"]) or "(rule)"
                got = err.get("input")
                got_s = "" if isinstance(got, dict | list) or err["type"] == "missing" else f" (got {got!r})"
                problems.append(f"{where}: key {key!r}: {err['msg']}{got_s}")
            continue
        rule, errs = _kind_checks(rule, raw)
        problems.extend(f"{where}: key {k!r}: {msg}" for k, msg in errs)
        if rule.id in seen:
            problems.append(f"{where}: key 'id': duplicate rule id (first defined as #{seen[rule.id] + 1})")
        seen.setdefault(rule.id, i)
        if not errs:
            rules.append(rule)
    if problems:
        raise RulesError("\n".join(problems))
    return rules


def load_rule_file(path: Path) -> list[Rule]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesError(f"{path}: cannot read rule file: {e}") from e
    return parse_rules(text, path)


def load_rules(paths: Path | Iterable[Path] | None = None, include_disabled: bool = False) -> list[Rule]:
    """Rules from `paths` (default: the shipped rules/default.yaml), ids unique across files."""
    if paths is None:
        paths = [DEFAULT_RULES]
    elif isinstance(paths, str | Path):
        paths = [Path(paths)]
    out: list[Rule] = []
    where: dict[str, str] = {}
    problems: list[str] = []
    for p in paths:
        for r in load_rule_file(Path(p)):
            if r.id in where:
                problems.append(f"{p}: rule {r.id!r}: key 'id': duplicate rule id (also in {where[r.id]})")
                continue
            where[r.id] = str(p)
            out.append(r)
    if problems:
        raise RulesError("\n".join(problems))
    return out if include_disabled else [r for r in out if r.enabled]
