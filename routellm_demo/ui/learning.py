"""The Learning tab: is the arena teaching the router, live?

Each arena vote is scored by the prediction sw_ranking made for its prompt before learning it
(prequential accuracy, :mod:`routellm_demo.learning`), next to a prompt-blind baseline; beside it, the
version and training-set size of every loaded router and the background refits' progress
(:class:`routellm_demo.refresh.Refresher`).
"""

from __future__ import annotations

import gradio as gr

from routellm_demo.arena import Arena
from routellm_demo.errors import UserError
from routellm_demo.learning import prequential
from routellm_demo.refresh import Refresher
from routellm_demo.store import ARENA_SOURCE
from routellm_demo.ui.format import learning_summary, router_versions_frame, sources_frame
from routellm_demo.ui.layout import refresh_view, tab_intro
from routellm_demo.ui.plots import prequential_plot

LEARNING_WINDOW = 20  # votes in the rolling prequential accuracy


def learning_tab(arena: Arena, refresher: Refresher) -> None:
    """The "Learning" tab (call inside the Blocks): is the arena teaching the router, live?"""

    def view():
        try:
            votes, counts = arena.store.battles(source=ARENA_SOURCE), arena.store.count_battles()
        except UserError as e:
            raise gr.Error(e.public, print_exception=False) from None
        preq = prequential(votes, window=LEARNING_WINDOW)
        return (learning_summary(preq, len(votes), refresher), prequential_plot(preq), sources_frame(counts),
                router_versions_frame(refresher.status()))

    with gr.Tab("Learning", id="learning") as tab:
        refresh = tab_intro("Is the arena teaching the router? Each vote is scored by the prediction sw_ranking made "
                            "for its prompt *before* learning it (prequential accuracy), next to a baseline that "
                            "ignores the prompt.")
        summary = gr.Markdown("", elem_id="learning-summary")
        plot = gr.Plot(label="Prequential accuracy", elem_id="learning-plot")
        with gr.Row():
            sources = gr.Dataframe(interactive=False, label="Battles by source", elem_id="learning-sources")
            versions = gr.Dataframe(interactive=False, label="Routers: version and training-set size",
                                    elem_id="learning-routers", scale=2)
    refresh_view(tab, refresh, view, None, [summary, plot, sources, versions], "learning")
