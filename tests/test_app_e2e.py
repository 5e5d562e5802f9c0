"""The real app, started in-process on 127.0.0.1 over the REAL embedded local model pair, driven by
``gradio_client``: a chat turn with its routing details, an arena round and a vote that adds exactly
one battle and moves the sw_ranking score the voted way, the refusals, the leaderboard and the data.

Also measures (prints, never asserts on time) the wait from submitting a chat message to the first
streamed token, and the routing's share of it; written to tests/artifacts/timings_e2e.json.
"""

import json
import os
import statistics
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradio_client import Client  # noqa: E402

from routellm_demo.config import load_config  # noqa: E402
from routellm_demo.runtime import build_runtime  # noqa: E402
from routellm_demo.ui import build_demo  # noqa: E402
from conftest import OPEN_ARENA, assistant_text, launch_local  # noqa: E402

pytestmark = [pytest.mark.llm, pytest.mark.slow]
ARTIFACTS = Path(__file__).parent / "artifacts"
SEED_BATTLES = [
    ("Prove that there are infinitely many primes.", "model_a"),
    ("What colour is the sky?", "tie"),
    ("Write a haiku about autumn.", "model_b"),
    ("Integrate x^2 from 0 to 1.", "model_a"),
]


POOL = ["Explain photosynthesis in one sentence.", "What is 12 squared?", "Name a poem by Keats.",
        "Why do cats purr?"]


def small_config(tmp, **over):
    """The default (local pair) config with a tmp database (not seeded) and short answers, so tests stay fast."""
    cfg = load_config(environ={})
    return replace(cfg, db_path=tmp / "app.db", checkpoint_dir=tmp / "ckpt", router="sw_ranking", threshold=0.5,
                   seed=False, strong=replace(cfg.strong, max_tokens=16), weak=replace(cfg.weak, max_tokens=16),
                   **{**OPEN_ARENA, **over})


def seed(store):
    store.add_battles([dict(prompt=p, model_a="gpt-4-1106-preview", model_b="mistralai/Mixtral-8x7B-Instruct-v0.1",
                            winner=w, strong_side="a", source="import:test") for p, w in SEED_BATTLES])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    (tmp / "pool.txt").write_text("\n".join(POOL) + "\n")  # prompts a team wants labelled
    rt = build_runtime(small_config(tmp, max_prompt_chars=300, eval_dir=tmp / "eval", prompt_pool=tmp / "pool.txt"))
    seed(rt.store)
    demo = build_demo(rt)
    url = launch_local(demo)
    try:
        yield url, rt
    finally:
        demo.close()
        rt.close()


@pytest.fixture(scope="module")
def client(served):
    return Client(served[0], verbose=False)


def timed_chat(client, text, router="sw_ranking", threshold=0.5):
    """Submit one chat turn; returns (final outputs, seconds to the first streamed token)."""
    start = time.perf_counter()
    job = client.submit(text, [], router, threshold, api_name="/chat")
    first = None
    for out in job:
        if first is None and assistant_text(out[0]).strip():
            first = time.perf_counter() - start
    return job.result(), first


def test_chat_turn_returns_answer_and_routing_details(client, served):
    url, rt = served
    client.predict(api_name="/new_chat")
    (history, box, card, why, totals, answers), first = timed_chat(client, "What is the capital of France?")
    assert assistant_text(history).strip()
    notes = [m for m in history if (m.get("metadata") or {}).get("title")]
    assert len(notes) == 1 and ("STRONG" in notes[0]["metadata"]["title"] or "WEAK" in notes[0]["metadata"]["title"])
    assert box == ""  # the prompt box is cleared after a send
    assert "sw_ranking" in card and "threshold" in card and "Cost" in card and "completion tokens" in card
    assert rt.config.strong.name in card or rt.config.weak.name in card
    assert "Why this score?" in why
    assert any(p.split()[0] in why for p, _ in SEED_BATTLES)  # past prompts shown as text
    assert "This session" in totals and "1 request " in totals
    assert answers["data"] and len(answers["data"]) == 1
    log = rt.store.decisions(limit=1)[0]
    assert log["router"] == "sw_ranking" and log["source"] == "app" and log["error"] is None
    assert first is not None


def test_chat_limits_keep_the_prompt_and_say_why(client, served):
    long = "x" * 301
    history, box, card, *_ = client.predict(long, [], "sw_ranking", 0.5, api_name="/chat")
    assert box == long and "limit is 300" in card and history == []


def test_threshold_extremes_pick_the_model(client, served):
    url, rt = served
    for threshold, name, badge in ((0.0, rt.config.strong.name, "STRONG"), (1.0, rt.config.weak.name, "WEAK")):
        history, _, card, *_ = client.predict("Name a fruit.", [], "elo", threshold, api_name="/chat")
        assert badge in card and name in card


