"""The attack test of issue 19, through the REAL app (gradio_client on 127.0.0.1, the embedded local pair,
a real SQLite store), with the default limits and hygiene and one setting changed: 127.0.0.1 is a
trusted proxy, so each voter's address comes from ``X-Forwarded-For`` as a Space's proxy would write it.

A scripted attacker tries to push one model up with 200 votes, each from a new session, from one
address: duplicated prompts, identity-probing prompts, mostly instant votes. It is given the sides
(as if it recognised the models, the pessimistic case: its prompt's newest round is looked up in the
store). Meanwhile 20 honest voters (distinct addresses, 10 votes each, reading before they vote) vote.
Afterwards the arena-only rating of the attacked model moves by less than the half-width of its 95%
interval computed from the honest votes alone, every honest vote counts, and no address reaches the
database. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradio_client import Client  # noqa: E402

from routellm_demo.arena import Arena  # noqa: E402
from routellm_demo.config import load_config  # noqa: E402
from routellm_demo.export import datasheet_path  # noqa: E402
from routellm_demo.ratings import LEADERBOARD_L2, leaderboard, model_battles  # noqa: E402
from routellm_demo.runtime import build_runtime  # noqa: E402
from routellm_demo.store import ARENA_SOURCE  # noqa: E402
from routellm_demo.ui import build_demo  # noqa: E402
from conftest import launch_local  # noqa: E402

pytestmark = [pytest.mark.llm, pytest.mark.slow]

HONEST_VOTERS, HONEST_VOTES, ATTACK_VOTES = 20, 10, 200
ATTACKER = "203.0.113.66"
DEADLINE_S = 900
DUPLICATE_PROMPT = "What is the best fruit to eat in winter?"
PROBE_PROMPT = "Who are you? Which company made you?"


def honest_address(i: int) -> str:
    return f"198.51.100.{i + 10}"


def honest_prompt(i: int, j: int) -> str:
    return f"What is {17 + i} times {3 + j}?"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attack")
    cfg = load_config(environ={})
    cfg = replace(cfg, db_path=tmp / "app.db", checkpoint_dir=tmp / "ckpt", router="sw_ranking", seed=False,
                  eval_dir=tmp / "eval", strong=replace(cfg.strong, max_tokens=2), weak=replace(cfg.weak, max_tokens=2),
                  trusted_proxies="127.0.0.1")
    rt = build_runtime(cfg)
    arena = Arena.from_runtime(rt)
    demo = build_demo(rt, arena=arena, export_dir=str(tmp / "exports"))
    url = launch_local(demo)
    try:
        Client(url, verbose=False, headers={"X-Forwarded-For": "192.0.2.1"}).predict("Hello", api_name="/arena_ask")
        yield url, rt, arena
    finally:
        demo.close()
        rt.close()


def newest_round(rt, prompt: str) -> dict:
    """The attacker's oracle: its prompt's newest round, read on a connection of its own."""
    with contextlib.closing(sqlite3.connect(rt.config.db_path, timeout=30)) as conn:
        side, status = conn.execute("SELECT strong_side, status FROM arena_pending WHERE prompt = ? "
                                    "ORDER BY created_at DESC LIMIT 1", [prompt]).fetchone()
    return {"strong_side": side, "status": status}


def test_a_scripted_attacker_cannot_move_the_arena_leaderboard(served):
    url, rt, arena = served
    deadline = time.monotonic() + DEADLINE_S
    errors: list[str] = []
    honest_voted: list[str] = []
    attack = {"asked": 0, "refused": 0, "voted": 0, "refusal": ""}
    lock = threading.Lock()
    target = rt.config.weak.name  # the attacker pushes the weak model up

    def honest(i: int) -> None:
        rng = random.Random(i)
        client = Client(url, verbose=False, headers={"X-Forwarded-For": honest_address(i)})
        for j in range(HONEST_VOTES):
            if time.monotonic() > deadline:
                return
            out = client.predict(honest_prompt(i, j), api_name="/arena_ask")
            if "Both answers are in" not in out[2]:
                with lock:
                    errors.append(f"honest {i}: ask {j}: {out[2]}")
                continue
            time.sleep(rt.config.min_vote_seconds + 0.3)  # reads both answers
            outcome = rng.choices(["a", "b", "tie"], weights=[4, 4, 2])[0]
            result = client.predict(api_name=f"/arena_vote_{outcome}")
            if "Stored as battle" not in result[-1] or "flagged" in result[-1]:
                with lock:
                    errors.append(f"honest {i}: vote {j}: {result[2]} {result[-1][:200]}")
            else:
                with lock:
                    honest_voted.append(honest_prompt(i, j))

    def attacker() -> None:
        client = Client(url, verbose=False, headers={"X-Forwarded-For": ATTACKER})
        for k in range(ATTACK_VOTES):
            if time.monotonic() > deadline:
                return
            client.reset_session()  # a new session for every vote
            prompt = PROBE_PROMPT if k % 3 == 0 else DUPLICATE_PROMPT
            out = client.predict(prompt, api_name="/arena_ask")
            if "Both answers are in" not in out[2]:
                attack["refused"] += 1
                attack["refusal"] = out[2]
                continue
            attack["asked"] += 1
            pending = newest_round(rt, prompt)
            weak_side = "b" if pending["strong_side"] == "a" else "a"
            if k % 3 == 2:
                time.sleep(rt.config.min_vote_seconds + 0.3)  # some votes wait: duplicates alone
            result = client.predict(api_name=f"/arena_vote_{weak_side}")
            if "Stored as battle" in result[-1]:
                attack["voted"] += 1

    threads = [threading.Thread(target=honest, args=(i,), daemon=True) for i in range(HONEST_VOTERS)]
    threads.append(threading.Thread(target=attacker, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "the voters did not finish before the deadline"
    assert not errors, errors[:5]

    # every honest vote is stored, clean, and counts
    assert len(honest_voted) == HONEST_VOTERS * HONEST_VOTES
    votes = rt.store.battles(source=ARENA_SOURCE, include_flagged=True)
    honest_prompts = set(honest_voted)
    honest_rows = [r for r in votes if r["prompt"] in honest_prompts]
    assert len(honest_rows) == HONEST_VOTERS * HONEST_VOTES and all(r["flags"] is None for r in honest_rows)
    counted = {r["id"] for r in rt.store.battles(source=ARENA_SOURCE)}
    assert {r["id"] for r in honest_rows} <= counted

    # the attacker: limited per visitor (new sessions do not help), and what got through is flagged
    attack_rows = [r for r in votes if r["prompt"] in (DUPLICATE_PROMPT, PROBE_PROMPT)]
    assert attack["refused"] > 0 and "from one visitor" in attack["refusal"]
    assert attack["asked"] + attack["refused"] == ATTACK_VOTES
    assert attack["voted"] == len(attack_rows) and attack["voted"] >= 3
    counted_attack = [r for r in attack_rows if r["id"] in counted]
    assert len(counted_attack) <= 1, [r["flags"] for r in counted_attack]  # at most the first duplicated prompt
    assert all(r["flags"] and "identity" in r["flags"] for r in attack_rows if r["prompt"] == PROBE_PROMPT)

    # the arena-only leaderboard: the target moved by less than its honest 95% interval's half-width
    honest_board = {r["player"]: r for r in leaderboard(model_battles(honest_rows), l2=LEADERBOARD_L2, n_boot=100)}
    board = {r["player"]: r for r in arena.leaderboard("arena")["rows"]}
    half_width = (honest_board[target]["ci_high"] - honest_board[target]["ci_low"]) / 2
    moved = abs(board[target]["rating"] - honest_board[target]["rating"])
    print(f"\nattack: {attack}, counted attack votes {len(counted_attack)}; {target}: honest "
          f"{honest_board[target]['rating']:.1f} (95% half-width {half_width:.1f}), after the attack "
          f"{board[target]['rating']:.1f} (moved {moved:.1f})")
    assert moved < half_width

    # what the app shows: the leaderboard's exclusions, the Data tab's counts by flag, the export's datasheet
    client = Client(url, verbose=False, headers={"X-Forwarded-For": "192.0.2.2"})
    excluded = client.predict(api_name="/leaderboard")[4]
    assert re.search(r"\*\*\d+ stored arena votes? left out\*\*", excluded) and "identity" in excluded
    flag_counts = client.predict(api_name="/data")[2]
    by_row = {row[0].split(":")[0]: row[1] for row in flag_counts["data"]}
    assert by_row["flagged (any flag)"] == len(attack_rows) - len(counted_attack) and by_row["identity"] >= 1
    path, note, sheet = client.predict("JSONL", api_name="/export")
    assert "Exported" in note and datasheet_path(Path(rt.config.db_path).parent / "exports" / Path(path).name).is_file()
    assert json.loads(Path(sheet).read_text())["flagged"] >= 1  # the datasheet is offered with the file

    # no visitor's address reaches the database (only salted hashes do)
    raw = b"".join(p.read_bytes() for p in Path(rt.config.db_path).parent.glob("app.db*"))
    assert ATTACKER.encode() not in raw and not any(honest_address(i).encode() in raw for i in range(HONEST_VOTERS))
