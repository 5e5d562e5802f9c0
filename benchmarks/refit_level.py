"""How far a refit moves the classifier's scores on a domain it did not change: the store of the issue-18
protocol (every gold battle but moral_disputes' and GSM8K's), fitted whole and with a random 2% of its
battles left out (``--draws`` draws), for each learning-rate schedule. Printed per draw: the share of GSM8K's
prompts above the whole fit's median score (.50 if the refit kept the level) and the mean score shift.

Run: python benchmarks/refit_level.py [--draws 5] [--left-out 0.02] [--data-dir ../shared/data/routellm]
     [--cache-db data/eval_cache.db]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from vote_locality import load  # noqa: E402

from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.evals.benchmarks import gold_battles  # noqa: E402
from routellm_demo.replay import DEFAULT_CACHE_DB  # noqa: E402
from routellm_demo.routers.classifier import ClassifierRouter  # noqa: E402
from routellm_demo.routers.numeric import SCHEDULES  # noqa: E402
from routellm_demo.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--left-out", type=float, default=0.02)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "routellm"))
    parser.add_argument("--cache-db", default=str(ROOT / DEFAULT_CACHE_DB))
    args = parser.parse_args()
    with Store(args.cache_db) as cache:
        _, watched, store = load(args.data_dir, "moral_disputes", Embedder(cache))
    battles, texts = gold_battles(store), list(watched.prompts)
    for schedule in SCHEDULES:
        whole = ClassifierRouter(lr_schedule=schedule).fit(battles).win_probability(watched.embeddings, texts)
        cells = []
        for draw in range(args.draws):
            kept = np.flatnonzero(np.random.default_rng(draw).random(len(battles)) > args.left_out)
            moved = ClassifierRouter(lr_schedule=schedule).fit(battles.subset(kept)).win_probability(
                watched.embeddings, texts)
            cells.append(f"{np.mean(moved > np.median(whole)):.2f} ({(moved - whole).mean():+.3f})")
        print(f"lr_schedule={schedule} left_out={args.left_out:g} gsm8k_strong_share_at_old_median (mean shift): "
              + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
