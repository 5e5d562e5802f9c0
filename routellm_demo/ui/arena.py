"""The Arena, Leaderboard and Data tabs: ask both models blind, vote, see the ratings and what is stored.

Pairing, voting, ratings, export and deletion happen in :mod:`routellm_demo.arena`; the visitor's
browser only ever holds a random battle id (kept server-side in a gr.State) and an outcome.
"""

from __future__ import annotations

import gradio as gr

from routellm_demo.arena import Arena, VoteError
from routellm_demo.errors import UserError
from routellm_demo.export import datasheet_path
from routellm_demo.limits import Limits
from routellm_demo.store import Store
from routellm_demo.ui.format import (esc, excluded_note, flag_counts_frame, leaderboard_frame, matrix_frame,
                                     store_counts_frame, vote_html, vote_note, votes_frame)
from routellm_demo.ui.layout import refresh_view, tab_intro
from routellm_demo.ui.plots import ratings_plot

ARENA_EXAMPLES = ["Why is the sky blue?", "Explain recursion to a child.", "Name three primary colours.",
                  "What is 17 times 3?"]


def arena_tab(arena: Arena, limits: Limits, session: gr.State, visitors=None) -> None:
    """The "Arena" tab (call inside the Blocks) and its events: one prompt, two blind answers, a vote.
    ``visitors`` (a :class:`~routellm_demo.visitors.VisitorKeys`) keys limits and duplicate votes on the
    client address; without it the session stands for the visitor."""
    battle = gr.State(None)  # the arena battle awaiting this session's vote (server-side)
    hidden = [gr.update(visible=False)] * 4
    shown = [gr.update(visible=True)] * 4

    def visitor_of(request, session_id):
        return visitors.from_request(request, session_id) if visitors is not None else None

    def arena_ask(prompt, session_id, request: gr.Request = None):
        def pane(text):
            return [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]

        try:
            limits.check_arena(session_id, prompt, visitor=visitor_of(request, session_id))
            battle_id = arena.new_battle(prompt, session_id)
        except UserError as e:
            yield (gr.update(), gr.update(), f"❌ {esc(e.public)}", prompt, None, *hidden, "")
            return
        texts = {"a": "", "b": ""}
        yield (gr.update(value=pane(""), label="Model A"), gr.update(value=pane(""), label="Model B"),  # names hidden again
               "Both models are answering…", "", None, *hidden, "")
        try:
            answers = arena.stream_answers(battle_id, session_id)
            for side, piece in answers:
                texts[side] += piece
                yield (pane(texts["a"]), pane(texts["b"]), "Both models are answering…", "", None, *hidden, "")
            answers.round()
            yield (pane(texts["a"]), pane(texts["b"]),
                   "**Both answers are in.** Which one is better? Vote to reveal the models.", "", battle_id, *shown, "")
        except UserError as e:  # a model's failure in detail is in the server log
            yield (gr.update(), gr.update(), f"❌ {esc(e.public)} This round cannot be voted on; ask again.", prompt, None,
                   *hidden, "")

    def arena_vote(outcome, battle_id, session_id, request: gr.Request = None):
        keep = gr.update()
        try:
            visitor = visitor_of(request, session_id)
            limits.check_vote(session_id, visitor=visitor)
            r = arena.vote(battle_id, outcome, session_id, visitor=visitor)
        except VoteError as e:  # this battle cannot take a vote: it is let go
            return keep, keep, f"❌ {esc(e.public)}", None, *hidden, keep
        except UserError as e:  # a limit or the store: nothing was counted; the visitor may retry the same vote
            return keep, keep, f"❌ {esc(e.public)}", battle_id, *[keep] * 4, keep
        role_of = {r.strong_model: "strong", r.weak_model: "weak"}
        return (gr.update(label=f"Model A: {r.model_a} ({role_of[r.model_a]})"),
                gr.update(label=f"Model B: {r.model_b} ({role_of[r.model_b]})"),
                vote_note(r), None, *hidden, vote_html(r))

    with gr.Tab("Arena", id="arena"):
        gr.Markdown("Ask one question; **both models answer side by side**, names hidden, sides random. When both "
                    "are done, vote. Your vote is stored as a battle: **sw_ranking** learns from it at once, mf and "
                    "the classifier at their next background refit (Learning tab); "
                    "the page then shows the names and what changed. Votes, with their question and "
                    "answers, are public (Data tab): don't type anything private.")
        with gr.Row():
            arena_prompt = gr.Textbox(show_label=False, placeholder="Ask both models, press Enter",
                                      elem_id="arena-prompt", scale=5)
            ask = gr.Button("Ask both", variant="primary", scale=1, min_width=80)
        gr.Examples(ARENA_EXAMPLES, arena_prompt, label="Try one", api_name="arena_example")
        if arena.pool is not None:
            with gr.Row():
                suggest = gr.Button("Suggest a question from the team's prompt pool", size="sm", scale=1,
                                    elem_id="arena-suggest")
                gr.Markdown("The pool's prompts whose votes would teach the router most: the ones least like "
                            "anything voted on so far (picked with some randomness).", elem_classes="muted")
        arena_status = gr.Markdown("", elem_id="arena-status")
        with gr.Row():
            chat_a = gr.Chatbot(label="Model A", height=300, sanitize_html=True, elem_id="model-a",
                                feedback_options=None)
            chat_b = gr.Chatbot(label="Model B", height=300, sanitize_html=True, elem_id="model-b",
                                feedback_options=None)
        with gr.Row():
            vote_buttons = [
                gr.Button("← A is better", visible=False, elem_id="vote-A", variant="primary"),
                gr.Button("B is better →", visible=False, elem_id="vote-B", variant="primary"),
                gr.Button("Tie", visible=False, elem_id="vote-tie"),
                gr.Button("Both are bad", visible=False, elem_id="vote-bothbad"),
            ]
        vote_result = gr.HTML("", elem_id="vote-result-box")

    ask_out = [chat_a, chat_b, arena_status, arena_prompt, battle, *vote_buttons, vote_result]
    arena_prompt.submit(arena_ask, [arena_prompt, session], ask_out, api_name="arena_ask",
                        show_progress="hidden", concurrency_id="generate")
    ask.click(arena_ask, [arena_prompt, session], ask_out, api_name="arena_ask_button",
              show_progress="hidden", concurrency_id="generate")
    vote_out = [chat_a, chat_b, arena_status, battle, *vote_buttons, vote_result]
    def vote_handler(outcome):
        # a plain function, not functools.partial: Gradio passes the request (the visitor's address) only
        # to a function whose own annotations name gr.Request
        def handler(battle_id, session_id, request: gr.Request = None):
            return arena_vote(outcome, battle_id, session_id, request)
        return handler

    for button, outcome in zip(vote_buttons, ("A", "B", "tie", "bothbad")):
        # no queueing limit: a vote is quick (and serialised by the arena), and its "too fast" flag is read
        # when it is handled, so a vote must not wait behind others
        button.click(vote_handler(outcome), [battle, session], vote_out, api_name=f"arena_vote_{outcome.lower()}",
                     concurrency_limit=None)
    if arena.pool is not None:
        def suggest_prompt():
            try:
                return arena.suggest(1)[0], ""
            except UserError as e:
                return gr.update(), f"❌ {esc(e.public)}"

        suggest.click(suggest_prompt, None, [arena_prompt, arena_status], api_name="arena_suggest")


