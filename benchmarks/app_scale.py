"""The rest of the app at a million battles: what a large store costs besides scoring a prompt.

The store is a SQLite file of N battles built as ``sw_latency.py --store`` builds its own (each battle
one of the 11,681 RouteLLM evaluation prompts, whose embeddings are cached in the store), except that a
tenth are arena votes, so that the admin delete has something to delete. Each stage runs the code the
app runs, and prints one line ``app_scale N=... stage=... seconds=...``:

  load_battles      router_set.load_battles: every row, then its cached embedding (what a refit and a
                    router's first load read first); RSS growth, and the stage's peak RSS
  refit_mf,         Refresher.refit_now (the app's background refit every 50 votes: read the store,
  refit_classifier  fit off to the side, swap in), each in a child process that is stopped after
                    10 minutes or 12 GB of RSS (--refit-timeout, --refit-max-gb); load_s and fit_s
                    are its two parts, peak_rss_mb the child's high-water mark
  read_rows         Store.battles(include_flagged=True): the rows every export reads first
  export_<fmt>      Arena.export (the Data tab's Export button): every battle as csv, jsonl or parquet,
                    with its datasheet; seconds (rows read included) and the file's size
  index_build       RouterSet.get("sw_ranking") from a store whose index is not built yet (the app's
                    first start; RouterSet.from_config puts the index beside the database)
  delete            Arena.delete_votes (the Data tab's admin delete): every arena vote, then
                    RouterSet.reload() (the online routers forget what they fitted)
  reload            the next sw_ranking request after the delete: the store read again, the persisted
                    index reloaded minus the deleted battles (and saved again), one prompt scored

Never asserts on time. Run:
    python benchmarks/app_scale.py                  (1M battles: ~9 min; peak RSS ~7.4 GB, the classifier refit)
    python benchmarks/app_scale.py --battles 50000  (a quick run)
Work files (store, index, exports) go under $TMPDIR/routellm_demo_app_scale and are removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sw_latency import add_resampled_battles, real_battles, rss_mb  # noqa: E402  (the 1M benchmarks' store)

from routellm_demo.config import load_config  # noqa: E402
from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.store import open_store  # noqa: E402

WORK = Path(tempfile.gettempdir()) / "routellm_demo_app_scale"
ARENA_SHARE = 0.1  # of the battles stored as arena votes: what the admin delete removes
ADMIN_TOKEN = "app-scale-bench"
PEAKS: list[float] = []  # each stage's peak RSS in this process (MB)


def peak_mb() -> float:
    """This process's RSS high-water mark (VmHWM) since the last :func:`reset_peak`."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def reset_peak() -> None:
    """Restart the high-water mark at the current RSS (Linux), so each stage reports its own peak. It is
    also what the kernel reports at exit (ru_maxrss): ``/usr/bin/time`` then under-reports this process."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def app_config(db: Path):
    """The app's configuration (role map, sw_ranking's kernel, checkpoints) on this store."""
    return replace(load_config(None), db_path=db)


def open_app(db: Path):
    """Store, embedder and routers as ``build_runtime`` opens them (no seeding, no model servers)."""
    from routellm_demo.router_set import RouterSet

    config = app_config(db)
    store = open_store(db, count_flagged=config.count_flagged_votes)
    embedder = Embedder(store, cache_dir=config.model_cache_dir)
    return config, store, embedder, RouterSet.from_config(store, embedder, config)


def build_store(db: Path, n: int, seed: int = 0) -> int:
    """``n`` battles over the real prompts (cached embeddings), as sw_latency's ``--store``; a tenth are
    arena votes. Returns how many arena votes were stored."""
    store = open_store(db)
    try:
        return add_resampled_battles(store, real_battles(), n, np.random.default_rng(seed), ARENA_SHARE)
    finally:
        store.close()


def refit_child(db: Path, name: str, n: int) -> None:
    """In the child process: one refit as the app's background thread runs it, then its line."""
    from routellm_demo.refresh import Refresher

    _, store, embedder, routers = open_app(db)
    refresher = Refresher(routers, store, embedder, names=(name,))
    rss0 = rss_mb()
    start = time.perf_counter()
    (version,) = refresher.refit_now()
    seconds = time.perf_counter() - start
    print(f"app_scale N={n} stage=refit_{name} seconds={seconds:.1f} load_s={seconds - version.fit_seconds:.1f} "
          f"fit_s={version.fit_seconds:.1f} trained_on={version.n_battles} rss_before_mb={rss0:.0f} "
          f"peak_rss_mb={peak_mb():.0f}", flush=True)