def test_budget_mode_routes_on_a_share_and_charts_it(client, served):
    url, rt = served
    client.predict(True, 100, api_name="/budget_mode")  # this visitor's switch and share (kept server-side)
    for _ in range(2):
        history, _, card, *_ = client.predict("Name a fruit.", [], "elo", 0.5, api_name="/chat")
        assert "Budget mode" in card and "100% of calls to the strong model" in card
        assert "STRONG" in card  # a 100% budget sends everything strong, whatever the threshold slider says
    rows = rt.store.budget_log()
    assert len(rows) >= 2 and all(r["budget"] == 1.0 and r["strong"] for r in rows[-2:])
    chart = client.predict(api_name="/budget_view")
    assert chart  # a plot of target vs realised share
    client.predict(False, 100, api_name="/budget_mode")
    *_, card, _, _, _ = client.predict("Name a fruit.", [], "elo", 1.0, api_name="/chat")
    assert "Budget mode" not in card and "WEAK" in card  # switched off: the threshold rules again


def test_a_budget_given_as_a_cost_routes_on_the_share_it_buys(client, served):
    url, rt = served
    prices = rt.controller.cost_budget(1e9)  # what 1,000 requests cost all strong and all weak, at this traffic
    client.predict(True, 30, api_name="/budget_mode")
    note = client.predict(True, "$ per 1,000 requests", 30, 2 * prices.strong_per_1k, api_name="/budget_cost")
    assert "per 1,000 requests = 100.0% of calls to the strong model" in note.replace("\\", "")
    *_, card, _, _, _ = client.predict("Name a fruit.", [], "elo", 0.0, api_name="/chat")
    assert "STRONG" in card and "per 1,000 requests" in card and "100% of calls to the strong model" in card
    # a cost below what the weak model alone costs: one line, and the budget stays as it was
    note = client.predict(True, "$ per 1,000 requests", 30, prices.weak_per_1k / 10, api_name="/budget_cost")
    assert note.startswith("❌") and "below the weak model" in note
    *_, card, _, _, _ = client.predict("Name a fruit.", [], "elo", 0.0, api_name="/chat")
    assert "STRONG" in card and "per 1,000 requests" in card
    client.predict(False, 30, api_name="/budget_mode")


def test_whatif_projects_an_uploaded_file_and_stores_nothing(client, served, tmp_path):
    from gradio_client import handle_file

    url, rt = served
    f = tmp_path / "traffic.txt"
    tag = uuid.uuid4().hex[:8]  # prompts no other test has asked (a chat turn caches its prompt's embedding)
    f.write_text(f"What is 2+2? ({tag})\nProve Fermat's little theorem. ({tag})\nName a fruit. ({tag})\n",
                 encoding="utf-8")
    logged = len(rt.store.decisions())
    summary, plot, table, csv = client.predict(handle_file(str(f)), "sw_ranking", "gsm8k", 10, 0.6, 200,
                                               api_name="/whatif")
    assert "3 prompts" in summary  # (this app's eval folder is empty: no quality estimate, and a note says so)
    assert plot and table["data"] and "cost per 1,000 requests (USD)" in table["headers"]
    assert Path(csv).read_text(encoding="utf-8").count("\n") == 4  # a header and a row per prompt
    from routellm_demo.store import prompt_sha256

    shas = [prompt_sha256(p) for p in f.read_text(encoding="utf-8").splitlines()]
    cached = rt.store.db.execute(f"SELECT count(*) FROM embeddings WHERE sha256 IN ({','.join('?' * 3)})",
                                 shas).fetchone()[0]
    assert cached == 0  # embedded without the cache: the prompts' hashes are not in the store either
    assert len(rt.store.decisions()) == logged


def test_calibrate_sets_the_threshold(client, served):
    threshold, note = client.predict("sw_ranking", 30, api_name="/calibrate")
    assert 0.0 <= threshold <= 1.0 and "stored battle prompts" in note


def test_arena_round_and_vote_add_one_battle_and_move_sw(client, served):
    url, rt = served
    prompt = "Explain photosynthesis in one sentence."
    vector = rt.embedder.embed([prompt])
    sw_before = float(rt.routers.score("sw_ranking", vector, [prompt])[0])
    n_before = sum(rt.store.count_battles().values())

    out = client.predict(prompt, api_name="/arena_ask")
    pane_a, pane_b, status, box = out[0], out[1], out[2], out[3]
    assert assistant_text(pane_a).strip() and assistant_text(pane_b).strip()
    assert "Both answers are in" in status and box == ""
    # the browser never saw which model is where: find the battle server-side
    row = rt.store.db.execute("SELECT battle_id, strong_side, status FROM arena_pending ORDER BY created_at DESC "
                              "LIMIT 1").fetchone()
    battle_id, strong_side, status_db = row
    assert status_db == "answered"
    assert rt.config.strong.name not in json.dumps(out[:3]) and rt.config.weak.name not in json.dumps(out[:3])

    result = client.predict(api_name=f"/arena_vote_{strong_side}")  # vote for the strong model
    reveal = result[-1]
    assert "You voted" in reveal and rt.config.strong.name in reveal and "→" in reveal
    assert sum(rt.store.count_battles().values()) == n_before + 1
    votes = rt.store.battles(source="arena-vote")
    assert len(votes) == 1 and votes[0]["uid"] == "arena:" + battle_id and votes[0]["strong_side"] == strong_side
    sw_after = float(rt.routers.score("sw_ranking", vector, [prompt])[0])
    assert sw_after > sw_before

    again = client.predict(api_name="/arena_vote_a")  # the battle is gone from this session's state
    assert "Ask a question first" in again[2] or "no battle" in again[2].lower()
    assert sum(rt.store.count_battles().values()) == n_before + 1


