"""The page: the header and the tabs, composed over one runtime, with the state the tabs share.

Each tab lays itself out and wires its own handlers (:mod:`~routellm_demo.ui.chat`,
:mod:`~routellm_demo.ui.arena`, :mod:`~routellm_demo.ui.learning`, :mod:`~routellm_demo.ui.evaluation`);
what is not page building (the background refits counting the arena's votes, the change feed telling
it of deletes) is the runtime's (:meth:`Runtime.connect_arena`).
"""

from __future__ import annotations

import tempfile
import uuid

import gradio as gr

from routellm_demo.arena import Arena
from routellm_demo.config import Config
from routellm_demo.limits import Limits
from routellm_demo.refresh import Refresher
from routellm_demo.runtime import Runtime
from routellm_demo.ui.arena import arena_tab, data_tab, leaderboard_tab
from routellm_demo.ui.chat import chat_tab
from routellm_demo.ui.evaluation import evaluation_tab
from routellm_demo.ui.format import ROUTE_COLOR, h
from routellm_demo.ui.learning import learning_tab
from routellm_demo.ui.whatif import whatif_tab
from routellm_demo.visitors import VisitorKeys


def new_session_id() -> str:
    return uuid.uuid4().hex


def header(cfg: Config) -> None:
    """The title, what the demo does, and how to read its prices (call inside the Blocks)."""
    names = {"strong": cfg.strong.name, "weak": cfg.weak.name}
    price_note = (
        "Prices of the local pair are <b>compute-proportional stand-ins</b> (USD per 1M tokens = the model's "
        "parameters in billions), not what anyone charges." if cfg.is_local_pair else
        "Costs use the per-token prices in the configuration.")
    gr.HTML(
        f"<h1 style='margin-bottom:4px'>routellm_demo · an open LLM router</h1>"
        f"<div>Every question goes to the <b style='color:{ROUTE_COLOR['strong']}'>strong</b> model "
        f"(<b>{h(names['strong'])}</b>) or the <b style='color:{ROUTE_COLOR['weak']}'>weak</b> one "
        f"(<b>{h(names['weak'])}</b>), whichever the router predicts is enough, to save cost. "
        "<b>Chat</b> shows each routing decision; the <b>Arena</b> lets you compare the two blind and your vote "
        "teaches the router at once.</div>"
        f"<div class='muted'>{price_note}</div>", elem_id="header")


def build_demo(runtime: Runtime, *, arena: Arena | None = None, limits: Limits | None = None,
               refresher: Refresher | None = None,
               export_dir: str | None = None) -> gr.Blocks:
    """The page. Handlers call the library; nothing here routes, stores or rates.

    ``arena`` (default: one over ``runtime``) is connected to the runtime's background refits
    (:meth:`Runtime.connect_arena`; a ``refresher`` passed in counts its votes instead); ``limits``
    default to the configuration's; exports go to ``export_dir`` (default: a fresh temporary folder).
    """
    cfg = runtime.config
    arena = arena or Arena.from_runtime(runtime)
    refresher = runtime.connect_arena(arena, refresher)
    limits = limits or Limits.from_config(cfg, store=runtime.store)
    visitors = VisitorKeys.from_config(runtime.store, cfg)
    export_dir = export_dir or tempfile.mkdtemp(prefix="routellm_demo_export_")
    admin_enabled = cfg.admin_token() is not None

    # delete_cache: uploads and downloads Gradio keeps (a what-if file, an export) go after an hour
    with gr.Blocks(title="routellm_demo: an open LLM router", delete_cache=(600, 3600)) as demo:
        session = gr.State(new_session_id)  # server-side, one per visitor; never shown
        header(cfg)
        chat_tab(demo, runtime, limits, session, visitors)
        arena_tab(arena, limits, session, visitors)
        leaderboard_tab(arena)
        data_tab(arena, runtime.store, export_dir, admin_enabled)
        learning_tab(arena, refresher)
        evaluation_tab(cfg.eval_dir)
        whatif_tab(runtime)
    return demo
