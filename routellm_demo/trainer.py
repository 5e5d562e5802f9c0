"""Train a checkpointed router (mf, classifier) from the store, measure it on held-out prompts,
and save it with its model card. This is what made the checkpoints shipped in ``data/checkpoints``."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from routellm_demo.routers import make_router
from routellm_demo.routers.checkpoint import write_model_card
from routellm_demo.battles import Battles
from routellm_demo.router_set import TrainingError, checkpoint_path


def heldout_mask(prompt_shas: list[str], fraction: float = 0.2) -> np.ndarray:
    """A deterministic split by prompt: the same prompt never sits on both sides."""
    return np.array([int(hashlib.sha256(s.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction for s in prompt_shas])


def heldout_metrics(router, battles, mask: np.ndarray) -> dict:
    """AUC of the score against "strong strictly better", on strong-vs-weak held-out battles."""
    from sklearn.metrics import roc_auc_score

    y = battles.strong_outcome()
    keep = mask & ~np.isnan(y) & (y != 0.5)
    if keep.sum() < 2 or len(set(y[keep])) < 2:
        return {"heldout_battles": int(keep.sum())}
    held_out = battles.subset(keep)
    scores = router.win_probability(held_out.embeddings, held_out.prompts)
    return {"heldout_battles": int(keep.sum()), "heldout_auc": round(float(roc_auc_score(y[keep], scores)), 4)}


def train_and_save(rt, name: str, *, out_dir: Path, sources=None, command: str = "") -> dict:
    # ONE read of the store: the battles, the hold-out mask and the card's counts all describe the same
    # rows, even while another process (the app taking votes) writes to the store meanwhile
    rows = rt.store.battles() if not sources else sorted(
        (r for s in sources for r in rt.store.battles(source=s)), key=lambda r: r["id"])
    if not rows:
        raise TrainingError("the store holds no battles to train on; run `python -m routellm_demo import ...` first")
    embeddings = rt.embedder.embed([r["prompt"] for r in rows], progress=True)
    battles = Battles.from_records(rows, embeddings=embeddings, role_map=rt.config.role_map)
    mask = heldout_mask([r["prompt_sha256"] for r in rows])
    start = time.perf_counter()
    # held-out: 20% of prompts chosen by hash, never in the fit that is measured; the saved router then
    # refits on everything
    metrics = heldout_metrics(make_router(name).fit(battles.subset(~mask)), battles, mask)
    router = make_router(name).fit(battles)
    metrics["train_seconds"] = round(time.perf_counter() - start, 1)
    metrics["battles"] = len(battles)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(out_dir, name)
    router.save(path)
    description = ", ".join(f"{n} battles from {s}" for s, n in sorted(counts.items()))
    write_model_card(path.with_suffix(".md"), router, data_description=description, command=command, metrics=metrics)
    return {"router": name, "checkpoint": str(path), **metrics}
