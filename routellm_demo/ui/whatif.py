"""The What-if tab: a stakeholder's own prompt file, projected through a router before routing anything.

:mod:`routellm_demo.whatif` does the work (read and check the file, embed without the cache, score,
price, estimate quality from a benchmark's held-out curve); this lays out the upload, the prices and
the results. The uploaded file is deleted as soon as it is read and the per-prompt CSV is written to
a folder of this run's own: nothing reaches the shared store or another visitor's page.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from routellm_demo import whatif
from routellm_demo.errors import UserError
from routellm_demo.routers import ROUTER_NAMES
from routellm_demo.runtime import Runtime
from routellm_demo.ui.format import esc

DOWNLOADS = Path(tempfile.gettempdir()) / "routellm_demo-whatif"  # per-run folders, random names
DOWNLOADS_KEPT_S = 3600  # a run's CSV is kept an hour (to download), then deleted by a later run

INTRO = ("Bring a file of **your own prompts** (.txt, one per line; .jsonl with a `prompt` field; or .csv with a "
         "`prompt` column; up to {max_prompts:,} prompts and {max_mb:.0f} MB) and your two models' prices, and see "
         "what a router would do with that traffic before routing anything: how it scores it, what each share of "
         "strong calls would cost, and the quality to expect. Your prompts are not stored: the file is deleted "
         "once read, nothing goes into the shared database, and no other visitor sees them.")
WAITING = ("Choose a prompt file and press **Project my traffic**: how the router scores your prompts, what each "
           "share of strong calls costs and the quality to expect appear here.")


def result_frame(result: whatif.WhatIfResult, step_pct: float = 10) -> pd.DataFrame:
    """A row per 10% of strong calls: threshold, share, cost per 1,000 requests, saving, estimated quality."""
    rows = []
    for r in result.by_share(step_pct):
        rows.append({
            "strong calls (%)": round(r["strong_pct"], 1),
            "threshold": round(r["threshold"], 4),
            "cost per 1,000 requests (USD)": round(r["cost_per_1k"], 4),
            "saved vs always-strong (%)": None if r["savings_pct"] is None else round(r["savings_pct"], 1),
            result.column_titles()["est_quality"] if result.quality is not None else "estimated quality":
                None if r["est_quality"] is None else round(r["est_quality"], 3),
        })
    return pd.DataFrame(rows)


def result_summary(result: whatif.WhatIfResult) -> str:
    s = result.score_summary()
    lines = [
        f"**{result.n_prompts:,} prompts** scored by **{esc(result.router)}** in {result.seconds['total']:.0f} s. "
        f"Scores (the router's estimate that the strong model's answer would win): median {s['median']:.3f}, "
        f"10th-90th percentile {s['p10']:.3f}-{s['p90']:.3f}, {s['distinct']:,} distinct values.",
        f"Always strong: **${result.always_strong_per_1k:.4f}** per 1,000 requests; always weak: "
        f"**${result.always_weak_per_1k:.4f}** (answers of {result.answer_tokens:,} tokens assumed; prompt tokens "
        "estimated at ~4 characters per token).",
    ]
    if result.quality is not None:
        q = result.quality
        lines.append(f"Quality {esc(q.label)} ({esc(q.router)}'s curve at each share of strong calls).")
    lines += [f"*{esc(n)}*" for n in result.notes]
    return "\n\n".join(lines)


def download_folder() -> Path:
    """A new folder of this run's own for its CSV; folders of runs over an hour old are deleted."""
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in DOWNLOADS.iterdir():
        if now - old.stat().st_mtime > DOWNLOADS_KEPT_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=DOWNLOADS))


def whatif_tab(runtime: Runtime) -> None:
    """The "What-if" tab (call inside the Blocks) and its event."""
    cfg = runtime.config

    def project(path, router, benchmark, strong_price, weak_price, answer_tokens, progress=gr.Progress()):
        if not path:
            return "❌ Choose a prompt file first.", None, pd.DataFrame(), None
        try:
            try:
                prompts = whatif.read_prompts(path, name=Path(path).name, max_chars=cfg.max_prompt_chars)
            finally:
                Path(path).unlink(missing_ok=True)  # the upload is this run's alone: gone once read
            result = whatif.what_if(
                runtime, prompts, router=router, benchmark=benchmark, strong_price=float(strong_price or 0),
                weak_price=float(weak_price or 0), answer_tokens=int(answer_tokens or 0),
                progress=lambda done, total, stage: progress(done / max(total, 1), desc=f"{stage} {done:,}/{total:,}"))
        except UserError as e:
            return f"❌ {esc(e.public)}", None, pd.DataFrame(), None
        csv = result.write_csv(download_folder() / "whatif_scores.csv")
        return result_summary(result), result.figure(), result_frame(result), str(csv)

    def show_results(summary_text):
        """The plot, table and CSV show with a projection only: no empty table before the first, and a
        refused file does not leave the last file's results under its error."""
        shown = gr.update(visible=not summary_text.startswith("❌"))
        return shown, shown

    with gr.Tab("What-if", id="whatif"):
        gr.Markdown(INTRO.format(max_prompts=whatif.WHATIF_MAX_PROMPTS, max_mb=whatif.WHATIF_MAX_BYTES / 2**20))
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="Your prompts", file_types=[".txt", ".jsonl", ".csv"], type="filepath",
                                 elem_id="whatif-file")
                with gr.Row():
                    router = gr.Dropdown(list(ROUTER_NAMES), value=cfg.router, label="Router")
                    benchmark = gr.Dropdown(list(whatif.BENCHMARKS), value="mmlu", label="Estimate quality from",
                                            info="the benchmark most like your traffic")
                with gr.Row():
                    strong_price = gr.Number(whatif.DEFAULT_STRONG_PRICE, label="Strong model, USD per 1M tokens",
                                             minimum=0)
                    weak_price = gr.Number(whatif.DEFAULT_WEAK_PRICE, label="Weak model, USD per 1M tokens", minimum=0)
                answer_tokens = gr.Number(whatif.DEFAULT_ANSWER_TOKENS, label="Assumed answer length (tokens)",
                                          precision=0, minimum=0)
                run = gr.Button("Project my traffic", variant="primary", elem_id="whatif-run")
            with gr.Column(scale=3):
                summary = gr.Markdown(WAITING, elem_id="whatif-summary")
                with gr.Column(visible=False) as plot_box:
                    plot = gr.Plot(show_label=False, elem_id="whatif-plot")
        with gr.Column(visible=False) as results_box:
            table = gr.Dataframe(interactive=False, elem_id="whatif-table", wrap=True)
            download = gr.File(label="Per-prompt scores (CSV)", interactive=False, elem_id="whatif-download")
    run.click(project, [upload, router, benchmark, strong_price, weak_price, answer_tokens],
              [summary, plot, table, download], api_name="whatif", concurrency_id="whatif", concurrency_limit=1
              ).then(show_results, summary, [plot_box, results_box], api_name="whatif_show")
