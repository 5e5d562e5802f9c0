"""The page's charts (matplotlib Figures for gr.Plot): arena ratings with their intervals, whether
sw_ranking predicted each vote before learning it, and budget mode's target against its realised share.

Apart from the HTML helpers only because they draw: same idea as :mod:`routellm_demo.ui.format`,
a library object in, something to show out, no Gradio.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from routellm_demo.learning import Prequential
from routellm_demo.ui.format import ROUTE_COLOR


def ratings_plot(boards: list[tuple[str, dict]]) -> Figure:
    """Ratings with their 95% intervals, one panel per scope."""
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    axes = fig.subplots(1, len(boards))
    for ax, (title, board) in zip(axes, boards):
        rows = board["rows"][::-1]
        n = board["n_battles"]
        ax.set_title(f"{title} ({n} battle{'s' if n != 1 else ''})", fontsize=10)
        if not rows:
            ax.text(0.5, 0.5, "no battles yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
            continue
        y = list(range(len(rows)))
        rating = [r["rating"] for r in rows]
        err = [[max(0.0, r["rating"] - r["ci_low"]) for r in rows], [max(0.0, r["ci_high"] - r["rating"]) for r in rows]]
        ax.barh(y, [v - 1000 for v in rating], left=1000, color="#a78bfa", height=0.5)
        ax.errorbar(rating, y, xerr=err, fmt="o", color="#111827", capsize=4)
        ax.axvline(1000, color="#9ca3af", lw=0.8)
        ax.set_yticks(y, [r["player"][:34] for r in rows], fontsize=8)
        ax.set_xlabel("Bradley-Terry rating (Elo scale), 95% CI", fontsize=8)
    return fig


def prequential_plot(preqs: list[Prequential]) -> Figure:
    """Was each router right before each vote? Rolling and overall, against a prompt-blind baseline
    (the first router's: every router is scored on the same votes, bar those missing its score)."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.subplots()
    scored = [p for p in preqs if p.points]
    if not scored:
        ax.text(0.5, 0.5, "No scored votes yet: vote in the Arena (ties are not scored).", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    colors = [ROUTE_COLOR["strong"], "#0ea5e9", "#f59e0b"]
    for preq, color in zip(scored, colors):
        n = [p.n for p in preq.points]
        ax.plot(n, [p.rolling for p in preq.points], "o-", ms=2, color=color,
                label=f"{preq.router}, last {preq.window} votes")
        ax.plot(n, [p.cumulative for p in preq.points], "--", color=color, alpha=0.6,
                label=f"{preq.router}, all votes so far")
    base = scored[0]
    ax.plot([p.n for p in base.points], [p.baseline_rolling for p in base.points], ":", color="#6b7280",
            label=f"baseline: the side that won most earlier votes (last {base.window})")
    ax.axhline(0.5, color="#d1d5db", lw=0.8)
    ax.set_ylim(0.0, 1.02)
    last = max(p.n for preq in scored for p in preq.points)
    ax.set_xlim(0, max(last, 10) + 0.5)  # a vote count: whole numbers, room to grow at first
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("arena votes with a winner, oldest first", fontsize=8)
    ax.set_ylabel("share predicted right", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def budget_plot(rows: list[dict], window: int = 50) -> Figure:
    """Budget mode over time: for each router and target, the share of its requests that went to the
    strong model over the last ``window`` of them (rolling), against the target (dashed)."""
    fig = Figure(figsize=(6, 2.6), layout="constrained")
    ax = fig.subplots()
    series: dict[tuple[str, float], list[int]] = {}
    for r in rows:
        series.setdefault((r["router"], r["budget"]), []).append(int(r["strong"]))
    if not series:
        ax.text(0.5, 0.5, "no budget-mode requests yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    for (router, budget), strong in sorted(series.items()):
        rolling = [100 * sum(strong[max(0, i + 1 - window):i + 1]) / len(strong[max(0, i + 1 - window):i + 1])
                   for i in range(len(strong))]
        line, = ax.plot(range(1, len(strong) + 1), rolling, lw=1.4, label=f"{router}, target {100 * budget:g}%")
        ax.axhline(100 * budget, color=line.get_color(), ls="--", lw=0.9)
    ax.set_ylim(0, 100)
    ax.set_xlabel("budget-mode requests (every visitor's), oldest first", fontsize=8)
    ax.set_ylabel(f"% to strong (last {window})", fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    return fig
