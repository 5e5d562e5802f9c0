"""The Evaluation tab: the newest offline evaluation per benchmark (``python -m routellm_demo eval``).

How much quality each router keeps for how much money, on benchmark prompts the routers were never
trained on: the plot and metrics the eval command wrote under ``config.eval_dir``, read back here.
"""

from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr
import pandas as pd
from PIL import Image

from routellm_demo.evals.results import latest_by_benchmark
from routellm_demo.ui.format import esc, eval_frame
from routellm_demo.ui.layout import refresh_view, tab_intro

EVAL_COMMAND = ("python -m routellm_demo eval --benchmark mmlu --data-dir DIR "
                "--routers random elo sw_ranking mf classifier")


def eval_view(eval_dir: Path, benchmark: str | None):
    """The newest run of ``benchmark`` (or of the first benchmark found) under ``eval_dir``."""
    runs = latest_by_benchmark(eval_dir)
    if not runs:
        note = (f"No evaluation found in `{esc(eval_dir)}`. Run `{EVAL_COMMAND}` (RouteLLM's data folder: "
                "`python -m routellm_demo download`), then press Refresh.")
        return gr.update(choices=[], value=None), note, None, pd.DataFrame()
    if benchmark not in runs:
        benchmark = next(iter(runs))
    run = runs[benchmark]
    note = (f"**{esc(run.summary())}**. APGR: the share of the strong model's quality gain over the weak one that "
            "the router keeps, averaged over every share of strong calls (random ≈ 0.5); CPT(x%): the share of "
            "strong calls needed to get x% of that gain (lower is better).")
    prices = run.metrics.get("prices") or {}
    if prices.get("strong_price") is not None:
        note += (f" Cost saved assumes the strong model costs {prices['strong_price']:g} and the weak one "
                 f"{prices.get('weak_price', 0):g} per unit (RouteLLM's GPT-4 and Mixtral prices per 1M tokens "
                 "unless the run set others).")
    warnings = run.metrics.get("warnings") or []
    if warnings:
        note += "\n\n" + " ".join(f"⚠️ {esc(w)}" for w in warnings)
    image = Image.open(run.plot) if run.plot else None
    return gr.update(choices=list(runs), value=benchmark), note, image, eval_frame(run)


def evaluation_tab(eval_dir: Path) -> None:
    """The "Evaluation" tab (call inside the Blocks): the newest offline evaluation per benchmark."""
    with gr.Tab("Evaluation", id="evaluation") as tab:
        refresh = tab_intro("How much quality does each router keep for how much money? Quality against the share of "
                            "calls sent to the strong model, on benchmark prompts the routers were never trained on "
                            "(RouteLLM's metrics; produced by `python -m routellm_demo eval`).")
        benchmark = gr.Dropdown([], label="Benchmark", elem_id="eval-benchmark", scale=0)
        note = gr.Markdown("", elem_id="eval-summary")
        image = gr.Image(label="Quality vs share of strong-model calls", type="pil", interactive=False,
                         elem_id="eval-plot", format="png")
        table = gr.Dataframe(interactive=False, label="Metrics", elem_id="eval-table", wrap=True)
    outputs = [benchmark, note, image, table]
    view = functools.partial(eval_view, eval_dir)
    refresh_view(tab, refresh, view, benchmark, outputs, "evaluation")
    benchmark.input(view, benchmark, outputs, api_name="evaluation_benchmark")
