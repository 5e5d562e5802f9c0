"""App replicas on one PostgreSQL database, loopback only and bounded: what the store sustains and how
soon a vote taken by one replica reaches the others.

Two parts, each printing one line per setting:

1. ``store``: processes writing arena votes (``record_vote``: battle row, pending mark, visitor, in one
   transaction) as fast as they can, for 1 and 2 processes, on SQLite (one file) and on PostgreSQL;
   ``feed_lag_ms`` is how long after a vote was acknowledged a follower polling the change feed
   every 10 ms saw it.
     store_votes backend=postgres processes=2 votes=2000 wall_s=... votes_per_s=... feed_lag_p50_ms=... p95=...
2. ``app``: 1, then 2, real app replicas (``python app.py``, as tests/test_replicas.py starts them)
   sharing one embedded model pair (2-token answers) and one database, with V gradio_client voters
   spread over the replicas; ``router_lag_s`` is how long after the last vote a replica's sw_ranking
   score (its chat card) equals the one recomputed from the database, for the latest vote the last
   replica took (so with 2 replicas: a vote taken by the other one, carried by the change feed; the
   figure includes one chat call, ~0.5 s here).
     app_votes replicas=2 voters=6 acknowledged=... wall_s=... votes_per_s=... vote_p50_ms=... router_lag_s=...

    .venv/bin/python benchmarks/replicas.py [--part store|app|all] [--votes 1000] [--voters 6]

The PostgreSQL server is a throwaway cluster of Debian's binaries (tests/pg_server.py), fsync on
(durable, as a deployment would run it). Never asserts; the test asserts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks"), str(REPO / "tests")]

import numpy as np  # noqa: E402

from routellm_demo.store import ARENA_SOURCE, open_store  # noqa: E402


# ---- a shared model pair and replica configs ----------------------------------------------------


def start_model_pair(max_tokens: int = 2) -> dict:
    """The embedded local pair, started once here; replicas reach it by URL (two llama.cpp servers for
    any number of replicas, instead of two per replica on two cores). Stopped when this process ends."""
    from dataclasses import replace

    from routellm_demo.config import load_config
    from routellm_demo.llm.endpoints import make_endpoints

    cfg = load_config(environ={})
    cfg = replace(cfg, strong=replace(cfg.strong, max_tokens=max_tokens), weak=replace(cfg.weak, max_tokens=max_tokens))
    endpoints = make_endpoints(cfg)
    for endpoint in endpoints.values():
        endpoint.server.ensure_running()
    return {"strong": (cfg.strong, endpoints["strong"].server.base_url),
            "weak": (cfg.weak, endpoints["weak"].server.base_url), "endpoints": endpoints}


def _toml(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)  # a JSON string is a TOML basic string


def replica_config(folder: Path, db_url: str, pair: dict, name: str) -> Path:
    """A config file for one replica: the shared database, the shared model pair as remote endpoints
    (same names and prices as the embedded ones), sw_ranking, no seed, the load test's open limits."""
    folder = Path(folder)
    lines = [f'router = "sw_ranking"', "threshold = 0.5", "seed = false", f"db_path = {_toml(db_url)}",
             f"checkpoint_dir = {_toml(str(folder / 'ckpt'))}"]
    for role in ("strong", "weak"):
        spec, url = pair[role]
        lines += ["", f"[{role}]", f"name = {_toml(spec.name)}", f"model = {_toml(spec.model)}",
                  f"base_url = {_toml(url)}", f"api = {_toml(spec.api)}", f"max_tokens = {spec.max_tokens}", f"timeout = {spec.timeout}",
                  f"input_price = {spec.input_price}", f"output_price = {spec.output_price}"]
        if spec.prompt_format:
            lines.append(f"prompt_format = {_toml(spec.prompt_format)}")
        if spec.stop:
            lines.append(f"stop = {_toml(list(spec.stop))}")
        if spec.temperature is not None:
            lines.append(f"temperature = {spec.temperature}")
    lines += ["", "[limits]", "requests_per_minute = 1000000", "visitor_requests_per_minute = 1000000",
              "visitor_votes_per_hour = 1000000", "", "[arena]", 'trusted_voters = "127.0.0.1"']
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def check_votes(db_url: str, acked_ids) -> dict:
    """What the database holds after a load: arena-vote rows, distinct uids and battles, pending battles
    marked voted and linked to their row, acknowledged votes missing."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT id, uid, meta FROM battles WHERE source = %s", [ARENA_SOURCE]).fetchall()
        voted = conn.execute("SELECT battle_id, battle_row_id FROM arena_pending WHERE status = 'voted'").fetchall()
    ids = {r[0] for r in rows}
    uids = {r[1] for r in rows}
    battles = {json.loads(r[2])["arena_battle_id"] for r in rows}
    linked = sum(1 for b, row in voted if row in ids and "arena:" + b in uids)
    return {"battle_rows": len(rows), "distinct_uids": len(uids), "distinct_battles": len(battles),
            "voted_pending": len(voted), "voted_linked": linked, "acknowledged_missing": len(set(acked_ids) - ids)}


def recomputed_sw_score(db_url: str, prompt: str, checkpoint_dir: Path) -> float:
    """sw_ranking's score for ``prompt``, fitted here from the database alone."""
    from routellm_demo.config import load_config
    from routellm_demo.embeddings import Embedder
    from routellm_demo.router_set import RouterSet

    config = load_config(environ={})  # the replicas' sw_ranking weighting (votes weigh vote_weight)
    with open_store(db_url) as store:
        embedder = Embedder(store)
        routers = RouterSet(store, embedder, checkpoint_dir=checkpoint_dir, role_map=config.role_map,
                            router_params=config.router_params)
        return float(routers.score("sw_ranking", embedder.embed([prompt]), [prompt])[0])


