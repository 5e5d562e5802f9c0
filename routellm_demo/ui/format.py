"""Library objects turned into what the page shows: HTML snippets and tables.

Pure functions, no Gradio: each takes what the library returns (a Decision, a VoteResult, a
leaderboard, a store count) and gives back a string or a DataFrame, so each can be tested without a
server. Everything a visitor or a model wrote goes through :func:`h` (HTML) or :func:`esc` (Markdown).
"""

from __future__ import annotations

import html
import math
import re

import pandas as pd

from routellm_demo.arena import OUTCOME_TEXT, VoteResult
from routellm_demo.controller import Answer, Decision
from routellm_demo.evals.results import COLUMN_TITLES, EvalRun
from routellm_demo.hygiene import FLAG_TEXT, FLAGS
from routellm_demo.learning import Prequential
from routellm_demo.refresh import Refresher, RouterVersion
from routellm_demo.store import ARENA_SOURCE

ROUTE_BADGE = {"strong": "STRONG", "weak": "WEAK"}  # no emoji: many servers/browsers lack the font
ROUTE_COLOR = {"strong": "#7c3aed", "weak": "#059669"}
MIN_CI_BATTLES = 5  # below this a bootstrap resamples the same few battles: its interval means nothing
HOW_IT_LEARNS = {"online": "every vote (online)", "loaded": "as loaded (checkpoint or first fit)",
                 "refit": "refit in the background", "not loaded": "not loaded yet"}


def esc(text, limit: int | None = None) -> str:
    """User or model text made safe for HTML (and inert as Markdown), optionally shortened. Quotes stay as
    they are: they are harmless in Markdown's text, and the ``#`` of their HTML entity would be escaped too."""
    return re.sub(r"([\\`*_{}\[\]()#+!|~>-])", r"\\\1", html.escape(_collapsed(text, limit), quote=False))


def h(text, limit: int | None = None) -> str:
    """Text for gr.HTML: escaped, whitespace collapsed, optionally shortened."""
    return html.escape(_collapsed(text, limit))


def _collapsed(text, limit: int | None) -> str:
    s = " ".join(str(text).split())
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


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
    if d.budget is not None:
        cost = (f" (the share that costs <b>${d.cost_budget:.4g} per 1,000 requests</b> at this traffic's "
                "request size)" if getattr(d, "cost_budget", None) is not None else "")
        parts.append(f"<div>💰 <b>Budget mode</b>: {round(100 * d.budget, 1):g}% of calls to the strong model{cost}. The threshold "
                     "is the one that would have sent that share of the router's latest scores (every visitor's "
                     "requests) to the strong model, corrected by how far the budget's own recent requests "
                     "missed it.</div>")
    if d.routed_on:  # the last user turn alone, or with the conversation before it (config routing.context)
        parts.append(f"<div>Routed on: <b>{h(d.routed_on)}</b>.</div>")
    if answer is not None:
        if answer.fallback_note:  # one sentence; the cause is in the server log
            parts.append(f"<div>⚠️ {h(answer.fallback_note)}</div>")
        if answer.dropped_messages:
            parts.append(f"<div>✂️ The {answer.dropped_messages} oldest message(s) of this conversation were left out "
                         f"to fit {h(answer.model)}'s context window.</div>")
        ttft = f"first token after {answer.ttft_ms:.0f} ms, " if answer.ttft_ms is not None else ""
        if answer.is_fallback:  # the routed model failed: the difference is not a routing saving
            saving = (f"fallback answer, not a saving ({money(answer.fallback_cost_difference)} under the strong "
                      "model's cost)")
        else:
            saving = f"saved <b>{money(answer.saved)}</b>"
        parts.append(
            f"<div style='margin-top:6px'><b>This answer:</b> {answer.prompt_tokens} prompt + {answer.completion_tokens} "
            f"completion tokens ({h(answer.usage_source)}) · {ttft}done in {answer.latency_ms / 1000:.1f} s<br>"
            f"<b>Cost {money(answer.cost)}</b> · the strong model would have cost {money(answer.strong_cost)} · "
            f"{saving}</div>")
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
        text = (f"<b>{title}:</b> {n} request{'s' if n != 1 else ''} · {100 * s['strong_share']:.0f}% to strong · "
                f"spent {money(s['spent'])} · always-strong would cost {money(s['all_strong_cost'])} · "
                f"<b>saved {money(s['saved'])} ({s['saved_pct']:.1f}% on routed answers)</b>")
        fallbacks = s.get("fallback_requests") or 0
        if fallbacks:
            text += (f" · {fallbacks} fallback answer{'s' if fallbacks != 1 else ''} (the routed model failed): "
                     f"{money(s['fallback_cost_difference'])} under the strong model's cost, not counted as a saving")
        return f"<div>{text}</div>"

    return '<div id="totals">' + line("This session", session) + line("All visitors", overall) + "</div>"


