"""Recorded payloads per collector, for the contract test and the SSH fleet (one mapping, two users).

Every collector in `collectors.registry.ALL` needs an entry here: which fake upstream tools print
which recorded payload (a file in ../shared/upstream_formats, a file in sample_data/, or the
reconstructed ```json block of a format note when upstream has no verbatim output), which files the
machine's HOME must hold, and the collector options that point at them. A collector without an entry
fails tests/test_contract.py on purpose: the contract (rows insert into the migrated schema) is only
worth something if no collector can skip it.

`{home}` in option values and file paths is the fake machine's HOME (a temp dir locally, the sshd
test host's HOME over SSH), so the same case runs through the LocalExecutor and over SSH.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.toolbox import SHARED_FORMATS, Tool

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO_ROOT / "sample_data"


@dataclass(frozen=True)
class Payload:
    """Where one recorded output comes from.

    `file`: a name in the shared formats dir, or a path starting with `sample_data/` (bytes as stored).
    `md` + `section`: the first ```json block after the regex `section` in that format note (the
    reconstructed examples, used only where no verbatim payload exists upstream).
    `fixes`: literal (old, new) replacements for elisions such as `…` that make a note's block invalid.
    `one_line`: re-serialize the JSON on one line (tools that print one document per line).
    `sqlite`: the text is SQL (a schema plus rows); the payload is the SQLite database it builds, for
    sources read as database files.
    """

    file: str | None = None
    md: str | None = None
    section: str | None = None
    fixes: tuple[tuple[str, str], ...] = ()
    one_line: bool = False
    sqlite: bool = False

    def load(self) -> bytes:
        return _load(self)

    def describe(self) -> str:
        return self.file or f"{self.md} ({self.section})"


@cache
def _load(p: Payload) -> bytes:
    if p.file is not None:
        path = REPO_ROOT / p.file if p.file.startswith("sample_data/") else SHARED_FORMATS / p.file
        raw = path.read_bytes()
        if not (p.fixes or p.one_line or p.sqlite):
            return raw
        data = raw.decode("utf-8")
    else:
        assert p.md and p.section, f"payload needs file or md+section: {p}"
        text = (SHARED_FORMATS / p.md).read_text(encoding="utf-8")
        m = re.search(p.section + r".*?```(?:json|sql)\n(.*?)```", text, re.S)
        if m is None:
            raise LookupError(f"no ```json block after {p.section!r} in {p.md}")
        data = m[1]
    for old, new in p.fixes:
        if old not in data:
            raise LookupError(f"{p.describe()}: fix {old!r} does not apply (the note changed?)")
        data = data.replace(old, new)
    if p.sqlite:
        return _sqlite_bytes(data)
    if p.one_line:
        data = json.dumps(json.loads(data), separators=(",", ":")) + "\n"
    elif p.file is None:
        json.loads(data)  # a note's block must be valid JSON after fixes, or the case is wrong
    return data.encode("utf-8")


def _sqlite_bytes(sql: str) -> bytes:
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "payload.sqlite"
        con = sqlite3.connect(db)
        try:
            con.executescript(sql)
            con.commit()
        finally:
            con.close()
        return db.read_bytes()


ToolSpec = Payload | dict[str, Payload]


