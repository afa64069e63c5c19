"""Which collectors exist. A new source is one module plus one line here."""

from __future__ import annotations

from collectors.base import Collector
from collectors.probe import ProbeCollector
from collectors.system import SystemCollector

ALL: dict[str, type[Collector]] = {
    SystemCollector.name: SystemCollector,
    ProbeCollector.name: ProbeCollector,
}


def default_for(is_local: bool) -> list[str]:
    """psutil on the local machine; the basic probe everywhere else."""
    return ["system"] if is_local else ["probe"]
