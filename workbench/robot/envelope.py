"""The stable JSON envelope every `vc robot …` command prints, and its JSON Schema check.

Agents parse this output, so its shape is a contract: `{schema_version, generated_at, data,
staleness, warnings}`. Schemas ship inside the package (workbench/schemas/) and tests validate real
output against them.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import pandas as pd

ENVELOPE_VERSION = "vc.robot.v1"
_NAT = pd.NaT


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: NaN/NaT become null, timestamps ISO 8601 UTC, numpy scalars Python numbers."""
    if value is None or value is _NAT:
        return None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return to_jsonable(value.tolist())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    try:
        if not isinstance(value, str) and pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return to_jsonable(value.item())
    return value


def envelope(data: Any, staleness: dict[str, Any], warnings: list[str], now: datetime | None = None) -> dict:
    return {
        "schema_version": ENVELOPE_VERSION,
        "generated_at": to_jsonable(now or datetime.now(UTC)),
        "data": to_jsonable(data),
        "staleness": to_jsonable(staleness),
        "warnings": list(warnings),
    }


@cache
def load_schema(name: str) -> dict:
    text = resources.files("workbench.schemas").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate(doc: dict, name: str) -> None:
    """Raise jsonschema.ValidationError when `doc` does not match the shipped schema `name`."""
    jsonschema.validate(doc, load_schema(name))


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, allow_nan=False)
