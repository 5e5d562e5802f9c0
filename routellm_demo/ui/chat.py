"""The Chat tab: chat through the router and see, for every answer, where it went and why.

Routing, calling, accounting and logging happen in :mod:`routellm_demo.controller`; this lays the tab
out, streams the answer into the Chatbot and shows the routing card, sw_ranking's reasons, the
session's savings and the calibration of the threshold.
"""

from __future__ import annotations

import math

import gradio as gr

from routellm_demo.calibration import strong_share, threshold_for_strong_share
from routellm_demo.controller import AnswerError, text_of
from routellm_demo.errors import UserError
from routellm_demo.limits import Limits
from routellm_demo.routers import ROUTER_NAMES, router_help
from routellm_demo.runtime import Runtime
from routellm_demo.ui.format import ROUTE_BADGE, answers_frame, decision_card, esc, h, totals_html, why_panel
from routellm_demo.ui.plots import budget_plot

BUDGET_BY_SHARE, BUDGET_BY_COST = "% of calls to strong", "$ per 1,000 requests"
BUDGET_HELP = ("In budget mode the threshold follows the traffic: for each request it is the one that would "
               "have sent the target share of the router's latest scores (every visitor's, "
               "`budget.window` of them) to the strong model, corrected by how far the budget's own recent "
               "requests missed the target. *Calibrate* above is its one-off counterpart: a fixed threshold "
               "set once. A budget given as a cost per 1,000 requests is the share that costs it, priced at the "
               "mean size of the latest requests. The API asks for them with the model names "
               "`router-<name>-budget<percent>` and `router-<name>-cost<USD per 1,000 requests>`.")
CALIBRATION_MIN_TRAFFIC = 30  # fewer logged requests than this: calibrate on stored battle prompts
CALIBRATION_SAMPLE = 300  # battle prompts scored when calibrating on them
CHAT_EXAMPLES = ["What is the capital of Japan?", "Prove that the square root of 2 is irrational.",
                 "Write a Python function that reverses a string.", "Give me one tip for sleeping better."]


def is_route_note(m: dict) -> bool:
    return bool((m.get("metadata") or {}).get("title"))


def conversation(history: list[dict]) -> list[dict]:
    """The messages to send: the Chatbot's history minus the routing notes shown between turns."""
    return [{"role": m["role"], "content": text_of(m["content"])} for m in history
            if not is_route_note(m) and m["role"] in ("user", "assistant")]


def last_answer(history: list[dict]) -> str:
    """The text of the latest answer in a Chatbot value (routing notes skipped); "" if none yet."""
    return next((m["content"] for m in reversed(conversation(history or [])) if m["role"] == "assistant"), "")