def refit(db: Path, name: str, n: int, timeout_s: float, max_mb: float) -> float:
    """Runs :func:`refit_child` in a child process, watching its RSS; stops it past either limit and
    says so. Returns the child's largest RSS seen (MB)."""
    cmd = [sys.executable, __file__, "--refit-child", name, "--db", str(db), "--battles", str(n)]
    child = subprocess.Popen(cmd)
    start, seen, reason = time.perf_counter(), 0.0, None
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                seen = max(seen, next((int(x.split()[1]) for x in f if x.startswith("VmRSS")), 0) / 1024)
        except OSError:
            pass
        elapsed = time.perf_counter() - start
        reason = "time" if elapsed > timeout_s else "memory" if seen > max_mb else None
        if reason:
            child.kill()
            child.wait()
            print(f"app_scale N={n} stage=refit_{name} status=stopped reason={reason} seconds={elapsed:.0f} "
                  f"rss_seen_mb={seen:.0f} limits=({timeout_s:.0f}s,{max_mb:.0f}MB)", flush=True)
            return seen
        time.sleep(0.5)
    if child.returncode:
        print(f"app_scale N={n} stage=refit_{name} status=failed returncode={child.returncode}", flush=True)
    return seen


def timed(label: str, n: int, fn, **extra) -> object:
    """Runs ``fn()`` and prints its stage line: seconds, RSS growth and the stage's peak RSS."""
    gc.collect()
    reset_peak()
    rss0 = rss_mb()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    PEAKS.append(peak_mb())
    fields = " ".join(f"{k}={v(result) if callable(v) else v}" for k, v in extra.items())
    print(f"app_scale N={n} stage={label} seconds={seconds:.1f} rss_growth_mb={rss_mb() - rss0:.0f} "
          f"peak_rss_mb={PEAKS[-1]:.0f} {fields}".rstrip(), flush=True)
    return result


def main(n: int, timeout_s: float, max_mb: float) -> None:
    from routellm_demo.arena import Arena
    from routellm_demo.export import EXPORT_FORMATS
    from routellm_demo.router_set import load_battles

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    db = WORK / f"store_{n}.db"
    try:
        arena_votes = timed("store_build", n, lambda: build_store(db, n), arena_votes=lambda v: v,
                            db_mb=lambda _: f"{db.stat().st_size / 2**20:.0f}")
        config, store, embedder, routers = open_app(db)
        timed("load_battles", n, lambda: load_battles(store, embedder, role_map=routers.role_map))
        gc.collect()
        child_peaks = [refit(db, name, n, timeout_s, max_mb) for name in ("mf", "classifier")]

        timed("read_rows", n, lambda: len(store.battles(include_flagged=True)))
        os.environ["ROUTELLM_DEMO_ADMIN_TOKEN"] = ADMIN_TOKEN  # this process only: enables the admin delete
        arena = Arena(config, store, embedder, routers, controller=None)  # export and delete need no models
        for fmt in EXPORT_FORMATS:
            timed(f"export_{fmt}", n, lambda: arena.export(fmt, WORK / "exports"),
                  file_mb=lambda p: f"{p.stat().st_size / 2**20:.0f}")

        prompt = "What is 15% of $240?"
        query = embedder.embed([prompt])
        indexed = lambda _: getattr(routers.get("sw_ranking"), "index_", None) is not None  # noqa: E731
        timed("index_build", n, lambda: routers.score("sw_ranking", query, [prompt]), indexed=indexed)
        timed("delete", n, lambda: arena.delete_votes(ADMIN_TOKEN), deleted=lambda d: d["votes"])
        timed("reload", n, lambda: routers.score("sw_ranking", query, [prompt]), indexed=indexed,
              battles=lambda _: len(routers.battles()))
        print(f"app_scale_machine cores={os.cpu_count()} load_avg_1min={os.getloadavg()[0]:.1f} "
              f"arena_votes={arena_votes} peak_rss_mb={max(PEAKS):.0f} "
              f"refit_child_rss_seen_mb={max(child_peaks):.0f}", flush=True)
        store.close()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=1_000_000, help="battles in the store (default 1,000,000)")
    parser.add_argument("--refit-timeout", type=float, default=600.0, help="seconds before a refit is stopped")
    parser.add_argument("--refit-max-gb", type=float, default=12.0, help="RSS (GB) at which a refit is stopped")
    parser.add_argument("--refit-child", help=argparse.SUPPRESS)  # internal: the refit's child process
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.refit_child:
        refit_child(args.db, args.refit_child, args.battles)
    else:
        main(args.battles, args.refit_timeout, args.refit_max_gb * 1024)