def leaderboard_tab(arena: Arena) -> None:
    """The "Leaderboard" tab (call inside the Blocks): ratings with intervals, and who beats whom."""

    def leaderboard_view():
        try:
            all_board, arena_board = arena.leaderboard("all"), arena.leaderboard("arena")
        except UserError as e:  # a clear message in the page (a toast), not a bare "Error"
            raise gr.Error(e.public, print_exception=False) from None
        return (leaderboard_frame(all_board), leaderboard_frame(arena_board), matrix_frame(all_board),
                ratings_plot([("All battles", all_board), ("Arena votes only", arena_board)]),
                excluded_note(arena_board.get("excluded", {})))

    with gr.Tab("Leaderboard", id="leaderboard") as tab:
        refresh_lb = tab_intro("Bradley-Terry ratings (Elo scale: +400 means 10× the odds of winning) with 95% bootstrap "
                               "intervals. Models that never met are on separate scales: compare within a pair. "
                               "Each rating starts from a prior (1 sd = 245 Elo), so the first votes move it by ~100, "
                               "not by hundreds; the intervals say how sure it is.")
        gr.Markdown("**All battles** (imported judgements and arena votes)")
        lb_all = gr.Dataframe(interactive=False, elem_id="lb-all", wrap=True)
        gr.Markdown("**Arena votes only**")
        lb_arena = gr.Dataframe(interactive=False, elem_id="lb-arena", wrap=True)
        lb_excluded = gr.Markdown("", elem_id="lb-excluded")
        lb_plot = gr.Plot(label="Ratings with 95% intervals", elem_id="lb-plot")
        gr.Markdown("**Win rates**: how often the row model beat the column model (ties count half; all battles)")
        lb_matrix = gr.Dataframe(interactive=False, elem_id="lb-matrix", wrap=True)

    refresh_view(tab, refresh_lb, leaderboard_view, None, [lb_all, lb_arena, lb_matrix, lb_plot, lb_excluded],
                 "leaderboard")