def chat_tab(demo: gr.Blocks, runtime: Runtime, limits: Limits, session: gr.State, visitors=None) -> None:
    """The "Chat" tab (call inside the Blocks) and its events; the savings line fills in on page load.
    ``visitors`` (a :class:`~routellm_demo.visitors.VisitorKeys`) adds the per-visitor limits."""
    cfg = runtime.config
    ctl = runtime.controller
    store = runtime.store

    def totals(session_id):
        try:
            return totals_html(ctl.savings(session_id), ctl.savings())
        except UserError as e:
            return f'<div id="totals">❌ {h(e.public)}</div>'

    def chat(message, history, router, threshold, session_id, budget, request: gr.Request = None):
        history = list(history or [])
        keep = gr.update()
        earlier = conversation(history)
        try:
            visitor = visitors.from_request(request, session_id) if visitors is not None else None
            limits.check_chat(session_id, message, sum(1 for m in earlier if m["role"] == "user"),
                              sum(len(m["content"]) for m in earlier), visitor=visitor)
        except UserError as e:
            yield history, message, decision_card(None, error=e.public), keep, keep, keep
            return
        messages = earlier + [{"role": "user", "content": message}]
        history.append({"role": "user", "content": message})
        yield history, "", '<div class="route-card">Routing…</div>', keep, keep, keep
        decision = None
        try:
            share, cost = (None, budget["cost_per_1k"]) if isinstance(budget, dict) else (budget, None)
            response = ctl.respond(messages, router=router, threshold=threshold, session_id=session_id, budget=share,
                                   cost_per_1k=cost, source="app", explain=5 if router == "sw_ranking" else 0)
            decision = d = response.decision
            history.append({"role": "assistant", "content": (
                f"score {d.score:.3f} {'≥' if d.role == 'strong' else '<'} threshold {d.threshold:.3f} "
                f"({d.router}), routed in {d.routing_ms:.0f} ms"),
                "metadata": {"title": f"{ROUTE_BADGE[d.role]} model · {d.model} · score {d.score:.3f} "
                                      f"{'≥' if d.role == 'strong' else '<'} {d.threshold:.3f}",
                             "status": "done"}})
            history.append({"role": "assistant", "content": ""})
            yield history, "", decision_card(d), why_panel(store, d), keep, keep
            for piece in response:
                history[-1]["content"] += piece
                yield history, "", keep, keep, keep, keep
            answer = response.answer()  # the last yield carries everything (an API caller sees only it)
            yield (history, "", decision_card(d, answer), why_panel(store, d), totals(session_id),
                   answers_frame(store.decisions(session_id=session_id, limit=20)))
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

    def set_budget(on, pct):
        """The share of strong calls to hold (0..1), or None for the threshold."""
        return float(pct) / 100.0 if on else None

    def set_budget_by(on, by, pct, cost, current):
        """The budget as the visitor last set it: a share, or {"cost_per_1k": USD} with a note on what
        share that cost buys at this traffic's request size; a bad cost keeps the budget as it was."""
        if not on or by != BUDGET_BY_COST:
            return set_budget(on, pct), ""
        if cost is None:
            return current, "Give a cost per 1,000 requests."
        try:
            plan = ctl.cost_budget(cost)
        except UserError as e:
            return current, f"❌ {esc(e.public)}"
        return {"cost_per_1k": plan.cost_per_1k}, esc(plan.describe())

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
                with gr.Row():
                    budget_on = gr.Checkbox(False, label="Budget mode", scale=1, elem_id="budget-on",
                                            info="hold a share of strong calls on live traffic instead")
                    budget_pct = gr.Slider(0, 100, value=30, step=1, label="Budget: % of calls to strong", scale=2,
                                           visible=False, elem_id="budget-pct")
                with gr.Row():
                    budget_by = gr.Radio([BUDGET_BY_SHARE, BUDGET_BY_COST], value=BUDGET_BY_SHARE, label="Budget as",
                                         visible=False, elem_id="budget-by", scale=2)
                    budget_cost = gr.Number(None, label="Budget: $ per 1,000 requests", minimum=0, visible=False,
                                            elem_id="budget-cost", scale=1)
                budget_note = gr.Markdown("", elem_id="budget-note")
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
        with gr.Accordion("Budget mode: target vs realised share of strong calls", open=False):
            gr.Markdown(BUDGET_HELP)
            budget_chart = gr.Plot(show_label=False, elem_id="budget-chart")
            budget_refresh = gr.Button("Refresh", size="sm")

    # -- events (every one named, so gradio_client can call it)
    chat_out = [chatbot, prompt, card, why, totals_box, answers]
    # the budget is this visitor's setting, kept server-side: the chat API keeps its four values
    budget = gr.State(None)
    chat_in = [prompt, chatbot, router, threshold, session, budget]
    prompt.submit(chat, chat_in, chat_out, api_name="chat", show_progress="hidden", concurrency_id="generate")
    send.click(chat, chat_in, chat_out, api_name="chat_send", show_progress="hidden", concurrency_id="generate")
    clear.click(new_chat, None, [chatbot, prompt, card, why], api_name="new_chat")
    router.change(lambda r: gr.update(info=router_help(r)), router, router, api_name="router_info",
                  show_progress="hidden")
    calib.click(calibrate, [router, target], [threshold, calib_note], api_name="calibrate")
    def show_budget(on):  # the switch starts every budget as a share; "Budget as" can then make it a cost
        return (gr.update(interactive=not on), gr.update(visible=on), gr.update(visible=on, value=BUDGET_BY_SHARE),
                gr.update(visible=False))

    budget_on.change(show_budget, budget_on, [threshold, budget_pct, budget_by, budget_cost], api_name="budget_toggle",
                     show_progress="hidden")
    budget_by.change(lambda on, by: (gr.update(visible=on and by != BUDGET_BY_COST),
                                     gr.update(visible=on and by == BUDGET_BY_COST)),
                     [budget_on, budget_by], [budget_pct, budget_cost], api_name="budget_as", show_progress="hidden")
    for control in (budget_on, budget_pct):  # one API call sets both: /budget_mode(on, percent)
        control.change(set_budget, [budget_on, budget_pct], budget, api_name="budget_mode" if control is budget_on
                       else "budget_share", show_progress="hidden")
    # a cost budget: /budget_cost(on, "$ per 1,000 requests", percent, cost, current) sets it and says what share it buys
    for control in (budget_by, budget_cost):
        control.change(set_budget_by, [budget_on, budget_by, budget_pct, budget_cost, budget], [budget, budget_note],
                       api_name="budget_cost" if control is budget_cost else "budget_by", show_progress="hidden")
    budget_refresh.click(lambda: budget_plot(store.budget_log()), None, budget_chart, api_name="budget_view")
    demo.load(totals, session, totals_box, api_name="totals")
