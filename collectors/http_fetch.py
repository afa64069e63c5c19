"""GET a URL on the machine itself with `curl`, through the machine's executor.

HTTP endpoints of fleet tools (rchd's /metrics, cloud_benchmarker's API) usually listen on the
machine's loopback, so they are fetched where they run, over the same SSH connection the other
collectors use, with a read-only command. One place decides the curl flags and turns curl's exit
codes into words, so every HTTP source reports an unreachable or slow endpoint the same way.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from collectors.executors.base import Executor
from collectors.tail import Budget, command_failure

# curl's exit codes that people meet in practice (see `man curl`, EXIT CODES).
CURL_HINTS = {
    6: "host name not resolved",
    7: "nothing listening there (not reachable)",
    22: "HTTP error status",
    28: "did not answer in time",
    35: "TLS handshake failed",
    52: "empty reply from server",
    56: "connection reset while receiving",
}


@dataclass(frozen=True)
class Fetched:
    """The body of a successful GET (`text`), or why there is none (`error`, a full sentence)."""

    text: str | None
    error: str | None
    truncated: bool = False
    size: int = 0


async def curl_get(executor: Executor, url: str, *, budget: Budget, max_bytes: int,
                   max_wait_s: float = 10.0) -> Fetched:
    """GET `url`; curl's own timeout stays inside the collector's remaining budget.

    A body over `max_bytes` is reported as truncated (error set, partial text dropped): half a JSON
    document or half an exposition is worse than none, and the caller may retry a narrower query.
    """
    if budget.exhausted(1.0):
        return Fetched(None, f"time budget used up before {url}")
    wait = max(1, int(min(max_wait_s, budget.remaining() - 0.5)))
    res = await executor.run(f"curl -sSf --max-time {wait} -- {shlex.quote(url)}",
                             timeout_s=budget.remaining(), max_bytes=max_bytes)
    if res.truncated:
        return Fetched(None, f"{url}: answer exceeded the {max_bytes}-byte limit", truncated=True,
                       size=len(res.stdout))
    fail = command_failure(res)
    if fail:
        hint = CURL_HINTS.get(res.exit_code or 0)
        return Fetched(None, f"{fail} ({hint})" if hint else fail)
    return Fetched(res.text, None, size=len(res.stdout))
