"""On-disk spool for batches that could not be written because the database stayed locked.

Each batch is a directory of Arrow IPC files plus a manifest, written under a temporary name and
renamed into place, so a crash mid-spool leaves either a whole batch or nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from workbench.store.batch import Batch, CursorUpdate


def _write_table(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_table(path: Path) -> pa.Table:
    with pa.memory_map(str(path), "r") as source:
        return ipc.open_file(source).read_all()


def spool_batch(spool_dir: Path, batch: Batch, reason: str) -> Path:
    spool_dir.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    tmp = spool_dir / f".tmp-{name}"
    tmp.mkdir()
    manifest: dict = {"reason": reason, "pieces": [], "cursors": []}
    for i, (mode, table, data) in enumerate(batch.pieces()):
        fname = f"{i:05d}-{mode}.arrow"
        _write_table(tmp / fname, data)
        manifest["pieces"].append({"mode": mode, "table": table, "file": fname})
    manifest["cursors"] = [c.__dict__ for c in batch.cursors]
    (tmp / "manifest.json").write_text(json.dumps(manifest, default=str), encoding="utf-8")
    final = spool_dir / name
    os.rename(tmp, final)
    return final


def pending(spool_dir: Path) -> list[Path]:
    if not spool_dir.is_dir():
        return []
    return sorted(p for p in spool_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_batch(path: Path) -> Batch:
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    batch = Batch()
    for entry in manifest["pieces"]:
        add = batch.add_rows if entry["mode"] == "insert" else batch.add_upserts
        add(entry["table"], _read_table(path / entry["file"]))
    batch.cursors = [CursorUpdate(**c) for c in manifest["cursors"]]
    return batch


def iter_pending(spool_dir: Path) -> Iterator[tuple[Path, Batch]]:
    for p in pending(spool_dir):
        yield p, load_batch(p)


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def quarantine(path: Path, rejected_dir: Path, reason: str) -> Path:
    """Move a batch that can no longer be written aside, with the reason, instead of deleting it."""
    rejected_dir.mkdir(parents=True, exist_ok=True)
    dest = rejected_dir / path.name
    os.rename(path, dest)
    (dest / "REJECTED.txt").write_text(reason + "\n", encoding="utf-8")
    return dest
