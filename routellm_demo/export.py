"""Stored battles as a file a team can take away: CSV, JSONL or Parquet.

Exports are whole-store files made on a click, shared by every visitor of the app: each gets a name
of its own (two visitors exporting in the same second do not collide), only the newest few are kept
and only a few may be made a minute, for all visitors together, so clicks can neither fill the disk
nor keep the CPU busy. The visitor's session id is never exported: it identifies a page load and
helps no one.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from routellm_demo.errors import UserError

EXPORT_FORMATS = ("csv", "jsonl", "parquet")
EXPORT_COLUMNS = ("id", "uid", "created_at", "source", "prompt", "model_a", "model_b", "winner", "strong_side",
                  "prompt_sha256", "meta")
EXPORTS_KEPT = 10  # > EXPORTS_PER_MINUTE: a file lives at least a minute, long enough to download
EXPORTS_PER_MINUTE = 6


class ExportError(UserError, ValueError):
    """An export that cannot be made as asked (an unknown format); nothing was written."""


class ExportLimitError(ExportError):
    """Too many exports lately (all visitors together); nothing was written."""

    status = 429


class Exporter:
    """Writes exports into a folder, with the rate limit of one process."""

    def __init__(self):
        self._times: list[float] = []  # monotonic times of this process's recent exports
        self._lock = threading.Lock()

    def export(self, rows: list[dict], fmt: str, directory: str | Path) -> Path:
        """``rows`` (stored battles) as ``fmt`` in ``directory``; returns the file's path."""
        import pandas as pd

        if fmt not in EXPORT_FORMATS:
            raise ExportError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
        with self._lock:
            now = time.monotonic()
            self._times = [t for t in self._times if now - t < 60.0]
            if len(self._times) >= EXPORTS_PER_MINUTE:
                raise ExportLimitError("Too many exports in the last minute; try again in a minute.")
            self._times.append(now)
        frame = pd.DataFrame([{c: r.get(c) for c in EXPORT_COLUMNS} for r in rows], columns=list(EXPORT_COLUMNS))
        frame["meta"] = [json.dumps(m, ensure_ascii=False) if m else "" for m in frame["meta"]]
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"battles-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.{fmt}"
        tmp = path.with_suffix(path.suffix + ".part")
        try:
            if fmt == "csv":
                frame.to_csv(tmp, index=False)
            elif fmt == "jsonl":
                frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
            else:
                frame.to_parquet(tmp, index=False)
            tmp.replace(path)  # a half-written export never shows up under the final name
        finally:
            tmp.unlink(missing_ok=True)
        prune(directory, keep=path)
        return path


def prune(directory: Path, keep: Path) -> None:
    """Delete all but the newest EXPORTS_KEPT exports (never ``keep``, the one just made)."""
    exports = sorted((p for p in directory.glob("battles-*") if p.suffix.lstrip(".") in EXPORT_FORMATS),
                     key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in [p for p in exports if p != keep][EXPORTS_KEPT - 1:]:
        old.unlink(missing_ok=True)
