"""The `[alerts]` section of vc.toml.

Kept free of other workbench imports so `workbench.config` can import it without a cycle:

    [alerts]
    rule_files = ["rules/fleet.yaml"]        # default: the shipped workbench/alerts/rules/default.yaml
    webhooks = ["http://127.0.0.1:9000/hook"]  # or tables with url, timeout_seconds, max_attempts …

    [[alerts.webhooks]]
    url = "https://chat.example/hooks/abc"
    notify_on = ["firing", "resolved"]
    min_severity = "warning"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class WebhookConfig(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0
    # Attempts in total (1 = no retry); waits backoff, 2×backoff, 4×backoff … (capped) in between.
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    backoff_seconds: Annotated[float, Field(ge=0, le=300)] = 1.0
    max_backoff_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0
    headers: dict[str, str] = {}
    notify_on: list[Literal["pending", "firing", "resolved", "cancelled"]] = ["firing", "resolved"]
    min_severity: Literal["info", "warning", "critical"] = "info"


class AlertsConfig(_Strict):
    enabled: bool = True
    # Empty: the shipped rules. Relative paths are relative to the config file.
    rule_files: list[Path] = []
    webhooks: list[WebhookConfig] = []
    # Payloads waiting per webhook; when full, new ones are dropped (and counted), never blocking.
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    jsonl_file: Annotated[str, Field(min_length=1)] = "alerts.jsonl"

    @field_validator("webhooks", mode="before")
    @classmethod
    def _urls_as_webhooks(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"url": x} if isinstance(x, str) else x for x in v]
        return v
