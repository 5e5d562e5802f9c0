"""The Learning tab: is the arena teaching the router, live?

Each arena vote is scored by the predictions the app's router and sw_ranking made for its prompt before
learning it (prequential accuracy, :mod:`routellm_demo.learning`), next to a prompt-blind baseline; beside
it, the version and training-set size of every loaded router and the background refits' progress
(:class:`routellm_demo.refresh.Refresher`).
"""

from __future__ import annotations

import gradio as gr

from routellm_demo.arena import Arena
from routellm_demo.errors import UserError
from routellm_demo.learning import SW_ROUTER, prequential
from routellm_demo.refresh import Refresher
from routellm_demo.store import ARENA_SOURCE
from routellm_demo.ui.format import learning_summary, router_versions_frame, sources_frame
from routellm_demo.ui.layout import refresh_view, tab_intro
from routellm_demo.ui.plots import prequential_plot

LEARNING_WINDOW = 20  # votes in the rolling prequential accuracy


def learning_tab(arena: Arena, refresher: Refresher) -> None:
    """The "Learning" tab (call inside the Blocks): is the arena teaching the router, live?"""
    routers = list(dict.fromkeys([arena.config.router, SW_ROUTER]))  # the app's router first

    def view():
        try:
            votes, counts = arena.store.battles(source=ARENA_SOURCE), arena.store.count_battles()
        except UserError as e:
            raise gr.Error(e.public, print_exception=False) from None
        preqs = [prequential(votes, window=LEARNING_WINDOW, router=r) for r in routers]
        return (learning_summary(preqs, len(votes), refresher), prequential_plot(preqs), sources_frame(counts),
                router_versions_frame(refresher.status()))

    with gr.Tab("Learning", id="learning") as tab:
        refresh = tab_intro(f"Is the arena teaching the router? Each vote is scored by the prediction the app's router "
                            f"({routers[0]}) and sw_ranking made for its prompt *before* learning it (prequential "
                            "accuracy), next to a baseline that ignores the prompt.")
        summary = gr.Markdown("", elem_id="learning-summary")
        plot = gr.Plot(label="Prequential accuracy", elem_id="learning-plot")
        with gr.Row():
            sources = gr.Dataframe(interactive=False, label="Battles by source", elem_id="learning-sources")
            versions = gr.Dataframe(interactive=False, label="Routers: version and training-set size",
                                    elem_id="learning-routers", scale=2)
    refresh_view(tab, refresh, view, None, [summary, plot, sources, versions], "learning")
