"""Unit tests for alert rules, in the spirit of `promtool test rules`.

A test file feeds hand-written series to the real rules and the real state machine, stepping the
evaluation clock every `evaluation_interval`, and checks which alerts are pending or firing at given
times. It needs no database, so a rule change is checked in milliseconds:

    rule_files: [../../workbench/alerts/rules/default.yaml]   # relative to this file; default: shipped
    evaluation_interval: 1m
    tests:
      - name: disk fills up
        interval: 1m                       # spacing of the input samples
        input_series:
          - series: 'disk_free_pct{machine_id="m1", mount="/data"}'
            values: "30-5x4 8x10 _x3 40"
        alert_rule_test:
          - eval_time: 6m
            rule: disk_free_low            # only this rule's alerts are compared
            exp_alerts:
              - labels: {machine_id: m1, mount: /data}
                state: pending             # pending | firing (default) | resolved | cancelled
                summary: "…"               # optional, compared exactly

Compact values (as promtool): `a` one sample; `a+bxn` n+1 samples a, a+b, …, a+n·b (also `a-bxn`);
`axn` n+1 samples of a; `_` one missing sample; `_xn` n missing samples. `values` may also be a
YAML list (numbers, strings for pattern rules, null for a gap).

An alert listed in `exp_alerts` must be present with those labels (unlisted labels are not compared)
and that state; every pending or firing alert of the compared rules must be listed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from workbench.alerts.engine import evaluate, value_human
from workbench.alerts.model import AlertState, Series, StateKey, human_duration, parse_duration
from workbench.alerts.rules import DEFAULT_RULES, Rule, RulesError, load_rules
from workbench.alerts.sources import REGISTRY

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
# The file name ends in _test.py (as asked for); it holds no pytest tests.
__test__ = False
MAX_STEPS = 100_000  # evaluation steps per test: a typo like eval_time: 10d at 1s must not hang


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpAlert(_Strict):
    rule: str | None = None
    labels: dict[str, str] = {}
    state: Literal["pending", "firing", "resolved", "cancelled"] = "firing"
    summary: str | None = None


class AlertRuleTest(_Strict):
    eval_time: Duration
    rule: str | None = None
    exp_alerts: list[ExpAlert] = []


class InputSeries(_Strict):
    series: str
    values: str | list[float | str | None]


class RuleTestCase(_Strict):
    name: str | None = None
    interval: Duration = timedelta(minutes=1)
    evaluation_interval: Duration | None = None
    start: datetime = DEFAULT_START
    input_series: list[InputSeries] = []
    alert_rule_test: Annotated[list[AlertRuleTest], Field(min_length=1)]


class RuleTestFile(_Strict):
    rule_files: list[str] = []
    evaluation_interval: Duration = timedelta(minutes=1)
    tests: Annotated[list[RuleTestCase], Field(min_length=1)]


class RulesTestFileError(ValueError):
    """The test file itself is unusable (not a failing expectation)."""


# ---------------------------------------------------------------- notation

_SERIES_RE = re.compile(r"^\s*(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(?P<labels>.*)\})?\s*$")
_LABEL_RE = re.compile(r'\s*(?P<k>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*"(?P<v>(?:[^"\\]|\\.)*)"\s*(?:,|$)')
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_UNUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_EXPAND_RE = re.compile(rf"^(?P<a>{_NUM})(?:(?P<sign>[+-])(?P<b>{_UNUM}))?x(?P<n>\d+)$")
_GAPS_RE = re.compile(r"^_x(?P<n>\d+)$")
_MAX_EXPANSION = 1_000_000


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """'disk_free_pct{machine_id="m1", mount="/"}' → ('disk_free_pct', {...})."""
    m = _SERIES_RE.match(text)
    if not m:
        raise ValueError(f"not a series like name{{label=\"value\"}}: {text!r}")
    labels: dict[str, str] = {}
    body = (m["labels"] or "").strip()
    pos = 0
    while pos < len(body):
        lm = _LABEL_RE.match(body, pos)
        if not lm or lm.end() == pos:
            raise ValueError(f"bad label list in {text!r} near {body[pos:]!r}")
        labels[lm["k"]] = bytes(lm["v"], "utf-8").decode("unicode_escape")
        pos = lm.end()
    return m["name"], labels


def expand_values(values: str | list[Any]) -> list[float | str | None]:
    """Compact notation (see the module docstring) → one entry per interval, None for a gap."""
    if isinstance(values, list):
        return list(values)
    out: list[float | str | None] = []
    for tok in values.split():
        if tok == "_":
            out.append(None)
            continue
        g = _GAPS_RE.match(tok)
        if g:
            n = int(g["n"])
            if n > _MAX_EXPANSION:
                raise ValueError(f"{tok!r}: too many samples")
            out.extend([None] * n)
            continue
        e = _EXPAND_RE.match(tok)
        if e:
            a, n = float(e["a"]), int(e["n"])
            if n > _MAX_EXPANSION:
                raise ValueError(f"{tok!r}: too many samples")
            b = float(e["b"] or 0) * (-1 if e["sign"] == "-" else 1)
            out.extend(a + i * b for i in range(n + 1))
            continue
        try:
            out.append(float(tok))
        except ValueError:
            raise ValueError(f"cannot read value {tok!r} (expected a number, a+bxn, axn, _ or _xn)") from None
    return out


# ---------------------------------------------------------------- running

@dataclass
class CaseResult:
    test_index: int
    test_name: str | None
    eval_time: timedelta
    rule: str | None
    passed: bool
    diff: list[str] = field(default_factory=list)

    @property
    def test_title(self) -> str:
        return f"test #{self.test_index + 1}" + (f' "{self.test_name}"' if self.test_name else "")

    @property
    def title(self) -> str:
        rule = f" (rule {self.rule})" if self.rule else ""
        return f"eval_time {human_duration(self.eval_time.total_seconds())}{rule}"


@dataclass
class RulesTestReport:
    path: Path
    cases: list[CaseResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors and all(c.passed for c in self.cases)

    @property
    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]

    def render(self) -> str:
        lines = [str(self.path)]
        lines += [f"  ERROR {e}" for e in self.errors]
        current = None
        for c in self.cases:
            if c.test_index != current:
                current = c.test_index
                lines.append(f"  {c.test_title}")
            lines.append(f"    {'PASS' if c.passed else 'FAIL'}  {c.title}")
            lines.extend(f"          {d}" for d in c.diff)
        n_fail = len(self.failures)
        lines.append(f"  {len(self.cases) - n_fail} passed, {n_fail} failed"
                     + (f", {len(self.errors)} error(s)" if self.errors else ""))
        return "\n".join(lines)


def _load(path: Path) -> tuple[RuleTestFile, list[Rule]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RulesTestFileError(f"cannot read: {e}") from e
    except yaml.YAMLError as e:
        raise RulesTestFileError(f"not valid YAML: {e}") from e
    try:
        tf = RuleTestFile.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            got = err.get("input")
            got_s = "" if isinstance(got, dict | list) or err["type"] == "missing" else f" (got {got!r})"
            msgs.append(f"key {key!r}: {err['msg']}{got_s}")
        raise RulesTestFileError("; ".join(msgs)) from e
    files = [(path.parent / f).resolve() for f in tf.rule_files] or [DEFAULT_RULES]
    try:
        rules = load_rules(files)
    except RulesError as e:
        raise RulesTestFileError(f"rules do not load:\n{e}") from e
    return tf, rules


def _fmt_labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _fmt_actual(st: AlertState, rules: dict[str, Rule], start: datetime) -> str:
    rule = rules.get(st.rule_id)
    val = st.value_text if st.value_text is not None else st.value
    since = human_duration((st.active_since - start).total_seconds())
    v = value_human(rule, val) if rule and val is not None else "n/a"
    return (f"{st.rule_id}{_fmt_labels(st.labels)} state={st.state} value={v} since={since} "
            f"summary={st.summary!r}")


def _fmt_expected(e: ExpAlert, rule: str | None) -> str:
    s = f"{e.rule or rule}{_fmt_labels(e.labels)} state={e.state}"
    return s + (f" summary={e.summary!r}" if e.summary is not None else "")


def _matches(e: ExpAlert, st: AlertState, rule: str | None) -> bool:
    want_rule = e.rule or rule
    if want_rule is not None and st.rule_id != want_rule:
        return False
    if st.state != e.state:
        return False
    if any(st.labels.get(k) != v for k, v in e.labels.items()):
        return False
    return e.summary is None or st.summary == e.summary


def _check(art: AlertRuleTest, states: dict[StateKey, AlertState], rules: dict[str, Rule],
           start: datetime) -> list[str]:
    compared = [s for s in states.values() if art.rule is None or s.rule_id == art.rule]
    active = [s for s in compared if s.is_active]
    used: set[StateKey] = set()
    missing = []
    for e in art.exp_alerts:
        pool = active if e.state in ("pending", "firing") else [s for s in compared if not s.is_active]
        hit = next((s for s in pool if s.key not in used and _matches(e, s, art.rule)), None)
        if hit is None:
            missing.append(e)
        else:
            used.add(hit.key)
    extra = [s for s in active if s.key not in used]
    diff = []
    if missing:
        diff.append("expected, not found:")
        diff += [f"  - {_fmt_expected(e, art.rule)}" for e in missing]
    if extra:
        diff.append("found, not expected:")
        diff += [f"  + {_fmt_actual(s, rules, start)}" for s in sorted(extra, key=lambda s: s.key)]
    if diff:
        others = [s for s in compared if s.key not in used and s not in extra]
        if others:
            diff.append("other alerts at that time:")
            diff += [f"    {_fmt_actual(s, rules, start)}" for s in sorted(others, key=lambda s: s.key)]
    return diff


def _build_series(case: RuleTestCase, wanted: dict[str, Rule]) -> dict[str, list[Series]]:
    out: dict[str, list[Series]] = {}
    sources = {r.source for r in wanted.values()}
    for i, inp in enumerate(case.input_series):
        try:
            name, labels = parse_series(inp.series)
            values = expand_values(inp.values)
        except ValueError as e:
            raise RulesTestFileError(f"input_series #{i + 1}: {e}") from e
        if name not in sources:
            raise RulesTestFileError(f"input_series #{i + 1}: no enabled rule reads {name!r} "
                                     f"(rules read: {', '.join(sorted(sources))})")
        spec = REGISTRY.get(name)
        if spec is not None:
            lacking = [lab for lab in spec.labels if lab not in labels]
            if lacking:
                raise RulesTestFileError(f"input_series #{i + 1}: {name} needs label(s) {', '.join(lacking)}")
        pts = [(case.start + k * case.interval, v) for k, v in enumerate(values) if v is not None]
        out.setdefault(name, []).append(Series.of(name, labels, pts, spec.table if spec else None))
    return out


def run_rules_test(path: Path) -> RulesTestReport:
    """Run every test of one file; pass/fail per (test, eval_time) with a readable diff."""
    path = Path(path)
    report = RulesTestReport(path)
    try:
        tf, rules = _load(path)
    except RulesTestFileError as e:
        report.errors.append(str(e))
        return report
    by_id = {r.id: r for r in rules}
    for ti, case in enumerate(tf.tests):
        unknown = sorted({a.rule for a in case.alert_rule_test if a.rule and a.rule not in by_id}
                         | {e.rule for a in case.alert_rule_test for e in a.exp_alerts
                            if e.rule and e.rule not in by_id})
        if unknown:
            report.errors.append(f"test #{ti + 1}: unknown or disabled rule(s) {', '.join(unknown)}")
            continue
        try:
            series = _build_series(case, by_id)
        except RulesTestFileError as e:
            report.errors.append(f"test #{ti + 1}: {e}")
            continue
        step = case.evaluation_interval or tf.evaluation_interval
        if step <= timedelta(0):
            report.errors.append(f"test #{ti + 1}: evaluation_interval must be longer than 0s")
            continue
        checks = sorted(case.alert_rule_test, key=lambda a: a.eval_time)
        last = checks[-1].eval_time
        times = sorted({step * k for k in range(int(last / step) + 1)} | {a.eval_time for a in checks})
        if len(times) > MAX_STEPS:
            report.errors.append(f"test #{ti + 1}: {len(times)} evaluation steps; raise evaluation_interval")
            continue
        states: dict[StateKey, AlertState] = {}
        pending_checks = list(checks)
        for t in times:
            states = evaluate(rules, series, states, case.start + t).states
            while pending_checks and pending_checks[0].eval_time == t:
                art = pending_checks.pop(0)
                diff = _check(art, states, by_id, case.start)
                report.cases.append(CaseResult(ti, case.name, art.eval_time, art.rule, not diff, diff))
    return report


def rules_test_cli(path: Path) -> int:
    """`vc rules test FILE|DIR`: print the report(s); 0 all passed, 1 a test failed, 2 a file is unusable."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.test.yaml")) + sorted(path.glob("*.test.yml"))
        if not files:
            print(f"{path}: no *.test.yaml files", file=sys.stderr)
            return 2
    elif path.is_file():
        files = [path]
    else:
        print(f"{path}: no such file or directory", file=sys.stderr)
        return 2
    code = 0
    for f in files:
        rep = run_rules_test(f)
        print(rep.render())
        if rep.errors:
            code = 2
        elif not rep.passed and code == 0:
            code = 1
    return code
