"""The Gradio app: chat through the router and see why each answer went where it went; vote in the
arena and watch the router learn; the leaderboard; the data.

A thin shell over the library: routing, calling, accounting and logging happen in
``routellm_demo.controller``; pairing, voting, ratings and export in ``routellm_demo.arena``; limits
in ``routellm_demo.limits``. This file lays the page out and formats what comes back. Everything
shown that a visitor or a model wrote is HTML-escaped; the Chatbot keeps ``sanitize_html`` on.

Run: ``python app.py`` (no configuration: the embedded local model pair, no key, no network).
"""

from __future__ import annotations

import functools
import html
import logging
import math
import os
import re
import tempfile
import threading
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from routellm_demo.arena import OUTCOME_TEXT, Arena, ArenaRound, VoteError, VoteResult  # noqa: E402
from routellm_demo.calibration import strong_share, threshold_for_strong_share  # noqa: E402
from routellm_demo.evals.results import COLUMN_TITLES, EvalRun, latest_by_benchmark  # noqa: E402
from routellm_demo.controller import Answer, AnswerError, Decision, text_of  # noqa: E402
from routellm_demo.errors import UserError  # noqa: E402
from routellm_demo.limits import Limits  # noqa: E402
from routellm_demo.routers import ROUTER_NAMES, router_help  # noqa: E402
from routellm_demo.runtime import Runtime, build_runtime  # noqa: E402
from routellm_demo.learning import Prequential, prequential  # noqa: E402
from routellm_demo.refresh import Refresher, RouterVersion  # noqa: E402
from routellm_demo.store import ARENA_SOURCE  # noqa: E402
from routellm_demo.seed import start_update as start_seed_update  # noqa: E402

logger = logging.getLogger(__name__)

CALIBRATION_MIN_TRAFFIC = 30  # fewer logged requests than this: calibrate on stored battle prompts
CALIBRATION_SAMPLE = 300  # battle prompts scored when calibrating on them
ROUTE_BADGE = {"strong": "STRONG", "weak": "WEAK"}  # no emoji: many servers/browsers lack the font
ROUTE_COLOR = {"strong": "#7c3aed", "weak": "#059669"}
CHAT_EXAMPLES = ["What is the capital of Japan?", "Prove that the square root of 2 is irrational.",
                 "Write a Python function that reverses a string.", "Give me one tip for sleeping better."]
ARENA_EXAMPLES = ["Why is the sky blue?", "Explain recursion to a child.", "Name three primary colours.",
                  "What is 17 times 3?"]
# System fonts: the page renders the same offline, and loads nothing from third-party font servers.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])
CSS = """
.route-card {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px;}
.why-table td, .why-table th {padding: 2px 6px; vertical-align: top; font-size: 0.9em;}
.muted {color: var(--body-text-color-subdued); font-size: 0.9em;}
"""
# Images load only from this server or inline data. The Chatbots' sanitize_html removes scripts and
# handlers but keeps <img> and Markdown images, so an answer or a prompt could otherwise make every
# viewer's browser fetch a URL of its choosing (a tracking pixel).
HEAD = """<meta http-equiv="Content-Security-Policy" content="img-src 'self' data: blob:">"""


def launch_options() -> dict:
    """``demo.launch(**launch_options())``, here and in the tests: the look, the CSP head, and a 1 MiB cap
    on request bodies (:mod:`routellm_demo.body_limit`). A fresh dict per launch: Gradio edits its
    app_kwargs in place."""
    from starlette.middleware import Middleware

    from routellm_demo.body_limit import BodyLimit

    return {"css": CSS, "theme": THEME, "head": HEAD, "app_kwargs": {"middleware": [Middleware(BodyLimit)]}}


# ---- formatting --------------------------------------------------------------------------------


def esc(text, limit: int | None = None) -> str:
    """User or model text made safe for HTML (and inert as Markdown), optionally shortened."""
    s = " ".join(str(text).split())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    s = html.escape(s)
    return re.sub(r"([\\`*_{}\[\]()#+!|~>-])", r"\\\1", s)


def h(text, limit: int | None = None) -> str:
    """Text for gr.HTML: escaped, whitespace collapsed, optionally shortened."""
    s = " ".join(str(text).split())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return html.escape(s)


