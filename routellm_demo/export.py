"""Stored battles as a file a team can take away: CSV, JSONL or Parquet.

Exports are whole-store files made on a click, shared by every visitor of the app: each gets a name
of its own (two visitors exporting in the same second do not collide), only the newest few are kept
and only a few may be made a minute, for all visitors together, so clicks can neither fill the disk
nor keep the CPU busy. The visitor's session id and visitor key are never exported: they identify a
page load or a person and help no one.

Every export has a versioned schema (:data:`EXPORT_SCHEMA_VERSION`, :data:`COLUMN_DOCS`; the README's
"The exported dataset") and a datasheet written next to it (``datasheet-<file>.json``): the schema,
counts by flag, by source and by model pair, and the date range. Flagged votes are exported with their
flags (recorded, not hidden): a team filters them as it sees fit.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from routellm_demo.errors import UserError

EXPORT_FORMATS = ("csv", "jsonl", "parquet")
JSONL_ROWS_PER_WRITE = 20_000  # rows a JSONL export serialises at a time (memory: one slice, not the file)
EXPORT_SCHEMA_VERSION = 2  # 1: the columns up to meta; 2: + schema_version, flags, trusted, app_version
COLUMN_DOCS = {
    "schema_version": "this file's schema version (EXPORT_SCHEMA_VERSION)",
    "id": "the battle's row id in the store",
    "uid": "a stable id: arena:<battle> for arena votes, the source's own id for imports",
    "created_at": "when the battle was stored (UTC, ISO 8601)",
    "source": "arena-vote, or the import it came from (e.g. routellm:mmlu)",
    "prompt": "the question, verbatim",
    "model_a": "the model shown on side A",
    "model_b": "the model shown on side B",
    "winner": "model_a, model_b, tie or tie (bothbad)",
    "strong_side": "a or b: the side of the strong model (empty when unknown)",
    "prompt_sha256": "SHA-256 of the prompt's UTF-8 text",
    "flags": "why a vote may not count, comma-separated (identity, duplicate, too_fast; anomalous, set later "
             "by the background check); empty: clean",
    "trusted": "the trusted source of a vote (replay, load-test), never flagged; empty otherwise",
    "app_version": "the routellm_demo version that stored the vote (arena votes)",
    "meta": "JSON: the answers, the router's score before the vote, and provenance (sides shown, model ids, "
            "generation settings, flags, asked/answered/voted times)",
}
EXPORT_COLUMNS = tuple(COLUMN_DOCS)
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
        frame = pd.DataFrame([export_row(r) for r in rows], columns=list(EXPORT_COLUMNS))
        frame["meta"] = [json.dumps(m, ensure_ascii=False) if m else "" for m in frame["meta"]]
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"battles-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.{fmt}"
        tmp = path.with_suffix(path.suffix + ".part")
        try:
            if fmt == "csv":
                frame.to_csv(tmp, index=False)
            elif fmt == "jsonl":
                # in slices: pandas builds the whole document as one string, then copies it to split
                # the lines (a million battles: ~10 GB for an 800 MB file)
                with open(tmp, "w", encoding="utf-8") as out:
                    for start in range(0, len(frame), JSONL_ROWS_PER_WRITE):
                        frame.iloc[start:start + JSONL_ROWS_PER_WRITE].to_json(
                            out, orient="records", lines=True, force_ascii=False)
            else:
                frame.to_parquet(tmp, index=False)
            datasheet_path(path).write_text(json.dumps(datasheet(rows, fmt), indent=2, ensure_ascii=False))
            tmp.replace(path)  # a half-written export never shows up under the final name
        finally:
            tmp.unlink(missing_ok=True)
        prune(directory, keep=path)
        return path


def export_row(r: dict) -> dict:
    """One stored battle as an export row (:data:`COLUMN_DOCS`); no session id, no visitor key."""
    provenance = (r.get("meta") or {}).get("provenance") or {}
    return {**{c: r.get(c) for c in EXPORT_COLUMNS}, "schema_version": EXPORT_SCHEMA_VERSION,
            "flags": r.get("flags") or "", "trusted": provenance.get("trusted") or "",
            "app_version": provenance.get("app_version") or ""}


def datasheet_path(export: Path) -> Path:
    """The datasheet beside an export: ``datasheet-<export's name>.json``."""
    return export.with_name(f"datasheet-{export.name}.json")


def datasheet(rows: list[dict], fmt: str) -> dict:
    """What a team needs to know before using an export: its schema, and counts by flag, source and
    model pair, and the date range."""
    by_flag: dict[str, int] = {"clean": 0}
    by_source: dict[str, int] = {}
    by_pair: dict[str, int] = {}
    trusted = 0
    for r in rows:
        flags = [f for f in (r.get("flags") or "").split(",") if f]
        for f in flags or ["clean"]:
            by_flag[f] = by_flag.get(f, 0) + 1
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
        pair = " vs ".join(sorted((r["model_a"], r["model_b"])))
        by_pair[pair] = by_pair.get(pair, 0) + 1
        trusted += bool(((r.get("meta") or {}).get("provenance") or {}).get("trusted"))
    times = sorted(r["created_at"] for r in rows if r.get("created_at"))
    return {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "format": fmt,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": len(rows),
        "flagged": sum(1 for r in rows if r.get("flags")),
        "trusted": trusted,
        "by_flag": by_flag,
        "by_source": dict(sorted(by_source.items())),
        "by_model_pair": dict(sorted(by_pair.items(), key=lambda kv: -kv[1])),
        "date_range": {"first": times[0] if times else None, "last": times[-1] if times else None},
        "columns": COLUMN_DOCS,
        "left_out": "session ids and visitor keys (salted hashes) are never exported",
    }


def prune(directory: Path, keep: Path) -> None:
    """Delete all but the newest EXPORTS_KEPT exports (never ``keep``, the one just made)."""
    exports = sorted((p for p in directory.glob("battles-*") if p.suffix.lstrip(".") in EXPORT_FORMATS),
                     key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in [p for p in exports if p != keep][EXPORTS_KEPT - 1:]:
        old.unlink(missing_ok=True)
        datasheet_path(old).unlink(missing_ok=True)