SCORE = re.compile(r"score of <b>([0-9.]+)</b>")


def shown_sw_score(url: str, prompt: str) -> float:
    """The sw_ranking score a replica shows for ``prompt`` on its chat card (its live router's)."""
    from gradio_client import Client

    from vote_load import CLIENT_TIMEOUT

    client = Client(url, verbose=False, httpx_kwargs=CLIENT_TIMEOUT)
    _, _, card, *_ = client.predict(prompt, [], "sw_ranking", 0.5, api_name="/chat")
    m = SCORE.search(card)
    if m is None:
        raise RuntimeError(f"no score on the chat card: {card[:200]}")
    return float(m.group(1))


def wait_for_score(url: str, prompt: str, expected: float, timeout: float, tol: float = 0.0006) -> float | None:
    """Seconds until the replica shows ``expected`` for ``prompt`` (None: not within ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if abs(shown_sw_score(url, prompt) - expected) <= tol:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


# ---- part 1: the store alone -------------------------------------------------------------------


def _store_writer(target, worker: int, votes: int, out) -> None:
    store = open_store(target, timeout=30)
    for i in range(votes):
        bid = f"w{worker}-{i}"
        store.add_pending(battle_id=bid, session_id=f"s{worker}", prompt=f"prompt {bid}", model_a="x", model_b="y",
                          strong_side="a")
        store.finish_pending(bid, answer_a="1", answer_b="2")
        new = store.record_vote(battle_id=bid, session_id=f"s{worker}", outcome="a", visitor=f"v{worker}",
                                battle=dict(prompt=f"prompt {bid}", model_a="x", model_b="y", winner="model_a",
                                            source=ARENA_SOURCE, uid=f"arena:{bid}", meta={"arena_battle_id": bid}))
        out.put((new, time.time()))
    store.close()


def bench_store(target, backend: str, processes: int, votes: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    follower = open_store(target)
    cursor = follower.change_cursor()
    seen: dict[int, float] = {}
    done = threading.Event()

    def follow():
        nonlocal cursor
        while not done.is_set() or len(seen) < processes * votes:
            changes = follower.changes_since(cursor)
            now = time.time()
            for r in changes.inserted:
                seen.setdefault(r["id"], now)
            cursor = changes.cursor
            if done.is_set() and not changes:
                break
            time.sleep(0.01)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    started = time.perf_counter()
    procs = [ctx.Process(target=_store_writer, args=(target, w, votes, out)) for w in range(processes)]
    for p in procs:
        p.start()
    acked = [out.get(timeout=300) for _ in range(processes * votes)]
    for p in procs:
        p.join(60)
    wall = time.perf_counter() - started
    done.set()
    thread.join(30)
    follower.close()
    lags = [(seen[i] - t) * 1000 for i, t in acked if i in seen]
    return {"backend": backend, "processes": processes, "votes": len(acked), "wall_s": wall,
            "votes_per_s": len(acked) / wall, "feed_lag_p50_ms": float(np.percentile(lags, 50)),
            "feed_lag_p95_ms": float(np.percentile(lags, 95)), "seen": len(lags)}


# ---- part 2: app replicas ------------------------------------------------------------------------


def bench_app(server, pair: dict, replicas: int, voters: int, votes: int, folder: Path) -> dict:
    from vote_load import AppProcess, run_vote_load

    url = server.create_database("bench")
    apps = [AppProcess(replica_config(folder, url, pair, f"replica{n}_{replicas}"), folder / f"r{n}_{replicas}.log")
            for n in range(replicas)]
    try:
        for app in apps:
            app.wait_ready()
        for app in apps:
            app.warm()
        results: list[dict] = [{} for _ in apps]
        share = [voters // replicas + (1 if n < voters % replicas else 0) for n in range(replicas)]
        threads = [threading.Thread(target=lambda n=n: results[n].update(run_vote_load(
            apps[n].url, voters=share[n], votes=votes, chat=False, deadline_s=900))) for n in range(replicas)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        acked = [i for r in results for i in r["acked_ids"]]
        vote_ms = [r["vote_p50_ms"] for r in results]
        db = check_votes(url, acked)
        # the router lag: the last replica's latest vote, seen by the first replica's router (with one
        # replica, its own vote: no feed involved)
        prompt = _prompt_of(url, results[-1]["acked_ids"][-1])
        expected = recomputed_sw_score(url, prompt, folder / "ckpt")
        lag = wait_for_score(apps[0].url, prompt, expected, timeout=30)
        return {"replicas": replicas, "voters": voters, "acknowledged": len(acked), "wall_s": wall,
                "votes_per_s": len(acked) / wall, "vote_p50_ms": float(np.mean(vote_ms)),
                "failed": sum(r["failed"] for r in results), "router_lag_s": lag, "db": db}
    finally:
        for app in apps:
            app.stop()
        server.drop_database(url)


def _prompt_of(db_url: str, battle_id: int) -> str:
    with open_store(db_url) as store:
        return store.battle(battle_id)["prompt"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("store", "app", "all"), default="all")
    p.add_argument("--votes", type=int, default=1000, help="store part: votes per process")
    p.add_argument("--voters", type=int, default=6, help="app part: voters in all, spread over the replicas")
    p.add_argument("--app-votes", type=int, default=5, help="app part: votes per voter")
    args = p.parse_args()

    from pg_server import PgServer

    folder = Path(tempfile.mkdtemp(prefix="replicas-"))
    with PgServer(durable=True) as server:
        if args.part in ("store", "all"):
            for processes in (1, 2):
                for backend in ("sqlite", "postgres"):
                    target = (folder / f"store{processes}.db" if backend == "sqlite"
                              else server.create_database("store"))
                    r = bench_store(target, backend, processes, args.votes)
                    print(f"store_votes backend={backend} processes={processes} votes={r['votes']} "
                          f"wall_s={r['wall_s']:.1f} votes_per_s={r['votes_per_s']:.0f} "
                          f"feed_lag_p50_ms={r['feed_lag_p50_ms']:.1f} feed_lag_p95_ms={r['feed_lag_p95_ms']:.1f}",
                          flush=True)
        if args.part in ("app", "all"):
            pair = start_model_pair()
            for replicas in (1, 2):
                r = bench_app(server, pair, replicas, args.voters, args.app_votes, folder)
                lag = "none" if r["router_lag_s"] is None else f"{r['router_lag_s']:.1f}"
                print(f"app_votes replicas={replicas} voters={r['voters']} acknowledged={r['acknowledged']} "
                      f"failed={r['failed']} wall_s={r['wall_s']:.1f} votes_per_s={r['votes_per_s']:.2f} "
                      f"vote_p50_ms={r['vote_p50_ms']:.0f} router_lag_s={lag} db={r['db']}", flush=True)
            for endpoint in pair["endpoints"].values():
                endpoint.server.stop()
    print(f"machine cores={os.cpu_count()} load_avg_1min={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