def answers_frame(rows: list[dict]) -> pd.DataFrame:
    """The routing log of this session, newest first, as a table."""
    cols = ["#", "routed to", "model", "router", "score", "threshold", "tokens in+out", "cost", "saved"]
    # a fallback answer (the routed model failed, the other answered) saves nothing: marked, 0 saved
    data = []
    for r in rows:
        if r.get("error"):
            continue
        nan = r.get("score") is None
        data.append([
            r["id"], ROUTE_BADGE.get(r["chosen_role"], r["chosen_role"]) + (" (fallback)" if r.get("fallback_from") else ""),
            r["chosen_model"], r["router"],
            "–" if nan else f"{r['score']:.3f}", "–" if r.get("threshold") is None else f"{r['threshold']:.3f}",
            f"{r.get('prompt_tokens') or 0}+{r.get('completion_tokens') or 0}", money(r.get("cost")),
            money(0.0 if r.get("fallback_from") else (r.get("strong_cost") or 0) - (r.get("cost") or 0)),
        ])
    return pd.DataFrame(data, columns=cols)


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
        + (f"<li>Stored as battle #{r.battle_row_id} (source <code>arena-vote</code>); the router took it in "
           f"{r.absorb_ms:.0f} ms.</li>" if r.counted else
           f"<li>Stored as battle #{r.battle_row_id} (source <code>arena-vote</code>), flagged: "
           f"{h('; '.join(FLAG_TEXT[f] for f in r.flags))}. Flagged votes are kept in the data but teach no "
           "router and move no rating.</li>")
        + "</ul></div>")


def vote_note(r: VoteResult) -> str:
    """The status line after a vote: thanks, and whether it counts."""
    if r.counted:
        return "Thanks for voting! Ask another question for a new round."
    return ("Thanks for voting! Your vote is stored but does not count (flagged: "
            f"{esc('; '.join(FLAG_TEXT[f] for f in r.flags))}). Ask another question for a new round.")


def excluded_note(excluded: dict) -> str:
    """How many stored arena votes the leaderboard leaves out, and why."""
    n = excluded.get("votes", 0)
    if not n:
        return "Every stored arena vote counts in these ratings (none is flagged, or flagged votes are counted here)."
    why = ", ".join(f"{excluded[f]} {FLAG_TEXT[f]}" for f in FLAGS if excluded.get(f))
    return (f"**{n} stored arena vote{'s' if n != 1 else ''} left out** of these ratings and of the routers "
            f"({why}; a vote can have several flags). They are kept and exported with their flags (Data tab).")


def flag_counts_frame(counts: dict, *, counted: bool = False) -> pd.DataFrame:
    """Arena votes by flag, for the Data tab."""
    rows = [["all arena votes", counts.get("votes", 0), "stored"],
            ["clean", counts.get("clean", 0), "counted"],
            ["trusted source (replay, load test; never flagged)", counts.get("trusted", 0), "counted"],
            ["flagged (any flag)", counts.get("flagged", 0), "counted" if counted else "left out"]]
    rows += [[f"{f}: {FLAG_TEXT[f]}", counts.get(f, 0), "counted" if counted else "left out"] for f in FLAGS]
    return pd.DataFrame(rows, columns=["votes", "count", "in ratings and routers"])


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
             vote_name.get(r["winner"], r["winner"]), winner(r), (r.get("flags") or "").replace(",", ", ")]
            for r in rows]
    return pd.DataFrame(data, columns=["when (UTC)", "prompt", "model A", "model B", "vote", "winner", "flags"])


def learning_summary(preqs: list[Prequential], n_votes: int, refresher: Refresher) -> str:
    """One line per router (the app's first), then the background refits' progress."""
    lines = []
    for preq in preqs:
        s = preq.summary()
        if not n_votes:
            lines.append(f"**{preq.router}**: no arena votes yet; vote in the Arena and each vote is scored here.")
            continue
        if not preq.points:
            lines.append(f"**{preq.router}**: none of the {n_votes} arena votes scored yet (ties, and votes stored "
                         "before this router's score was recorded, are not).")
            continue
        lines.append(
            f"**{preq.router}**: **{s['scored_votes']}** of {n_votes} arena votes scored ({s['ties']} ties and "
            f"{s['unscored']} without its earlier score left out). Before each vote, its score (≥ 0.5: the strong "
            f"model wins) was right on **{100 * s['accuracy']:.0f}%** of them, **{100 * s['last_window']:.0f}%** of "
            f"the last {min(preq.window, s['scored_votes'])}; the prompt-blind baseline on "
            f"**{100 * s['baseline_accuracy']:.0f}%**.")
    refit = (f"mf and classifier are refit from every stored battle in the background every {refresher.every} votes "
             f"(next in {refresher.votes_until_refit()}); {refresher.rounds} refit(s) so far. sw_ranking learns each "
             "vote at once.")
    error = f" ❌ Last refit failed: {esc(refresher.last_error)}" if refresher.last_error else ""
    return "\n\n".join(lines) + f"\n\n{refit}{error}"


def sources_frame(counts: dict) -> pd.DataFrame:
    rows = sorted(counts.items(), key=lambda kv: (kv[0] != ARENA_SOURCE, -kv[1]))
    return pd.DataFrame(rows, columns=["source", "battles"])


def router_versions_frame(status: list[RouterVersion]) -> pd.DataFrame:
    rows = [[v.name, v.version, v.n_battles, HOW_IT_LEARNS.get(v.origin, v.origin),
             (v.trained_at or "–")[:19].replace("T", " "), "–" if v.fit_seconds is None else f"{v.fit_seconds:.2f}"]
            for v in status]
    return pd.DataFrame(rows, columns=["router", "version", "training-set size", "learns", "trained at (UTC)",
                                       "fit s"])


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