def money(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"${x:.7f}" if x < 0.001 else f"${x:.4f}"


def score_bar(score: float, threshold: float, role: str) -> str:
    """A bar showing the router's score against the threshold (numbers only: nothing to escape)."""
    s, t = max(0.0, min(1.0, score)), max(0.0, min(1.0, threshold))
    return (
        '<div style="position:relative;height:14px;background:#e5e7eb;border-radius:7px;margin:6px 0 2px">'
        f'<div style="width:{100 * s:.1f}%;height:100%;background:{ROUTE_COLOR[role]};border-radius:7px"></div>'
        f'<div title="threshold" style="position:absolute;left:{100 * t:.1f}%;top:-4px;width:3px;height:22px;'
        'background:#111827"></div></div>'
        '<div class="muted" style="display:flex;justify-content:space-between"><span>0 → weak</span>'
        f'<span>▮ threshold {t:.3f}</span><span>strong ← 1</span></div>'
    )


def decision_card(d: Decision | None, answer: Answer | None = None, error: str | None = None) -> str:
    """The routing card for the latest answer."""
    if d is None:
        return f'<div class="route-card">❌ {h(error)}</div>' if error else ""
    cmp = "≥" if d.role == "strong" else "<"
    parts = [
        '<div class="route-card" id="route-card">',
        f'<div style="font-size:1.15em;font-weight:600;color:{ROUTE_COLOR[d.role]}">● Routed to the '
        f'{ROUTE_BADGE[d.role]} model: {h(d.model)}</div>',
        f"<div>Router <b>{h(d.router)}</b> gave this prompt a score of <b>{d.score:.3f}</b> "
        f"(its estimate that the strong model's answer would win) {cmp} threshold <b>{d.threshold:.3f}</b>, "
        f"so the <b>{d.role}</b> model answers. Routing took <b>{d.routing_ms:.0f} ms</b>.</div>",
        score_bar(d.score, d.threshold, d.role),
    ]
    if answer is not None:
        if answer.fallback_note:  # one sentence; the cause is in the server log
            parts.append(f"<div>⚠️ {h(answer.fallback_note)}</div>")
        if answer.dropped_messages:
            parts.append(f"<div>✂️ The {answer.dropped_messages} oldest message(s) of this conversation were left out "
                         f"to fit {h(answer.model)}'s context window.</div>")
        ttft = f"first token after {answer.ttft_ms:.0f} ms, " if answer.ttft_ms is not None else ""
        saved = answer.strong_cost - answer.cost
        parts.append(
            f"<div style='margin-top:6px'><b>This answer:</b> {answer.prompt_tokens} prompt + {answer.completion_tokens} "
            f"completion tokens ({h(answer.usage_source)}) · {ttft}done in {answer.latency_ms / 1000:.1f} s<br>"
            f"<b>Cost {money(answer.cost)}</b> · the strong model would have cost {money(answer.strong_cost)} · "
            f"saved <b>{money(saved)}</b></div>")
    if error:
        parts.append(f"<div>❌ {h(error)}</div>")
    parts.append("</div>")
    return "".join(parts)


def outcome_of(player_a: str, player_b: str, outcome: float) -> str:
    if outcome == 1.0:
        return f"{player_a} won"
    if outcome == 0.0:
        return f"{player_b} won"
    return "tie"


def why_panel(store, d: Decision | None) -> str:
    """sw_ranking's reasons: the most similar past battles, with their prompts."""
    if d is None or d.router != "sw_ranking":
        return ('<div class="muted">Choose the <b>sw_ranking</b> router to see, for each prompt, the past battles '
                "that weighed most in its score.</div>")
    if not d.explanation:
        return '<div class="muted">No past battles yet: sw_ranking says 0.5 until it has some.</div>'
    rows = []
    for e in d.explanation:
        battle = store.battle(e["battle_id"]) if e.get("battle_id", -1) >= 0 else None
        prompt = h(battle["prompt"], 140) if battle else "<i>(not stored)</i>"
        source = h(battle["source"]) if battle else ""
        rows.append(
            f"<tr><td>{e['similarity']:.2f}</td><td>{e['weight']:.0f}</td><td>{prompt}"
            f"<div class='muted'>{source}</div></td>"
            f"<td>{h(outcome_of(e['player_a'], e['player_b'], e['outcome']))}</td></tr>")
    return (
        "<div><b>Why this score?</b> sw_ranking refits strong-vs-weak ratings for this prompt, weighting every "
        "past battle by how similar its prompt is. These weighed most:</div>"
        '<table class="why-table"><tr><th>similarity</th><th>weight</th><th>past prompt</th><th>result</th></tr>'
        + "".join(rows) + "</table>")


def totals_html(session: dict, overall: dict) -> str:
    def line(title: str, s: dict) -> str:
        if not s.get("requests"):
            return f"<div><b>{title}:</b> no answers yet.</div>"
        n = s["requests"]
        return (f"<div><b>{title}:</b> {n} request{'s' if n != 1 else ''} · {100 * s['strong_share']:.0f}% to strong · "
                f"spent {money(s['spent'])} · always-strong would cost {money(s['all_strong_cost'])} · "
                f"<b>saved {money(s['saved'])} ({s['saved_pct']:.1f}%)</b></div>")

    return '<div id="totals">' + line("This session", session) + line("All visitors", overall) + "</div>"


def answers_frame(rows: list[dict]) -> pd.DataFrame:
    """The routing log of this session, newest first, as a table."""
    cols = ["#", "routed to", "model", "router", "score", "threshold", "tokens in+out", "cost", "saved"]
    data = []
    for r in rows:
        if r.get("error"):
            continue
        nan = r.get("score") is None
        data.append([
            r["id"], ROUTE_BADGE.get(r["chosen_role"], r["chosen_role"]), r["chosen_model"], r["router"],
            "–" if nan else f"{r['score']:.3f}", "–" if r.get("threshold") is None else f"{r['threshold']:.3f}",
            f"{r.get('prompt_tokens') or 0}+{r.get('completion_tokens') or 0}", money(r.get("cost")),
            money((r.get("strong_cost") or 0) - (r.get("cost") or 0)),
        ])
    return pd.DataFrame(data, columns=cols)


def is_route_note(m: dict) -> bool:
    return bool((m.get("metadata") or {}).get("title"))


def conversation(history: list[dict]) -> list[dict]:
    """The messages to send: the Chatbot's history minus the routing notes shown between turns."""
    return [{"role": m["role"], "content": text_of(m["content"])} for m in history
            if not is_route_note(m) and m["role"] in ("user", "assistant")]


def last_answer(history: list[dict]) -> str:
    """The text of the latest answer in a Chatbot value (routing notes skipped); "" if none yet."""
    return next((m["content"] for m in reversed(conversation(history or [])) if m["role"] == "assistant"), "")


def vote_html(r: VoteResult) -> str:
    """What the vote changed, in words."""
    role_of = {r.strong_model: "strong", r.weak_model: "weak"}
    if r.winner_model:
        verdict = f"<b>{h(r.winner_model)}</b> (the {role_of[r.winner_model]} model) wins."
    else:
        verdict = "a tie." if r.outcome == "tie" else "both were bad (a tie)."
    delta = r.sw_after - r.sw_before
    lean = "the strong model" if delta > 0 else "the weak model" if delta < 0 else "neither side"
    ratings = " · ".join(
        f"{h(m)} ({role_of[m]}): {r.ratings_before.get(m, 1000):.0f} → {r.ratings_after.get(m, 1000):.0f} "
        f"(<b>{r.rating_change(m):+.0f}</b>)" for m in (r.model_a, r.model_b))
    return (
        '<div class="route-card" id="vote-result">'
        f"<div style='font-size:1.1em'>You voted <b>{h(OUTCOME_TEXT[r.outcome])}</b>: {verdict}</div>"
        f"<div>Model A was <b>{h(r.model_a)}</b> ({role_of[r.model_a]}), "
        f"Model B was <b>{h(r.model_b)}</b> ({role_of[r.model_b]}).</div>"
        "<div style='margin-top:6px'><b>What changed</b></div><ul>"
        f"<li>sw_ranking score for this prompt (chance the strong model wins), when the answers came in → after "
        f"your vote: <b>{r.sw_before:.3f} → {r.sw_after:.3f}</b> ({delta:+.3f}): prompts like this now lean a little "
        f"more to {lean}.</li>"
        f"<li>Arena ratings (Bradley-Terry, arena votes only): {ratings}</li>"
        f"<li>Stored as battle #{r.battle_row_id} (source <code>arena-vote</code>); the router took it in "
        f"{r.absorb_ms:.0f} ms.</li></ul></div>")


MIN_CI_BATTLES = 5  # below this a bootstrap resamples the same few battles: its interval means nothing


def leaderboard_frame(board: dict) -> pd.DataFrame:
    cols = ["rank", "model", "rating", "95% CI", "battles", "wins", "losses", "ties"]

    def ci(r):
        if r["n_battles"] < MIN_CI_BATTLES:
            return f"too few battles (< {MIN_CI_BATTLES})"
        return f"{r['ci_low']:.0f} – {r['ci_high']:.0f}"

    rows = [[i + 1, r["player"], round(r["rating"]), ci(r), r["n_battles"], r["wins"], r["losses"], r["ties"]]
            for i, r in enumerate(board["rows"])]
    return pd.DataFrame(rows, columns=cols)


def matrix_frame(board: dict) -> pd.DataFrame:
    players = board["players"]
    rows = []
    for i, p in enumerate(players):
        cells = []
        for j in range(len(players)):
            n = int(board["games"][i, j])
            cells.append("–" if n == 0 else f"{100 * board['win_rate'][i, j]:.0f}% (n={n})")
        rows.append([p, *cells])
    return pd.DataFrame(rows, columns=["model ↓ beats →", *players])


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


def store_counts_frame(counts: dict, pending: dict) -> pd.DataFrame:
    rows = [[src, n] for src, n in counts.items()]
    rows.append(["total", sum(counts.values())])
    label = {"asked": "arena rounds being answered", "answered": "arena rounds awaiting a vote",
             "failed": "arena rounds failed", "voted": "arena rounds voted"}
    for status, n in pending.items():
        rows.append([label.get(status, status), n])
    return pd.DataFrame(rows, columns=["source", "count"])


def votes_frame(rows: list[dict]) -> pd.DataFrame:
    vote_name = {"model_a": "A is better", "model_b": "B is better", "tie": "Tie", "tie (bothbad)": "Both are bad"}
    def winner(r):
        side = {"model_a": "a", "model_b": "b"}.get(r["winner"])
        if side is None:
            return "–"
        return f"{r['model_' + side]} ({'strong' if side == r['strong_side'] else 'weak'})"

    data = [[r["created_at"][:19].replace("T", " "), " ".join(r["prompt"].split())[:90], r["model_a"], r["model_b"],
             vote_name.get(r["winner"], r["winner"]), winner(r)] for r in rows]
    return pd.DataFrame(data, columns=["when (UTC)", "prompt", "model A", "model B", "vote", "winner"])


# ---- the page ----------------------------------------------------------------------------------


def tab_intro(text: str) -> gr.Button:
    """A tab's opening line with its Refresh button beside it (call inside the tab); returns the button."""
    with gr.Row():
        gr.Markdown(text)
        return gr.Button("Refresh", size="sm", scale=0, min_width=100)


def new_session_id() -> str:
    return uuid.uuid4().hex


def build_demo(runtime: Runtime, *, arena: Arena | None = None, limits: Limits | None = None,
               refresher: Refresher | None = None,
               export_dir: str | None = None) -> gr.Blocks:
    """The page. Handlers call the library; nothing here routes, stores or rates."""
    cfg = runtime.config
    ctl = runtime.controller
    store = runtime.store
    arena = arena or Arena.from_runtime(runtime)
    # mf and classifier refit every 50 votes. A runtime that follows the store counts every process's
    # votes through the change feed; otherwise (a lone process, a test) this arena's votes are counted.
    if refresher is None and runtime.refresher is not None:
        refresher = runtime.refresher
    else:
        refresher = refresher or Refresher(runtime.routers, store, runtime.embedder)
        arena.add_vote_listener(refresher.notify_vote)
    if runtime.follower is not None:
        runtime.follower.add_listener(arena.notify_changes)  # a delete elsewhere resets the arena's tally
    limits = limits or Limits.from_config(cfg)
    export_dir = export_dir or tempfile.mkdtemp(prefix="routellm_demo_export_")
    admin_enabled = cfg.admin_token() is not None
    names = {"strong": cfg.strong.name, "weak": cfg.weak.name}

    def totals(session_id):
        try:
            return totals_html(ctl.savings(session_id), ctl.savings())
        except UserError as e:
            return f'<div id="totals">❌ {h(e.public)}</div>'

    # -- chat
    def chat(message, history, router, threshold, session_id):
        history = list(history or [])
        keep = gr.update()
        earlier = conversation(history)
        try:
            limits.check_chat(session_id, message, sum(1 for m in earlier if m["role"] == "user"),
                              sum(len(m["content"]) for m in earlier))
        except UserError as e:
            yield history, message, decision_card(None, error=e.public), keep, keep, keep
            return
        messages = earlier + [{"role": "user", "content": message}]
        history.append({"role": "user", "content": message})
        yield history, "", '<div class="route-card">Routing…</div>', keep, keep, keep
        decision = None
        try:
            for item in ctl.stream(messages, router=router, threshold=threshold, session_id=session_id,
                                   source="app", explain=5 if router == "sw_ranking" else 0):
                if isinstance(item, Decision):
                    decision = item
                    history.append({"role": "assistant", "content": (
                        f"score {item.score:.3f} {'≥' if item.role == 'strong' else '<'} threshold {item.threshold:.3f} "
                        f"({item.router}), routed in {item.routing_ms:.0f} ms"),
                        "metadata": {"title": f"{ROUTE_BADGE[item.role]} model · {item.model} · score {item.score:.3f} "
                                              f"{'≥' if item.role == 'strong' else '<'} {item.threshold:.3f}",
                                     "status": "done"}})
                    history.append({"role": "assistant", "content": ""})
                    yield history, "", decision_card(item), why_panel(store, item), keep, keep
                elif isinstance(item, Answer):  # the last yield carries everything (an API caller sees only it)
                    yield (history, "", decision_card(decision, item), why_panel(store, decision), totals(session_id),
                           answers_frame(store.decisions(session_id=session_id, limit=20)))
                else:
                    history[-1]["content"] += item
                    yield history, "", keep, keep, keep, keep
        except AnswerError as e:  # the detail is in the server log (the controller logged it)
            if history and history[-1]["role"] == "assistant" and not history[-1]["content"]:
                history[-1]["content"] = "(no answer)"
            yield history, message, decision_card(decision, error=e.public), keep, totals(session_id), keep
        except UserError as e:
            if decision is not None and history[-1]["content"]:
                # the answer is already on screen (only logging it failed): it stays, with the error
                yield history, "", decision_card(decision, error=e.public), keep, keep, keep
                return
            history = history[: len(history) - (3 if decision else 1)]
            yield history, message, decision_card(None, error=e.public), keep, keep, keep

    def new_chat():
        return [], "", "", ""

    def calibrate(router, pct):
        try:
            scores, over = ctl.calibration_scores(router, min_traffic=CALIBRATION_MIN_TRAFFIC, sample=CALIBRATION_SAMPLE)
        except UserError as e:
            return gr.update(), f"❌ {esc(e.public)}"
        if not scores:
            return gr.update(), "❌ Nothing to calibrate on yet: no logged requests and no stored battles."
        exact = threshold_for_strong_share(scores, pct / 100.0)
        # the slider holds 3 decimals: of the two neighbours, keep the one whose share is nearest the target
        t = min((min(1.0, math.floor(exact * 1000) / 1000), min(1.0, math.ceil(exact * 1000) / 1000)),
                key=lambda c: (abs(strong_share(scores, c) - pct / 100.0), -c))
        return t, (f"Threshold **{t:.3f}** sends **{100 * strong_share(scores, t):.0f}%** of {esc(over)} to the "
                   f"strong model (target {pct:.0f}%).")

    # -- arena
    hidden = [gr.update(visible=False)] * 4
    shown = [gr.update(visible=True)] * 4

    def arena_ask(prompt, session_id):
        def pane(text):
            return [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]

        try:
            limits.check_arena(session_id, prompt)
            battle_id = arena.new_battle(prompt, session_id)
        except UserError as e:
            yield (gr.update(), gr.update(), f"❌ {esc(e.public)}", prompt, None, *hidden, "")
            return
        texts = {"a": "", "b": ""}
        yield (gr.update(value=pane(""), label="Model A"), gr.update(value=pane(""), label="Model B"),  # names hidden again
               "Both models are answering…", "", None, *hidden, "")
        try:
            for item in arena.stream_answers(battle_id, session_id):
                if isinstance(item, ArenaRound):
                    yield (pane(texts["a"]), pane(texts["b"]),
                           "**Both answers are in.** Which one is better? Vote to reveal the models.",
                           "", battle_id, *shown, "")
                else:
                    side, piece = item
                    texts[side] += piece
                    yield (pane(texts["a"]), pane(texts["b"]), "Both models are answering…",
                           "", None, *hidden, "")
        except UserError as e:  # a model's failure in detail is in the server log
            yield (gr.update(), gr.update(), f"❌ {esc(e.public)} This round cannot be voted on; ask again.", prompt, None,
                   *hidden, "")

    def arena_vote(outcome, battle_id, session_id):
        keep = gr.update()
        try:
            limits.check_vote(session_id)
            r = arena.vote(battle_id, outcome, session_id)
        except VoteError as e:  # this battle cannot take a vote: it is let go
            return keep, keep, f"❌ {esc(e.public)}", None, *hidden, keep
        except UserError as e:  # a limit or the store: nothing was counted; the visitor may retry the same vote
            return keep, keep, f"❌ {esc(e.public)}", battle_id, *[keep] * 4, keep
        role_of = {r.strong_model: "strong", r.weak_model: "weak"}
        return (gr.update(label=f"Model A: {r.model_a} ({role_of[r.model_a]})"),
                gr.update(label=f"Model B: {r.model_b} ({role_of[r.model_b]})"),
                "Thanks for voting! Ask another question for a new round.", None, *hidden, vote_html(r))

    # -- leaderboard and data
    def leaderboard_view():
        try:
            all_board, arena_board = arena.leaderboard("all"), arena.leaderboard("arena")
        except UserError as e:  # a clear message in the page (a toast), not a bare "Error"
            raise gr.Error(e.public, print_exception=False) from None
        return (leaderboard_frame(all_board), leaderboard_frame(arena_board), matrix_frame(all_board),
                ratings_plot([("All battles", all_board), ("Arena votes only", arena_board)]))

    def data_view():
        try:
            return store_counts_frame(store.count_battles(), store.count_pending()), votes_frame(arena.recent_votes(20))
        except UserError as e:
            raise gr.Error(e.public, print_exception=False) from None

    def export(fmt):
        try:
            path = arena.export(str(fmt).lower(), export_dir)
        except (UserError, OSError) as e:  # nothing half-written shows up under the final name
            return None, f"❌ Export failed: {esc(e.public if isinstance(e, UserError) else e)}"
        return str(path), f"Exported {path.name}."

    def delete_votes(token):
        try:
            deleted = arena.delete_votes(token)
        except UserError as e:
            return "", f"❌ {esc(e.public)}"
        return "", f"Deleted {deleted['votes']} arena votes and {deleted['pending']} arena battles; the routers forgot them."

    with gr.Blocks(title="routellm_demo: an open LLM router") as demo:
        session = gr.State(new_session_id)  # server-side, one per visitor; never shown
        battle = gr.State(None)  # the arena battle awaiting this session's vote (server-side)
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

        with gr.Tab("Chat", id="chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="Conversation", height=460, sanitize_html=True, elem_id="chatbot",
                                         feedback_options=None,
                                         placeholder="Ask anything. Each answer shows which model the router chose.")
                    with gr.Row():
                        prompt = gr.Textbox(show_label=False, placeholder="Ask anything, press Enter",
                                            elem_id="prompt", lines=1, scale=5, max_length=None)
                        send = gr.Button("Send", variant="primary", scale=1, min_width=80)
                    gr.Examples(CHAT_EXAMPLES, prompt, label="Try one", api_name="chat_example")
                    with gr.Row():
                        clear = gr.Button("New conversation", size="sm", scale=1)
                        gr.HTML(f"<div class='muted'>Limits: {cfg.max_prompt_chars:,} characters per message, "
                                f"{cfg.max_turns} turns per conversation, {cfg.requests_per_minute} requests per "
                                "minute.</div>", scale=2)
                    totals_box = gr.HTML(totals_html({}, ctl.savings()), elem_id="savings", padding=True)
                with gr.Column(scale=2):
                    router = gr.Dropdown(list(ROUTER_NAMES), value=cfg.router, label="Router",
                                         info=router_help(cfg.router), elem_id="router")
                    threshold = gr.Slider(0.0, 1.0, value=cfg.threshold, step=0.001, label="Threshold",
                                          info="the strong model answers when the score is at or above this",
                                          elem_id="threshold")
                    with gr.Accordion("Calibrate: send X% of traffic to the strong model", open=False):
                        with gr.Row():
                            target = gr.Slider(0, 100, value=50, step=1, label="% to strong", scale=3)
                            calib = gr.Button("Calibrate", scale=1, min_width=90)
                        calib_note = gr.Markdown("Sets the threshold from this router's logged traffic, or from "
                                                 "stored battle prompts while there is little traffic.")
                    card = gr.HTML('<div class="route-card muted">The routing decision for each answer appears '
                                   "here: the router's score, the threshold, the model chosen, tokens and cost."
                                   "</div>", elem_id="routing-details")
                    why = gr.HTML(why_panel(store, None), elem_id="why")
            with gr.Accordion("Every answer in this session", open=False):
                answers = gr.Dataframe(answers_frame([]), interactive=False, elem_id="answers", wrap=True)

        with gr.Tab("Arena", id="arena"):
            gr.Markdown("Ask one question; **both models answer side by side**, names hidden, sides random. When both "
                        "are done, vote. Your vote is stored as a battle and the **sw_ranking** router learns from it "
                        "immediately; the page then shows the names and what changed. Votes, with their question and "
                        "answers, are public (Data tab): don't type anything private.")
            with gr.Row():
                arena_prompt = gr.Textbox(show_label=False, placeholder="Ask both models, press Enter",
                                          elem_id="arena-prompt", scale=5)
                ask = gr.Button("Ask both", variant="primary", scale=1, min_width=80)
            gr.Examples(ARENA_EXAMPLES, arena_prompt, label="Try one", api_name="arena_example")
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

        with gr.Tab("Leaderboard", id="leaderboard") as lb_tab:
            refresh_lb = tab_intro("Bradley-Terry ratings (Elo scale: +400 means 10× the odds of winning) with 95% bootstrap "
                                   "intervals. Models that never met are on separate scales: compare within a pair. "
                                   "Each rating starts from a prior (1 sd = 245 Elo), so the first votes move it by ~100, "
                                   "not by hundreds; the intervals say how sure it is.")
            gr.Markdown("**All battles** (imported judgements and arena votes)")
            lb_all = gr.Dataframe(interactive=False, elem_id="lb-all", wrap=True)
            gr.Markdown("**Arena votes only**")
            lb_arena = gr.Dataframe(interactive=False, elem_id="lb-arena", wrap=True)
            lb_plot = gr.Plot(label="Ratings with 95% intervals", elem_id="lb-plot")
            gr.Markdown("**Win rates**: how often the row model beat the column model (ties count half; all battles)")
            lb_matrix = gr.Dataframe(interactive=False, elem_id="lb-matrix", wrap=True)

        with gr.Tab("Data", id="data") as data_tab:
            refresh_data = tab_intro("What the demo has stored: imported judgements and the arena votes of visitors.")
            with gr.Row():
                counts = gr.Dataframe(interactive=False, label="Stored battles by source", elem_id="counts", scale=1)
                with gr.Column(scale=2):
                    gr.Markdown("**Export all battles** (every source; visitors' session ids are left out)")
                    with gr.Row():
                        fmt = gr.Radio(["CSV", "JSONL", "Parquet"], value="CSV", show_label=False, scale=2)
                        export_btn = gr.Button("Export", scale=1, min_width=90)
                    export_file = gr.File(label="Download", interactive=False, visible=False, elem_id="export-file")
                    export_note = gr.Markdown("")
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

        learning_tab(arena, refresher)
        evaluation_tab(cfg.eval_dir)

        # -- events (every one named, so gradio_client can call it)
        chat_out = [chatbot, prompt, card, why, totals_box, answers]
        chat_in = [prompt, chatbot, router, threshold, session]
        prompt.submit(chat, chat_in, chat_out, api_name="chat", show_progress="hidden", concurrency_id="generate")
        send.click(chat, chat_in, chat_out, api_name="chat_send", show_progress="hidden", concurrency_id="generate")
        clear.click(new_chat, None, [chatbot, prompt, card, why], api_name="new_chat")
        router.change(lambda r: gr.update(info=router_help(r)), router, router, api_name="router_info",
                      show_progress="hidden")
        calib.click(calibrate, [router, target], [threshold, calib_note], api_name="calibrate")
        demo.load(totals, session, totals_box, api_name="totals")

        ask_out = [chat_a, chat_b, arena_status, arena_prompt, battle, *vote_buttons, vote_result]
        arena_prompt.submit(arena_ask, [arena_prompt, session], ask_out, api_name="arena_ask",
                            show_progress="hidden", concurrency_id="generate")
        ask.click(arena_ask, [arena_prompt, session], ask_out, api_name="arena_ask_button",
                  show_progress="hidden", concurrency_id="generate")
        vote_out = [chat_a, chat_b, arena_status, battle, *vote_buttons, vote_result]
        for button, outcome in zip(vote_buttons, ("A", "B", "tie", "bothbad")):
            button.click(functools.partial(arena_vote, outcome), [battle, session], vote_out,
                         api_name=f"arena_vote_{outcome.lower()}")

        lb_out = [lb_all, lb_arena, lb_matrix, lb_plot]
        refresh_lb.click(leaderboard_view, None, lb_out, api_name="leaderboard")
        lb_tab.select(leaderboard_view, None, lb_out, api_name="leaderboard_tab")
        refresh_data.click(data_view, None, [counts, recent], api_name="data")
        data_tab.select(data_view, None, [counts, recent], api_name="data_tab")
        export_btn.click(export, fmt, [export_file, export_note], api_name="export").then(
            lambda: gr.update(visible=True), None, export_file, api_name="export_show")
        delete_btn.click(delete_votes, admin_token, [admin_token, admin_note], api_name="admin_delete_votes")
    return demo


# ---- the Learning tab -------------------------------------------------------------------------

LEARNING_WINDOW = 20  # votes in the rolling prequential accuracy
HOW_IT_LEARNS = {"online": "every vote (online)", "loaded": "as loaded (checkpoint or first fit)",
                 "refit": "refit in the background", "not loaded": "not loaded yet"}


def prequential_plot(preq: Prequential) -> Figure:
    """Was sw_ranking right before each vote? Rolling and overall, against a prompt-blind baseline."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.subplots()
    if not preq.points:
        ax.text(0.5, 0.5, "No scored votes yet: vote in the Arena (ties are not scored).", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    n = [p.n for p in preq.points]
    ax.plot(n, [p.rolling for p in preq.points], "o-", ms=2, color=ROUTE_COLOR["strong"],
            label=f"sw_ranking, last {preq.window} votes")
    ax.plot(n, [p.cumulative for p in preq.points], "--", color="#a78bfa", label="sw_ranking, all votes so far")
    ax.plot(n, [p.baseline_rolling for p in preq.points], ":", color="#6b7280",
            label=f"baseline: the side that won most earlier votes (last {preq.window})")
    ax.axhline(0.5, color="#d1d5db", lw=0.8)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("arena votes with a winner, oldest first", fontsize=8)
    ax.set_ylabel("share predicted right", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def learning_summary(preq: Prequential, n_votes: int, refresher: Refresher) -> str:
    s = preq.summary()
    if not preq.points:
        head = f"**{n_votes}** arena votes, none scored yet (ties and votes stored before this panel are not)."
    else:
        head = (f"**{n_votes}** arena votes; **{s['scored_votes']}** scored ({s['ties']} ties and {s['unscored']} "
                f"without a recorded score left out). Before each vote, sw_ranking's score (≥ 0.5: the strong model "
                f"wins) was right on **{100 * s['accuracy']:.0f}%** of them, **{100 * s['last_window']:.0f}%** of the "
                f"last {min(preq.window, s['scored_votes'])}; the prompt-blind baseline on **"
                f"{100 * s['baseline_accuracy']:.0f}%**.")
    refit = (f"mf and classifier are refit from every stored battle in the background every {refresher.every} votes "
             f"(next in {refresher.votes_until_refit()}); {refresher.rounds} refit(s) so far.")
    error = f" ❌ Last refit failed: {esc(refresher.last_error)}" if refresher.last_error else ""
    return f"{head}\n\n{refit}{error}"


def sources_frame(counts: dict) -> pd.DataFrame:
    rows = sorted(counts.items(), key=lambda kv: (kv[0] != ARENA_SOURCE, -kv[1]))
    return pd.DataFrame(rows, columns=["source", "battles"])


def router_versions_frame(status: list[RouterVersion]) -> pd.DataFrame:
    rows = [[v.name, v.version, v.n_battles, HOW_IT_LEARNS.get(v.origin, v.origin),
             (v.trained_at or "–")[:19].replace("T", " "), "–" if v.fit_seconds is None else f"{v.fit_seconds:.2f}"]
            for v in status]
    return pd.DataFrame(rows, columns=["router", "version", "training-set size", "learns", "trained at (UTC)",
                                       "fit s"])


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
    outputs = [summary, plot, sources, versions]
    refresh.click(view, None, outputs, api_name="learning")
    tab.select(view, None, outputs, api_name="learning_tab")


# ---- the Evaluation tab -----------------------------------------------------------------------

EVAL_COMMAND = ("python -m routellm_demo eval --benchmark mmlu --data-dir DIR "
                "--routers random elo sw_ranking mf classifier")


def eval_frame(run: EvalRun) -> pd.DataFrame:
    def cell(key, value):
        if value is None:
            return "–"
        if key == "apgr_ci95":
            return f"{value[0]:.3f}–{value[1]:.3f}" if isinstance(value, list) and len(value) == 2 else "–"
        return f"{value:.3f}" if key in ("apgr", "auc") else f"{value:.1f}"

    rows = run.table()
    columns = ["router", *(k for k in COLUMN_TITLES if any(r.get(k) is not None for r in rows))]
    return pd.DataFrame([[r["router"], *(cell(k, r.get(k)) for k in columns[1:])] for r in rows],
                        columns=["router", *(COLUMN_TITLES[k] for k in columns[1:])])


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
    refresh.click(view, benchmark, outputs, api_name="evaluation")
    tab.select(view, benchmark, outputs, api_name="evaluation_tab")
    benchmark.input(view, benchmark, outputs, api_name="evaluation_benchmark")


def warm_up(runtime: Runtime) -> None:
    """Start the embedded models and load the default router in the background, so the first
    visitor does not wait for them (failures surface on the first request instead)."""

    def run():
        try:
            runtime.routers.score(runtime.config.router, runtime.embedder.embed(["warm up"]), ["warm up"])
        except Exception as e:  # noqa: BLE001
            logger.warning("warm-up: router %s not loaded: %s", runtime.config.router, e)
        for role in ("strong", "weak"):
            server = getattr(runtime.controller.endpoint(role), "server", None)
            if server is not None:
                try:
                    server.ensure_running()
                except Exception as e:  # noqa: BLE001
                    logger.error("warm-up: the %s model did not start: %s", role, e)

    threading.Thread(target=run, daemon=True, name="warm-up").start()


def main() -> None:
    import signal
    import sys

    # Model failures are logged here in detail (the page shows one sentence): to stderr, unless the
    # host configured logging itself.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("routellm_demo.seed").setLevel(logging.INFO)  # what the first start loaded and fetched
    try:
        runtime = build_runtime()
    except UserError as e:  # one line that says what to fix, no traceback
        print(f"routellm_demo: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    runtime.follow_store()  # other processes' battles and deletes, within a few seconds
    demo = build_demo(runtime)
    demo.queue(default_concurrency_limit=4)
    # SIGTERM (kill, systemd, docker stop) as a normal exit, so atexit stops the embedded model
    # servers; Python's default action would end this process alone and leave them running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    warm_up(runtime)
    start_seed_update(runtime)  # a seeded store: RouteLLM's full public set, in the background when online
    # Host and port: Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (127.0.0.1:7860 by default;
    # a Hugging Face Space sets 0.0.0.0 itself).
    demo.launch(**launch_options())


if __name__ == "__main__":
    main()
