"""Finding finished evaluation runs on disk, for the app's Evaluation tab.

A run is a folder that ``python -m routellm_demo eval --out DIR`` wrote: ``metrics.json`` (the
numbers) and ``curve.png`` (the plot). The files are the record, so nothing else needs to be kept in
sync: the app lists the folders under one directory (``eval_dir`` in the configuration; ``eval``
writes to ``eval_dir/<benchmark>`` unless told otherwise) and shows the newest run per benchmark.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from routellm_demo.evals.report import TABLE_COLUMNS

METRICS_FILE = "metrics.json"
PLOT_FILE = "curve.png"
COLUMN_TITLES = {
    "apgr": "APGR", "apgr_ci95": "APGR 95% CI", "cpt20": "CPT(20%)", "cpt50": "CPT(50%)", "cpt80": "CPT(80%)",
    "auc": "AUC", "strong_pct_at_95": "strong calls for 95% quality (%)",
    "cost_reduction_at_95": "cost saved at 95% quality (%)",
}


@dataclass(frozen=True)
class EvalRun:
    """One finished run: its folder, its metrics.json content, and when it finished (UTC)."""

    folder: Path
    metrics: dict
    finished_at: datetime

    @property
    def benchmark(self) -> str:
        return str(self.metrics.get("benchmark", self.folder.name))

    @property
    def plot(self) -> Path | None:
        path = self.folder / PLOT_FILE
        return path if path.is_file() else None

    def table(self) -> list[dict]:
        """One row per router, then the baselines, with the metrics the issue asks for."""
        rows = []
        for group in ("routers", "baselines"):
            for name, values in (self.metrics.get(group) or {}).items():
                if not isinstance(values, dict):
                    continue
                row = {"router": name}
                for key in ("apgr", "apgr_ci95", *TABLE_COLUMNS[1:]):
                    row[key] = values.get(key)
                rows.append(row)
        return rows

    def curve_routers(self) -> list[str]:
        """The routers whose held-out quality-vs-strong-share curve this run stored (runs written
        before curves were stored have none)."""
        return [name for name in (self.metrics.get("curves") or {}) if self.curve(name) is not None]

    def curve(self, router: str) -> tuple[list[float], list[float]] | None:
        """``router``'s held-out curve: (strong share in percent, ascending; quality at it), or None."""
        points = (self.metrics.get("curves") or {}).get(router)
        if not isinstance(points, dict):
            return None
        x, y = points.get("strong_pct"), points.get("quality")
        if not (isinstance(x, list) and isinstance(y, list) and len(x) == len(y) >= 2):
            return None
        if not all(isinstance(v, (int, float)) for v in (*x, *y)) or any(b <= a for a, b in zip(x, x[1:])):
            return None
        return [float(v) for v in x], [float(v) for v in y]

    def summary(self) -> str:
        m = self.metrics
        when = self.finished_at.strftime("%Y-%m-%d %H:%M UTC")
        parts = [f"{self.benchmark}: {m.get('n_prompts', '?')} prompts", str(m.get("protocol", "")),
                 f"finished {when}"]
        if m.get("seconds") is not None:
            parts.append(f"took {m['seconds']:.0f} s")
        return " · ".join(p for p in parts if p)


def read_run(folder: Path) -> EvalRun | None:
    """The run in ``folder``, or None when it holds no readable metrics.json (a run still going, a
    stray folder): a listing must not fail on one bad folder."""
    path = Path(folder) / METRICS_FILE
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("routers"), dict):
        return None
    return EvalRun(Path(folder), metrics, _finished_at(metrics, path))


def _finished_at(metrics: dict, path: Path) -> datetime:
    text = metrics.get("finished_at")
    if isinstance(text, str):
        try:
            when = datetime.fromisoformat(text)
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)  # runs written before the field


def find_runs(root: Path) -> list[EvalRun]:
    """Every run in ``root`` itself or one or two folder levels below it, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    folders = {p.parent for pattern in (METRICS_FILE, f"*/{METRICS_FILE}", f"*/*/{METRICS_FILE}")
               for p in root.glob(pattern)}
    runs = [run for run in map(read_run, sorted(folders)) if run is not None]
    return sorted(runs, key=lambda r: r.finished_at, reverse=True)


def latest_by_benchmark(root: Path) -> dict[str, EvalRun]:
    """The newest run of each benchmark under ``root`` (benchmarks in a stable order)."""
    latest: dict[str, EvalRun] = {}
    for run in find_runs(root):
        latest.setdefault(run.benchmark, run)
    return dict(sorted(latest.items()))
