"""Writing an evaluation's results: metrics.json, scores.csv and curve.png.

Kept apart from the metrics so the numbers can be computed (and tested) without touching disk or
matplotlib; the plot uses the Agg backend, so it works on a server without a display.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from routellm_demo.evals.metrics import GRID, oracle_curve, random_curve, router_curve

TABLE_COLUMNS = ("apgr", "cpt20", "cpt50", "cpt80", "auc", "strong_pct_at_95", "cost_reduction_at_95")


def _clean(value):
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_metrics(path: str | Path, result: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(_clean(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_scores(path: str | Path, prompts: list[str], scores: dict[str, np.ndarray]) -> Path:
    """One row per (router, prompt): every evaluated prompt's out-of-sample score from every router."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["router", "prompt", "score"])
        for router, values in scores.items():
            for prompt, score in zip(prompts, values):
                w.writerow([router, prompt, repr(float(score))])
    return path


def write_prompts(path: str | Path, evalset, folds=None) -> Path:
    """Per prompt: its group, CV fold and both models' quality, so scores.csv can be re-scored."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "group", "fold", "strong_quality", "weak_quality"])
        for i, prompt in enumerate(evalset.prompts):
            fold = "" if folds is None else int(folds[i])
            w.writerow([prompt, evalset.groups[i], fold, evalset.strong_quality[i], evalset.weak_quality[i]])
    return path


def plot_curves(
    path: str | Path, title: str, scores: dict[str, np.ndarray], strong_quality, weak_quality, folds=None,
) -> Path:
    """Quality vs share of strong calls: each router (the curve its metrics use), strong and weak
    lines, oracle and random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sq = np.asarray(strong_quality, dtype=np.float64)
    wq = np.asarray(weak_quality, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    try:
        for router, values in scores.items():
            c = router_curve(values, sq, wq, folds)
            ax.plot(100 * c.x, c.y, label=router, linewidth=1.5)
        oc = oracle_curve(sq, wq)
        ax.plot(100 * oc.x, oc.y, label="oracle", color="black", linestyle=":")
        rc = random_curve(sq, wq)
        ax.plot(100 * GRID, rc.y, label="random (mean of 10 seeds)", color="grey", linestyle="-.")
        ax.axhline(sq.mean(), color="red", linestyle="--", label=f"strong ({sq.mean():.3f})")
        ax.axhline(wq.mean(), color="blue", linestyle="--", label=f"weak ({wq.mean():.3f})")
        ax.set_xlabel("calls to the strong model (%)")
        ax.set_ylabel("quality")
        ax.set_title(title)
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return Path(path)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def format_table(rows: dict[str, dict], columns=TABLE_COLUMNS) -> str:
    """A plain-text table, one router per line (shares and cost reductions in percent)."""
    header = ["router", *columns]
    body = [[name, *(_fmt(m.get(c)) for c in columns)] for name, m in rows.items()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *body]]
    return "\n".join(lines)
