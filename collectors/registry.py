"""Which collectors exist. A new source is one module plus one line here."""

from __future__ import annotations

from collectors.afsc import AfscCollector
from collectors.base import Collector
from collectors.beads import BeadsCollector
from collectors.caam import CaamCollector
from collectors.cass import CassCollector
from collectors.caut import CautCollector
from collectors.cloud_benchmarker import CloudBenchmarkerCollector
from collectors.dcg import DcgCollector
from collectors.mcp_agent_mail import McpAgentMailCollector
from collectors.ntm import NtmCollector
from collectors.probe import ProbeCollector
from collectors.pt import PtCollector
from collectors.rano import RanoCollector
from collectors.rch import RchCollector
from collectors.ru import RuCollector
from collectors.sysmoni import SysmoniCollector
from collectors.system import SystemCollector

ALL: dict[str, type[Collector]] = {
    SystemCollector.name: SystemCollector,
    ProbeCollector.name: ProbeCollector,
    BeadsCollector.name: BeadsCollector,
    RanoCollector.name: RanoCollector,
    RchCollector.name: RchCollector,
    PtCollector.name: PtCollector,
    AfscCollector.name: AfscCollector,
    SysmoniCollector.name: SysmoniCollector,
    RuCollector.name: RuCollector,
    CautCollector.name: CautCollector,
    CaamCollector.name: CaamCollector,
    CassCollector.name: CassCollector,
    NtmCollector.name: NtmCollector,
    DcgCollector.name: DcgCollector,
    McpAgentMailCollector.name: McpAgentMailCollector,
    CloudBenchmarkerCollector.name: CloudBenchmarkerCollector,
}


def tool_collectors() -> list[str]:
    """Collectors gated on a tool being present (`required_tool`)."""
    return [name for name, cls in ALL.items() if cls.required_tool]


def default_for(is_local: bool) -> list[str]:
    """psutil locally, the basic probe elsewhere, plus every tool collector (skipped where its tool is absent)."""
    return ["system" if is_local else "probe", *tool_collectors()]