def data_tab(arena: Arena, store: Store, export_dir: str, admin_enabled: bool) -> None:
    """The "Data" tab (call inside the Blocks): stored battles by source, recent votes, export, and the
    admin's delete (disabled unless an admin token is configured)."""

    def data_view():
        try:
            return (store_counts_frame(store.count_battles(), store.count_pending()), votes_frame(arena.recent_votes(20)),
                    flag_counts_frame(store.count_flags(), counted=store.count_flagged))
        except UserError as e:
            raise gr.Error(e.public, print_exception=False) from None

    def export(fmt):
        """The export, a note, and its datasheet (shown with the export by the next step)."""
        try:
            path = arena.export(str(fmt).lower(), export_dir)
        except (UserError, OSError) as e:  # nothing half-written shows up under the final name
            return None, f"❌ Export failed: {esc(e.public if isinstance(e, UserError) else e)}", None
        sheet = datasheet_path(path)
        return str(path), f"Exported {path.name}, with its datasheet {sheet.name}.", str(sheet)

    def delete_votes(token):
        try:
            deleted = arena.delete_votes(token)
        except UserError as e:
            return "", f"❌ {esc(e.public)}"
        return "", f"Deleted {deleted['votes']} arena votes and {deleted['pending']} arena battles; the routers forgot them."

    with gr.Tab("Data", id="data") as tab:
        refresh_data = tab_intro("What the demo has stored: imported judgements and the arena votes of visitors.")
        with gr.Row():
            counts = gr.Dataframe(interactive=False, label="Stored battles by source", elem_id="counts", scale=1)
            with gr.Column(scale=2):
                gr.Markdown("**Export all battles** (every source, flagged votes with their flags; a datasheet "
                            "is written beside each file; session ids and visitor keys are left out)")
                with gr.Row():
                    fmt = gr.Radio(["CSV", "JSONL", "Parquet"], value="CSV", show_label=False, scale=2)
                    export_btn = gr.Button("Export", scale=1, min_width=90)
                with gr.Row():
                    export_file = gr.File(label="Download", interactive=False, visible=False, elem_id="export-file")
                    sheet_file = gr.File(label="Datasheet (schema, counts by source, flag and model pair)",
                                         interactive=False, visible=False, elem_id="export-datasheet")
                export_note = gr.Markdown("")
        flag_counts = gr.Dataframe(interactive=False, label="Arena votes by flag (flagged votes are stored and "
                                   "exported, and by default teach no router and move no rating)", elem_id="flag-counts")
        recent = gr.Dataframe(interactive=False, label="Recent arena votes (newest first)", elem_id="recent",
                              wrap=True)
        with gr.Accordion("Admin", open=False):
            gr.Markdown("Deletes every arena vote and arena battle, and makes the routers forget them. "
                        "Needs the admin token." if admin_enabled else
                        "Destructive actions are **disabled** on this server: set `ROUTELLM_DEMO_ADMIN_TOKEN` "
                        "to enable them.")
            admin_token = gr.Textbox(label="Admin token", type="password", interactive=admin_enabled)
            delete_btn = gr.Button("Delete all arena votes", variant="stop", interactive=admin_enabled)
            admin_note = gr.Markdown("")

    refresh_view(tab, refresh_data, data_view, None, [counts, recent, flag_counts], "data")
    export_btn.click(export, fmt, [export_file, export_note, sheet_file], api_name="export").then(
        lambda: (gr.update(visible=True), gr.update(visible=True)), None, [export_file, sheet_file],
        api_name="export_show")
    delete_btn.click(delete_votes, admin_token, [admin_token, admin_note], api_name="admin_delete_votes")