@dataclass(frozen=True)
class ContractCase:
    """What one collector needs to run on recorded payloads.

    `tools`: fake tool name -> payload (or subcommand -> payload; the first argument selects it).
    `files`: path under HOME -> payload, e.g. a repo's `.beads/issues.jsonl`.
    `options`: collector options; `{home}` in strings (also inside lists) is replaced.
    `exit_codes`: fake tool exit code where the real tool's normal exit is not 0 (pt exits 1).
    `http`: URL path -> payload served by a real HTTP server on 127.0.0.1 while the case runs
    (HTTP sources); `{http}` in option values is that server's base URL.
    `allowed_warnings`: regexes of warnings the recorded payload legitimately causes.
    `local_only`: runs only through the LocalExecutor (reads this machine, no upstream tool).
    """

    tools: dict[str, ToolSpec] = field(default_factory=dict)
    files: dict[str, Payload] = field(default_factory=dict)
    http: dict[str, Payload] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    allowed_warnings: tuple[str, ...] = ()
    note: str = ""

    def make_tools(self) -> dict[str, Tool]:
        out: dict[str, Tool] = {}
        for name, spec in self.tools.items():
            code = self.exit_codes.get(name, 0)
            if isinstance(spec, Payload):
                out[name] = Tool(stdout=spec.load(), exit_code=code)
            else:
                out[name] = Tool(by_subcommand={sub: p.load() for sub, p in spec.items()}, exit_code=code)
        return out

    def write_files(self, home: Path) -> list[Path]:
        written = []
        for rel, payload in self.files.items():
            path = home / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload.load())
            written.append(path)
        return written

    def make_options(self, home: Path, http_base: str = "") -> dict[str, Any]:
        return {k: _subst(v, str(home), http_base) for k, v in self.options.items()}

    def http_routes(self) -> dict[str, bytes]:
        return {path: payload.load() for path, payload in self.http.items()}

    def payloads(self) -> list[Payload]:
        found: list[Payload] = []
        for spec in self.tools.values():
            found.extend([spec] if isinstance(spec, Payload) else spec.values())
        return found + list(self.files.values()) + list(self.http.values())


def _subst(value: Any, home: str, http_base: str = "") -> Any:
    if isinstance(value, str):
        return value.replace("{home}", home).replace("{http}", http_base)
    if isinstance(value, list):
        return [_subst(v, home, http_base) for v in value]
    if isinstance(value, dict):
        return {k: _subst(v, home, http_base) for k, v in value.items()}
    return value


BEADS_REPO = "work/beads_rust"

CASES: dict[str, ContractCase] = {
    "system": ContractCase(note="psutil on this machine; no upstream tool"),
    "probe": ContractCase(note="/proc and coreutils of the machine it runs on; no upstream tool"),
    "beads": ContractCase(
        tools={"br": {"ready": Payload("br.ready.example.json")},
               "bv": Payload(md="bv.md", section=r"## Reconstructed example")},
        files={f"{BEADS_REPO}/.beads/issues.jsonl": Payload("br.issues.example.jsonl")},
        options={"beads_repos": [f"{{home}}/{BEADS_REPO}"]},
    ),
    "rano": ContractCase(tools={"rano": Payload("rano.export.example.jsonl")}),
    # SQLite sources: the databases are built from SQL dumps of the schemas in dcg.md / mcp_agent_mail.md.
    "dcg": ContractCase(
        tools={"dcg": {"stats": Payload("dcg.stats.example.json")}},
        files={".config/dcg/history.db": Payload("sample_data/sqlite/dcg_history.sql", sqlite=True)},
        options={"dcg_history_db": "{home}/.config/dcg/history.db"},
    ),
    "mcp_agent_mail": ContractCase(
        files={"mail/rust.sqlite3": Payload("sample_data/sqlite/mcp_agent_mail_rust.sql", sqlite=True),
               "mail/python.sqlite3": Payload("sample_data/sqlite/mcp_agent_mail_python.sql", sqlite=True)},
        options={"mail_db_paths": ["{home}/mail/rust.sqlite3", "{home}/mail/python.sqlite3"]},
    ),
    "rch": ContractCase(
        tools={"rch": Payload(md="rch.md", section=r"### Reconstructed example")},
        # No recorded /metrics text or build-history file exists upstream: status and workers only.
        options={"rch_metrics_url": ""},
        note="rch_build_events / rch_metrics have no recorded payload upstream",
    ),
    "pt": ContractCase(tools={"pt": Payload(md="pt.md", section=r"## Reconstructed example")},
                       exit_codes={"pt": 1}),  # 1 = candidates found, the normal answer
    "afsc": ContractCase(tools={"automated_flywheel_setup_checker": Payload(
        md="automated_flywheel_setup_checker.md", section=r"### Reconstructed example")}),
    "sysmoni": ContractCase(tools={"sysmoni": Payload(
        md="sysmoni.md", section=r"## A\. Go `sysmoni`", fixes=(("35.0,…]", "35.0]"),), one_line=True)}),
    "ru": ContractCase(tools={"ru": {"list": Payload("ru.list.example.json"),
                                     "status": Payload("ru.status.example.json")}}),
    "caut": ContractCase(tools={"caut": {
        "usage": Payload("caut.example.json"),
        "cost": Payload("sample_data/upstream_templates/caut.cost.reconstructed.json"),
    }}),
    "caam": ContractCase(tools={"caam": {
        "status": Payload(md="caam.md", section=r"## 2\. `caam status"),
        "limits": Payload(md="caam.md", section=r"## 1\. `caam limits"),
    }}),
    "cass": ContractCase(tools={"cass": {
        "health": Payload("cass.health.example.json"),
        "stats": Payload("cass.stats.example.json"),
        "timeline": Payload(md="cass.md", section=r"`--group-by hour\|day` \(default\)"),
    }}, allowed_warnings=(
        # The golden files keep the test harness's placeholders ("[TIMESTAMP]") where values vary.
        r"^cass (health|stats): unexpected field types, stored as NULL: .*'\[[A-Z_]+\]'",
        r"^cass timeline: reports 2 sessions but lists 1$",  # cass.md's example lists one of its two
    )),
    # An HTTP API on the control node (no format note upstream: payloads follow its response models).
    "cloud_benchmarker": ContractCase(
        http={"/data/raw/": Payload("sample_data/upstream_templates/cloud_benchmarker.raw.reconstructed.json"),
              "/data/overall/": Payload(
                  "sample_data/upstream_templates/cloud_benchmarker.overall.reconstructed.json")},
        options={"cloud_benchmarker_url": "{http}"},
    ),
    "ntm": ContractCase(tools={"ntm": {"--robot-snapshot": Payload("ntm.snapshot.example.json"),
                                       "--robot-status": Payload("ntm.status.example.json")}}),
}