def test_the_arena_suggests_pool_prompts_not_yet_voted_on(client, served):
    voted = {r["prompt"] for r in served[1].store.battles(source="arena-vote")}
    assert voted & set(POOL)  # the round above voted on a pool prompt
    for _ in range(6):
        prompt, status = client.predict(api_name="/arena_suggest")
        assert prompt in POOL and prompt not in voted and status == ""


def test_leaderboard_and_data_tabs(client, served, tmp_path):
    lb_all, lb_arena, matrix, plot = client.predict(api_name="/leaderboard")[:4]
    models = [r[1] for r in lb_all["data"]]
    assert "gpt-4-1106-preview" in models and len(lb_arena["data"]) == 2
    assert "95% CI" in lb_all["headers"] and plot is not None
    counts, recent = client.predict(api_name="/data")[:2]
    assert ["arena-vote", 1] in counts["data"] and len(recent["data"]) == 1
    path, note, sheet = client.predict("Parquet", api_name="/export")  # the datasheet is offered beside the file
    assert Path(path).suffix == ".parquet" and "Exported" in note
    assert Path(sheet).name == f"datasheet-{Path(path).name}.json"
    assert json.loads(Path(sheet).read_text())["format"] == "parquet"
    _, admin = client.predict("anything", api_name="/admin_delete_votes")
    assert "disabled" in admin


def test_evaluation_tab_shows_the_newest_run(client, served, shared_routellm):
    from routellm_demo.evals.command import run_eval

    _, rt = served
    benchmark, note, image, table = client.predict(None, api_name="/evaluation")
    assert "No evaluation found" in note and image is None
    # a real (small) evaluation into the app's eval_dir, as `python -m routellm_demo eval` would write it
    metrics = run_eval("gsm8k", shared_routellm, rt.config.eval_dir / "gsm8k", ("random", "sw_ranking"), limit=120,
                       bootstrap=0, cache_db=rt.config.eval_dir / "cache.db", progress=False)
    benchmark, note, image, table = client.predict(None, api_name="/evaluation")
    assert benchmark["value"] == "gsm8k" and benchmark["choices"][0][0] == "gsm8k"  # a dropdown update
    assert "120 prompts" in note and "grouped" in note
    assert image and Path(image).stat().st_size > 10_000  # the curve.png, served to the page
    rows = {r[0]: r for r in table["data"]}
    assert {"random", "sw_ranking", "oracle"} <= set(rows)
    apgr = table["headers"].index("APGR")
    assert rows["sw_ranking"][apgr] == f"{metrics['routers']['sw_ranking']['apgr']:.3f}"  # the table is metrics.json


def test_time_to_first_token(client, served):
    """Figures for the report: submit -> first streamed token, and routing's share (no assertion on time)."""
    url, rt = served
    prompts = ["Name a large city in Japan.", "How do I boil an egg?", "What is 12 times 12?",
               "Give me a synonym for happy.", "Why do cats purr?"]
    rows = []
    for p in prompts:
        client.predict(api_name="/new_chat")
        _, first = timed_chat(client, p)
        log = rt.store.decisions(limit=1)[0]
        rows.append({"prompt": p, "ttft_s": first, "routing_ms": log["routing_ms"], "model_ttft_ms": log["ttft_ms"],
                     "role": log["chosen_role"]})
    ttft = statistics.median(r["ttft_s"] for r in rows) * 1000
    routing = statistics.median(r["routing_ms"] for r in rows)
    summary = {"client": "gradio_client", "median_ttft_ms": ttft, "median_routing_ms": routing,
               "routing_share": routing / ttft, "runs": rows}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "timings_e2e.json").write_text(json.dumps(summary, indent=2))
    print(f"\ngradio_client: median submit->first token {ttft:.0f} ms, routing {routing:.1f} ms "
          f"({100 * routing / ttft:.1f}%)")
    assert all(r["ttft_s"] is not None for r in rows)
