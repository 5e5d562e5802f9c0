"""Vote load on the RUNNING Gradio app, loopback only and bounded: V concurrent voters (one
gradio_client session each) each play N arena rounds (ask both models, then vote), while one more
client keeps chatting. Every vote goes through the app's public API, exactly as a browser's would.

Prints one line of figures, then what the database holds:
  vote_load voters=50 votes_per_voter=20 acknowledged=1000 failed=0 wall_s=... votes_per_s=...
            vote_p50_ms=... vote_p95_ms=... round_p95_ms=... chat_answers=... chat_failed=0 chat_p95_ms=...
  vote_load db battle_rows=1000 distinct_battles=1000 voted_pending=1000 acknowledged_missing=0 integrity=ok

A round is both models answering (tiny answers: --max-tokens, default 2) and the vote; "vote latency"
is the vote call alone (store the battle, teach the router, refit the ratings, answer the page);
votes/s is acknowledged votes over the whole run's wall time (rounds included).

    .venv/bin/python benchmarks/vote_load.py [--voters 50] [--votes 20] [--max-tokens 2]

It starts ``python app.py`` as a separate process (:class:`AppProcess`: its own interpreter, as in a
deployment; the clients here do not share its GIL) over the embedded local pair on 127.0.0.1 with a
fresh database, and stops it, and the model servers it started, at the end. Never asserts on time;
tests/test_reliability_load.py runs a smaller load, and a kill -9 in the middle of one, with
assertions on the counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

PROMPTS = ["Why is the sky blue?", "Name three primary colours.", "What is 17 times 3?", "Explain recursion briefly.",
           "Give me one tip for sleeping better.", "What is the capital of Japan?", "Write a haiku about rain.",
           "How many legs does a spider have?"]
OUTCOMES = ("a", "b", "tie", "bothbad")


# Fifty page loads at once on two busy cores take more than httpx's default 5 s; and the client's one
# long-lived event stream per session must not time out between two messages under load (gradio_client
# leaves its read timeout unset; 10 minutes keeps every wait bounded).
CLIENT_TIMEOUT = {"timeout": httpx.Timeout(120.0, read=600.0)}
ASK_TRIES = 3


class AppProcess:
    """``python app.py`` with its settings in a config file, on 127.0.0.1, in its own process group
    (so the model servers it starts can be stopped by the group's id, even after the app is killed)."""

    def __init__(self, config_path, log_path, *, python: str = sys.executable):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTELLM_DEMO_")}
        env.update(ROUTELLM_DEMO_CONFIG=str(config_path), GRADIO_SERVER_NAME="127.0.0.1",
                   GRADIO_SERVER_PORT=str(self.port), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([python, str(REPO / "app.py")], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.proc.pid  # start_new_session: the app leads its own group

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until the page answers (raises with the log's tail if the app exits or never answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        return
            time.sleep(0.5)
        raise RuntimeError(f"app not ready after {timeout:.0f} s: {self.tail()}")

    def warm(self) -> None:
        """One arena round (both model servers started, the embedding model loaded) before timing."""
        from gradio_client import Client

        client = Client(self.url, verbose=False, httpx_kwargs=CLIENT_TIMEOUT)
        client.predict("Hello", api_name="/arena_ask")

    def crash(self) -> None:
        """SIGKILL the app process alone: no handler, no atexit, no flush. Its children live on."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """Stop everything this app started (its model servers too, orphaned or not), by group id."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self._log.close()

    def tail(self, n: int = 20) -> str:
        self._log.flush()
        return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def write_config(folder: Path, *, max_tokens: int = 2) -> tuple[Path, Path]:
    """A config file for the load: the embedded pair with tiny answers, a fresh db with no seed (its
    battles are the votes alone), no rate limit to speak of (50 voters on one machine are not 50
    abusers). Returns (config path, db path)."""
    folder = Path(folder)
    db = folder / "votes.db"
    path = folder / "vote_load.toml"
    path.write_text(f'''router = "sw_ranking"
threshold = 0.5
seed = false
db_path = "{db}"
checkpoint_dir = "{folder / 'ckpt'}"

[strong]
local = "gemma3"
max_tokens = {max_tokens}

[weak]
local = "smollm2"
max_tokens = {max_tokens}

[limits]
requests_per_minute = 1000000
visitor_requests_per_minute = 1000000
visitor_votes_per_hour = 1000000

[arena]
trusted_voters = "127.0.0.1"   # the load test is a trusted source: its votes are marked, never flagged
''')
    return path, db


def _row_id(vote_html: str) -> int | None:
    import re

    m = re.search(r"Stored as battle #(\d+)", vote_html or "")
    return int(m.group(1)) if m else None


def run_vote_load(url: str, *, voters: int, votes: int, chat: bool = True, deadline_s: float = 3600.0,
                  stop: threading.Event | None = None, on_ack=None) -> dict:
    """``voters`` gradio_client sessions x ``votes`` arena rounds each, plus a chatting client.

    Returns counts, the acknowledged battle row ids (what each client was told was stored),
    latencies and errors. Bounded: stops at ``deadline_s`` or when ``stop`` is set; a voter whose
    connection fails stops (the crash test relies on that). ``on_ack(row_id)`` is called per
    acknowledged vote, from the voter's thread.
    """
    from gradio_client import Client

    from routellm_demo.ui import last_answer  # the app's own reader of a Chatbot value

    stop = stop or threading.Event()
    started = time.perf_counter()
    deadline = started + deadline_s
    lock = threading.Lock()
    acked: list[int] = []
    vote_ms: list[float] = []
    round_ms: list[float] = []
    errors: list[str] = []
    retried: list[str] = []  # asks redone in a new session after a client-side failure
    unknown: list[str] = []  # votes whose answer never came back (counted or not: see the database)
    model_failed: list[str] = []  # rounds a model failed (blank answer...), asked again
    chat_ms: list[float] = []
    chat_errors: list[str] = []
    voters_done = threading.Event()

    def connect():
        return Client(url, verbose=False, httpx_kwargs=CLIENT_TIMEOUT)

    def session(i: int, what: str = "reconnect"):
        """A new session for voter ``i`` (first, or after a lost stream), or None (the failure counted)."""
        try:
            return connect()
        except Exception as e:  # noqa: BLE001 (counted, not raised: a load test reports failures)
            with lock:
                errors.append(f"voter {i}: {what}: {type(e).__name__}: {e}")
            return None

    def voter(i: int) -> None:
        client = session(i, "connect")
        if client is None:
            return
        for j in range(votes):
            if stop.is_set() or time.perf_counter() > deadline:
                return
            prompt = f"{PROMPTS[(i + j) % len(PROMPTS)]} (voter {i}, round {j})"
            outcome = OUTCOMES[(i + j) % len(OUTCOMES)]
            t0 = time.perf_counter()
            asked = None
            for attempt in range(ASK_TRIES):
                try:
                    asked = client.predict(prompt, api_name="/arena_ask")
                    if "cannot be voted on" in str(asked[2]) and attempt + 1 < ASK_TRIES:
                        # a model failed this round (e.g. its 2 tokens were blank): ask again, as a
                        # visitor would; the failed round stays unvotable (the integrity tests check that)
                        with lock:
                            model_failed.append(f"voter {i} round {j}: {str(asked[2])[:120]}")
                        continue
                    break
                except Exception as e:  # noqa: BLE001
                    if stop.is_set():
                        return
                    # The client lost its event stream (the server may still be answering): ask
                    # again in a NEW session, so two rounds never race for one session's battle.
                    with lock:
                        retried.append(f"voter {i} round {j}: {type(e).__name__}: {str(e)[:120]}")
                    client = session(i)
                    if client is None:
                        return
            if asked is None or "Both answers are in" not in str(asked[2]):
                with lock:
                    errors.append(f"voter {i} round {j}: ask: {str(asked and asked[2])[:200]}")
                continue
            t1 = time.perf_counter()
            try:
                result = client.predict(api_name=f"/arena_vote_{outcome}")
            except Exception as e:  # noqa: BLE001 (stored or not: only the database can say)
                with lock:
                    unknown.append(f"voter {i} round {j}: {type(e).__name__}: {str(e)[:200]}")
                if stop.is_set():
                    return
                client = session(i)
                if client is None:
                    return
                continue
            t2 = time.perf_counter()
            row = _row_id(result[-1])
            if "Thanks for voting" not in str(result[2]) or row is None:
                with lock:
                    errors.append(f"voter {i} round {j}: vote: {str(result[2])[:200]}")
                continue
            with lock:
                acked.append(row)
                vote_ms.append((t2 - t1) * 1000)
                round_ms.append((t2 - t0) * 1000)
            if on_ack is not None:
                on_ack(row)

    def chatter() -> None:
        client = Client(url, verbose=False, httpx_kwargs=CLIENT_TIMEOUT)
        k = 0
        while not voters_done.is_set() and not stop.is_set() and time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                history, _, card, *_ = client.predict(f"{PROMPTS[k % len(PROMPTS)]} (chat {k})", [], "sw_ranking", 0.5,
                                                      api_name="/chat")
                ok = bool(last_answer(history).strip()) and "❌" not in card
                with lock:
                    (chat_ms if ok else chat_errors).append((time.perf_counter() - t) * 1000 if ok else card[:200])
            except Exception as e:  # noqa: BLE001
                with lock:
                    chat_errors.append(f"{type(e).__name__}: {str(e)[:200]}")
            k += 1
            client.predict(api_name="/new_chat")
            stop.wait(0.5)

    chat_thread = threading.Thread(target=chatter, daemon=True, name="chatter") if chat else None
    if chat_thread:
        chat_thread.start()
    with ThreadPoolExecutor(voters, thread_name_prefix="voter") as pool:
        list(pool.map(voter, range(voters)))
    wall = time.perf_counter() - started
    voters_done.set()
    if chat_thread:
        chat_thread.join(120)

    def pct(values, q):
        return float(np.percentile(values, q)) if values else float("nan")

    return {"voters": voters, "votes_per_voter": votes, "acknowledged": len(acked), "acked_ids": sorted(acked),
            "failed": len(errors), "errors": errors[:5], "retried": len(retried), "retries": retried[:5],
            "model_failed": len(model_failed), "model_failures": model_failed[:5],
            "unknown": len(unknown), "unknowns": unknown[:5], "wall_s": wall, "votes_per_s": len(acked) / wall,
            "vote_p50_ms": pct(vote_ms, 50), "vote_p95_ms": pct(vote_ms, 95), "round_p50_ms": pct(round_ms, 50),
            "round_p95_ms": pct(round_ms, 95), "chat_answers": len(chat_ms), "chat_failed": len(chat_errors),
            "chat_errors": chat_errors[:3], "chat_p50_ms": pct(chat_ms, 50), "chat_p95_ms": pct(chat_ms, 95)}


def check_db(db_path, acked_ids) -> dict:
    """What the database holds after a load: arena-vote rows, their distinct battles, the pending
    battles marked voted, acknowledged votes missing, and SQLite's integrity check."""
    with contextlib.closing(sqlite3.connect(str(db_path), timeout=30)) as db:
        rows = db.execute("SELECT id, uid, meta FROM battles WHERE source = 'arena-vote'").fetchall()
        voted = db.execute("SELECT battle_id, battle_row_id FROM arena_pending WHERE status = 'voted'").fetchall()
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    ids = {r[0] for r in rows}
    battles = {json.loads(r[2])["arena_battle_id"] for r in rows}
    linked = sum(1 for b, row in voted if row in ids and "arena:" + b in {r[1] for r in rows})
    return {"battle_rows": len(rows), "distinct_uids": len({r[1] for r in rows}), "distinct_battles": len(battles),
            "voted_pending": len(voted), "voted_linked": linked,
            "acknowledged_missing": len(set(acked_ids) - ids), "integrity": integrity}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--voters", type=int, default=50)
    p.add_argument("--votes", type=int, default=20, help="arena votes per voter")
    p.add_argument("--max-tokens", type=int, default=2, help="tokens per arena answer (1-4 keeps it a vote test)")
    p.add_argument("--no-chat", action="store_true", help="no chatting client during the load")
    p.add_argument("--deadline", type=float, default=3600.0, help="stop after this many seconds")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vote_load-"))
    config_path, db = write_config(tmp, max_tokens=args.max_tokens)
    app = AppProcess(config_path, tmp / "app.log")
    try:
        app.wait_ready()
        app.warm()
        r = run_vote_load(app.url, voters=args.voters, votes=args.votes, chat=not args.no_chat,
                          deadline_s=args.deadline)
        print(f"vote_load voters={r['voters']} votes_per_voter={r['votes_per_voter']} max_tokens={args.max_tokens} "
              f"acknowledged={r['acknowledged']} failed={r['failed']} asks_retried={r['retried']} "
              f"rounds_a_model_failed={r['model_failed']} "
              f"votes_unanswered={r['unknown']} wall_s={r['wall_s']:.1f} "
              f"votes_per_s={r['votes_per_s']:.2f} vote_p50_ms={r['vote_p50_ms']:.0f} vote_p95_ms={r['vote_p95_ms']:.0f} "
              f"round_p50_ms={r['round_p50_ms']:.0f} round_p95_ms={r['round_p95_ms']:.0f} "
              f"chat_answers={r['chat_answers']} chat_failed={r['chat_failed']} chat_p50_ms={r['chat_p50_ms']:.0f} "
              f"chat_p95_ms={r['chat_p95_ms']:.0f}", flush=True)
        for e in r["errors"] + r["chat_errors"] + r["retries"] + r["unknowns"]:
            print("  error:", e)
        d = check_db(db, r["acked_ids"])
        print("vote_load db " + " ".join(f"{k}={v}" for k, v in d.items()), flush=True)
    finally:
        app.stop()


if __name__ == "__main__":
    main()