def case_for(name: str) -> ContractCase:
    """The case, or an AssertionError telling the developer exactly what to add."""
    case = CASES.get(name)
    if case is None:
        raise AssertionError(
            f"collector {name!r} is registered in collectors/registry.py but has no entry in "
            f"tests/contract_payloads.py CASES. Add one: ContractCase(tools={{<tool>: Payload(<file in "
            f"../shared/upstream_formats or sample_data/...>)}}, options={{...}}) so its rows are checked "
            f"against the migrated schema (column drift must not hide).")
    return case


# ---------- a whole fake machine: every tool collector's payloads at once (the SSH fleet, bench) ----------

def machine_cases(names: list[str] | None = None) -> dict[str, ContractCase]:
    """Cases for `names` (default: every registered tool collector, what a remote machine runs)."""
    from collectors import registry

    return {n: case_for(n) for n in (names if names is not None else registry.tool_collectors())}


def machine_tools(cases: dict[str, ContractCase]) -> dict[str, Tool]:
    """All fake tools of these cases in one toolbox; two cases faking one tool differently is a bug."""
    tools: dict[str, Tool] = {}
    for name, case in cases.items():
        for tool, spec in case.make_tools().items():
            if tool in tools and tools[tool] != spec:
                raise ValueError(f"case {name!r} fakes tool {tool!r} differently from another case")
            tools[tool] = spec
    return tools


def machine_options(cases: dict[str, ContractCase], home: Path) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for name, case in cases.items():
        for k, v in case.make_options(home).items():
            if k in opts and opts[k] != v:
                raise ValueError(f"case {name!r} sets option {k!r} differently from another case")
            opts[k] = v
    return opts


def machine_files(cases: dict[str, ContractCase], home: Path) -> list[Path]:
    return [p for case in cases.values() for p in case.write_files(home)]
