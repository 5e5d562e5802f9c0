"""The real app in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's sync API)
over the REAL embedded local pair: a chat turn typed and sent with Enter, its answer and routing
details; an arena round, a vote, and the SQLite row it wrote. Screenshots of every tab go to
tests/artifacts/ (gitignored), and the time from pressing Enter to the first streamed token on the
page is measured in the page itself (printed and written to tests/artifacts/timings_browser.json).

Waits are for ``domcontentloaded`` and for elements, never ``networkidle`` (a Gradio page never idles).
"""

import json
import os
import sqlite3
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); browser tests skipped",
                allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from routellm_demo.config import load_config  # noqa: E402
from routellm_demo.runtime import build_runtime  # noqa: E402
from routellm_demo.ui import build_demo  # noqa: E402
from conftest import OPEN_ARENA, launch_local  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.llm, pytest.mark.slow]
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 90_000

# The latest answer's text (the routing note above each answer is a collapsed "thought" group).
LAST_ANSWER_JS = """() => {
  const bots = [...document.querySelectorAll('#chatbot [data-testid="bot"]')]
      .filter(el => !el.querySelector('.thought-group'));
  return bots.length ? bots[bots.length - 1].innerText.trim() : '';
}"""
# Record, in the page, when Enter is pressed and when the first token of the new answer appears.
INSTRUMENT_JS = """(answersBefore) => {
  window.__t = {enter: null, first: null};
  const box = document.querySelector('#prompt textarea');
  box.addEventListener('keydown', e => { if (e.key === 'Enter' && window.__t.enter === null) window.__t.enter = performance.now(); },
                       {capture: true, once: true});
  const count = () => [...document.querySelectorAll('#chatbot [data-testid="bot"]')]
      .filter(el => !el.querySelector('.thought-group') && el.innerText.trim()).length;
  const obs = new MutationObserver(() => {
    if (window.__t.first === null && window.__t.enter !== null && count() > answersBefore) {
      window.__t.first = performance.now(); obs.disconnect();
    }
  });
  obs.observe(document.querySelector('#chatbot'), {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    cfg = load_config(environ={})
    tmp = tmp_path_factory.mktemp("browser")
    cfg = replace(cfg, db_path=tmp / "app.db", checkpoint_dir=tmp / "ckpt", router="sw_ranking", threshold=0.5,
                  seed=False, strong=replace(cfg.strong, max_tokens=16), weak=replace(cfg.weak, max_tokens=16),
                  **OPEN_ARENA)
    rt = build_runtime(cfg)
    rt.store.add_battles([
        dict(prompt=p, model_a="gpt-4-1106-preview", model_b="mistralai/Mixtral-8x7B-Instruct-v0.1", winner=w,
             strong_side="a", source="import:test")
        for p, w in [("Prove that there are infinitely many primes.", "model_a"), ("What colour is the sky?", "tie"),
                     ("Write a haiku about autumn.", "model_b"), ("Integrate x^2 from 0 to 1.", "model_a")]])
    # Warm everything a visitor's first request would otherwise wait for (the app's main() does the
    # same in the background): embedding model, router, both model servers.
    for threshold in (0.0, 1.0):
        rt.controller.complete("Hello", router="sw_ranking", threshold=threshold, session_id="warm-up", max_tokens=2)
    demo = build_demo(rt)
    url = launch_local(demo)
    try:
        yield url, rt
    finally:
        demo.close()
        rt.close()


@pytest.fixture(scope="module")
def page(served):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(served[0], wait_until="domcontentloaded")
        pg.wait_for_selector("#prompt textarea")
        yield pg
        browser.close()


def test_chat_turn_in_the_browser(page, served):
    url, rt = served
    ARTIFACTS.mkdir(exist_ok=True)
    runs = []
    for i, text in enumerate(["What is the capital of France?", "Name a large city in Japan.", "How do I boil an egg?"]):
        page.evaluate(INSTRUMENT_JS, i)
        page.fill("#prompt textarea", text)
        page.press("#prompt textarea", "Enter")
        page.wait_for_function("() => window.__t.first !== null")
        card = page.locator("#routing-details")
        expect(card).to_contain_text("This answer", timeout=TIMEOUT_MS)  # streamed to the end
        t = page.evaluate("() => window.__t")
        log = rt.store.decisions(limit=1)[0]
        runs.append({"prompt": text, "enter_to_first_token_ms": t["first"] - t["enter"],
                     "routing_ms": log["routing_ms"], "model_ttft_ms": log["ttft_ms"], "role": log["chosen_role"]})

    answer = page.evaluate(LAST_ANSWER_JS)
    assert answer
    card_text = page.inner_text("#routing-details")
    assert "Routed to the" in card_text and ("STRONG" in card_text or "WEAK" in card_text)
    assert "threshold" in card_text and "Cost" in card_text
    expect(page.locator("#chatbot")).to_contain_text("model ·")  # the per-answer routing note
    expect(page.locator("#why")).to_contain_text("Why this score?")
    expect(page.locator("#savings")).to_contain_text("This session: 3 requests")
    assert page.input_value("#prompt textarea") == ""
    page.screenshot(path=str(ARTIFACTS / "chat_tab.png"), full_page=True)

    ttft = statistics.median(r["enter_to_first_token_ms"] for r in runs)
    routing = statistics.median(r["routing_ms"] for r in runs)
    summary = {"client": "chromium", "median_enter_to_first_token_ms": ttft, "median_routing_ms": routing,
               "routing_share": routing / ttft, "runs": runs}
    (ARTIFACTS / "timings_browser.json").write_text(json.dumps(summary, indent=2))
    print(f"\nbrowser: median Enter->first token {ttft:.0f} ms, routing {routing:.1f} ms ({100 * routing / ttft:.1f}%)")


def test_a_budget_given_as_a_cost_in_the_browser(page, served):
    page.check("#budget-on input[type=checkbox]")
    expect(page.locator("#budget-pct")).to_be_visible()
    expect(page.locator("#threshold input[type=number]")).to_be_disabled()  # the budget sets the threshold now
    page.get_by_label("$ per 1,000 requests").check()
    expect(page.locator("#budget-cost")).to_be_visible()
    expect(page.locator("#budget-pct")).to_be_hidden()
    cost = page.locator("#budget-cost input")
    cost.fill("1000")
    cost.press("Enter")
    expect(page.locator("#budget-note")).to_contain_text("100.0% of calls to the strong model", timeout=TIMEOUT_MS)
    cost.fill("0.000001")
    cost.press("Enter")
    expect(page.locator("#budget-note")).to_contain_text("below the weak model", timeout=TIMEOUT_MS)
    page.uncheck("#budget-on input[type=checkbox]")
    expect(page.locator("#budget-cost")).to_be_hidden()


def test_prompt_over_the_cap_stays_in_the_box(page, served):
    url, rt = served
    long = "y" * (rt.config.max_prompt_chars + 1)
    page.fill("#prompt textarea", long)
    page.press("#prompt textarea", "Enter")
    expect(page.locator("#routing-details")).to_contain_text("the limit is", timeout=TIMEOUT_MS)
    assert page.input_value("#prompt textarea") == long
    page.fill("#prompt textarea", "")


def test_arena_round_and_vote_in_the_browser(page, served):
    url, rt = served
    page.get_by_role("tab", name="Arena").click()
    page.wait_for_selector("#arena-prompt textarea")
    expect(page.locator("#vote-A")).to_be_hidden()
    page.fill("#arena-prompt textarea", "Why is the sky blue?")
    page.press("#arena-prompt textarea", "Enter")
    expect(page.locator("#vote-A")).to_be_visible(timeout=TIMEOUT_MS)  # only once both answers are done
    for pane in ("#model-a", "#model-b"):
        assert page.locator(f"{pane} [data-testid='bot']").inner_text().strip()
    assert rt.config.strong.name not in page.inner_text("#model-a") + page.inner_text("#model-b")
    # the status arrives in the same update as the buttons, but a busy browser may render it a moment later
    expect(page.locator("#arena-status")).to_contain_text("Both answers are in", timeout=TIMEOUT_MS)
    page.screenshot(path=str(ARTIFACTS / "arena_tab_before_vote.png"), full_page=True)

    page.click("#vote-A")
    expect(page.locator("#vote-result")).to_contain_text("What changed", timeout=TIMEOUT_MS)
    expect(page.locator("#vote-A")).to_be_hidden()
    result = page.inner_text("#vote-result")
    assert "→" in result and rt.config.strong.name in result and rt.config.weak.name in result
    page.screenshot(path=str(ARTIFACTS / "arena_tab.png"), full_page=True)

    with sqlite3.connect(f"file:{rt.config.db_path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT uid, model_a, model_b, winner, strong_side, source, session_id FROM battles "
                          "WHERE source = 'arena-vote'").fetchall()
        pending = db.execute("SELECT battle_id, status, model_a, session_id FROM arena_pending").fetchall()
    assert len(rows) == 1 and len(pending) == 1
    uid, model_a, model_b, winner, strong_side, source, session_id = rows[0]
    assert winner == "model_a" and uid == "arena:" + pending[0][0] and pending[0][1] == "voted"
    assert model_a == pending[0][2] and session_id == pending[0][3] and {model_a, model_b} == {
        rt.config.strong.name, rt.config.weak.name}


def test_leaderboard_and_data_tabs_render(page, served):
    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#lb-arena")).to_contain_text("SmolLM2", timeout=TIMEOUT_MS)
    page.wait_for_selector("#lb-plot img, #lb-plot canvas, #lb-plot svg")
    expect(page.locator("#lb-excluded")).to_contain_text("Every stored arena vote counts")  # this app counts flagged ones
    page.screenshot(path=str(ARTIFACTS / "leaderboard_tab.png"), full_page=True)
    page.get_by_role("tab", name="Data").click()
    expect(page.locator("#recent")).to_contain_text("A is better", timeout=TIMEOUT_MS)
    expect(page.locator("#counts")).to_contain_text("arena-vote")
    expect(page.locator("#flag-counts")).to_contain_text("flagged (any flag)")  # counts by flag (issue 19)
    page.get_by_label("Parquet").check()
    page.get_by_role("button", name="Export", exact=True).click()
    expect(page.locator("#export-file")).to_contain_text(".parquet", timeout=TIMEOUT_MS)
    expect(page.locator("#export-datasheet")).to_contain_text("datasheet-", timeout=TIMEOUT_MS)  # offered beside it
    page.screenshot(path=str(ARTIFACTS / "data_tab.png"), full_page=True)
    page.get_by_role("tab", name="Learning").click()  # the arena test's vote, scored before it was learnt
    expect(page.locator("#learning-summary")).to_contain_text("sw_ranking: 1 of 1 arena votes scored",
                                                              timeout=TIMEOUT_MS)


def test_evaluation_tab_shows_the_shipped_results(page, served):
    """The runs committed in data/eval (made by `python -m routellm_demo eval`) are what a new visitor sees."""
    page.get_by_role("tab", name="Evaluation").click()
    expect(page.locator("#eval-table")).to_contain_text("oracle", timeout=TIMEOUT_MS)
    expect(page.locator("#eval-summary")).to_contain_text("prompts")
    page.wait_for_selector("#eval-plot img")
    assert page.locator("#eval-plot img").evaluate("img => img.naturalWidth") > 300
    page.screenshot(path=str(ARTIFACTS / "evaluation_tab.png"), full_page=True)


def test_whatif_tab_projects_a_real_prompt_file_and_refuses_a_bad_one(page, served, tmp_path, shared_routellm):
    """A stakeholder's file (real MMLU and GSM8K prompts from ../shared) gives the plot and the table; a
    file with an empty prompt gives one line naming the row; the store gains nothing either way."""
    from routellm_demo.evals.benchmarks import load_benchmark

    data = shared_routellm
    prompts = list(load_benchmark(data, "mmlu").prompts[:60]) + list(load_benchmark(data, "gsm8k").prompts[:40])
    good = tmp_path / "my_prompts.jsonl"
    good.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text('id,prompt\n1,"What is 2+2?"\n2,""\n', encoding="utf-8")
    rt = served[1]
    before = (rt.store.count_battles(), len(rt.store.decisions()))

    page.get_by_role("tab", name="What-if").click()
    expect(page.locator("#whatif-summary")).to_contain_text("Choose a prompt file")  # no empty table or plot yet
    expect(page.locator("#whatif-table")).to_be_hidden()
    expect(page.locator("#whatif-plot")).to_be_hidden()
    page.locator("#whatif-file input[type=file]").set_input_files(str(good))
    page.locator("#whatif-run").click()
    expect(page.locator("#whatif-summary")).to_contain_text("100 prompts", timeout=3 * TIMEOUT_MS)
    expect(page.locator("#whatif-summary")).to_contain_text("mmlu's held-out evaluation")  # no stray entity
    expect(page.locator("#whatif-summary")).to_contain_text("not measured on your prompts")
    expect(page.locator("#whatif-table")).to_contain_text("cost per 1,000 requests")
    page.wait_for_selector("#whatif-plot img")  # matplotlib arrives as an image
    expect(page.locator("#whatif-download")).to_contain_text("whatif_scores")  # (Gradio splits the suffix)
    page.screenshot(path=str(ARTIFACTS / "whatif_tab.png"), full_page=True)

    page.locator("#whatif-file button[aria-label='Clear']").first.click()
    page.locator("#whatif-file input[type=file]").set_input_files(str(bad))
    page.locator("#whatif-run").click()
    expect(page.locator("#whatif-summary")).to_contain_text("row 3", timeout=TIMEOUT_MS)
    expect(page.locator("#whatif-summary")).to_contain_text("empty")
    expect(page.locator("#whatif-table")).to_be_hidden()  # the first file's projection does not linger
    assert (rt.store.count_battles(), len(rt.store.decisions())) == before  # nothing stored


@pytest.fixture(scope="module")
def first_visit(served, page, tmp_path_factory):
    """A FRESH start with seeding on, as a Hugging Face Space's first visitor finds it: an empty store
    given to the same ``build_runtime`` (default checkpoints, default router), the app over the model
    servers ``served`` already runs (no second pair is started), a new tab in the same browser."""
    from routellm_demo.controller import Controller

    warm = served[1]
    tmp = tmp_path_factory.mktemp("first_visit")
    cfg = replace(warm.config, db_path=tmp / "fresh.db", checkpoint_dir=load_config(environ={}).checkpoint_dir,
                  router="classifier", seed=True)
    rt = build_runtime(cfg)
    rt.controller = Controller(cfg, rt.store, rt.embedder, rt.routers,
                               {role: warm.controller.endpoint(role) for role in ("strong", "weak")})
    demo = build_demo(rt)
    url = launch_local(demo)
    pg = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(TIMEOUT_MS)
    try:
        pg.goto(url, wait_until="domcontentloaded")
        pg.wait_for_selector("#prompt textarea")
        yield pg, rt
    finally:
        pg.close()
        demo.close()
        rt.store.close()  # not rt.close(): the model servers belong to `served`


def test_first_visit_with_the_seed_has_a_leaderboard_and_reasons(first_visit):
    from routellm_demo.seed import read_manifest

    pg, rt = first_visit
    assert rt.store.count_battles() == read_manifest()["by_source"]  # seeded before the page was served
    pg.get_by_role("tab", name="Leaderboard").click()
    expect(pg.locator("#lb-all")).to_contain_text("gpt-4-1106-preview", timeout=TIMEOUT_MS)
    expect(pg.locator("#lb-all")).to_contain_text("Mixtral-8x7B-Instruct")
    pg.get_by_role("tab", name="Learning").click()
    expect(pg.locator("#learning-sources")).to_contain_text("import:mmlu", timeout=TIMEOUT_MS)

    pg.get_by_role("tab", name="Chat").click()
    pg.click("#router input")
    pg.get_by_role("option", name="sw_ranking").click()
    expect(pg.locator("#router")).to_contain_text("similarity")  # the router's help line follows the pick
    pg.fill("#prompt textarea", "What is 17 times 3?")
    pg.press("#prompt textarea", "Enter")
    why = pg.locator("#why")
    expect(why).to_contain_text("Why this score?", timeout=TIMEOUT_MS)
    expect(why.locator(".why-table tr")).to_have_count(6)  # a header and the 5 past battles that weighed most
    expect(why).to_contain_text("import:")
    expect(pg.locator("#routing-details")).to_contain_text("sw_ranking")
    expect(pg.locator("#routing-details")).to_contain_text("This answer", timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "first_visit_chat.png"), full_page=True)
