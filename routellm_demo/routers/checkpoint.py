"""Router checkpoints and model cards.

A checkpoint is ONE ``.npz`` file: the learned arrays plus a JSON ``meta`` string (router kind,
hyperparameters, training-set size, players). No pickle, so loading a checkpoint someone handed you
cannot run code, and the file stays small enough to ship in a repository or a release.
The model card is a short Markdown file beside it, so whoever finds the weights also finds what they
were trained on, how, and what they are (not) good for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from routellm_demo.prompt_features import CHOICE_FEATURE_NAMES, FEATURE_NAMES
from routellm_demo.routers import registry

FORMAT = "routellm_demo.router/1"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2, its first 2 of 6 layers, mean-pooled"


def save_checkpoint(path, kind: str, hyperparameters: Mapping, arrays: Mapping[str, np.ndarray], **extra) -> Path:
    """Write arrays and a JSON meta record to ``path`` (a .npz). Returns the path actually written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if "meta" in arrays:
        raise ValueError('"meta" is reserved in a checkpoint')
    meta = {"format": FORMAT, "kind": kind, "hyperparameters": dict(hyperparameters), **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # an open file stops numpy from appending a second ".npz"
        np.savez_compressed(f, meta=np.array(json.dumps(meta)), **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def load_checkpoint(path, kind: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read ``(meta, arrays)`` from a checkpoint; with ``kind``, refuse a checkpoint of another router."""
    with np.load(Path(path), allow_pickle=False) as z:
        if "meta" not in z.files:
            raise ValueError(f"{path} is not a router checkpoint (no meta record)")
        meta = json.loads(str(z["meta"]))
        arrays = {k: z[k] for k in z.files if k != "meta"}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {meta.get('format')!r}, expected {FORMAT!r}")
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{path} holds a {meta.get('kind')!r} router, not {kind!r}")
    return meta, arrays


def load_router(path):
    """Load whichever router a checkpoint holds (dispatch on its ``kind``)."""
    meta, _ = load_checkpoint(path)
    if meta["kind"] not in registry.CHECKPOINTED:
        raise ValueError(f"{path}: no router class for kind {meta['kind']!r}")
    return registry.get(meta["kind"]).cls.load(path)


def _summary(router) -> str:
    """The first line of the router class's docstring: what kind of model this is."""
    doc = (type(router).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else type(router).__name__


def _players_line(players, shown: int = 8) -> str:
    """Which players the router learned vectors for (an arena fit may have hundreds: show a few)."""
    more = f", ... ({len(players) - shown} more)" if len(players) > shown else ""
    return f"- Players: {len(players)}: " + ", ".join(f"`{p}`" for p in players[:shown]) + more


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_model_card(
    path,
    router,
    *,
    data_description: str,
    command: str,
    metrics: Mapping[str, object],
    checkpoint: str | None = None,
) -> Path:
    """Write a short Markdown model card for a fitted router; returns its path.

    ``path`` is the card's own path (e.g. ``mf.md`` beside ``mf.npz``); ``metrics`` maps a metric
    name (say "held-out AUC, MMLU") to its value.
    """
    path = Path(path)
    info = router.info()
    params = router.get_params() if hasattr(router, "get_params") else {}
    lines = [
        f"# Model card: `{info['name']}` router",
        "",
        _summary(router),
        "",
        "## What it does",
        "",
        "Given a prompt (its embedding, and for the classifier a few counts read from its text), it",
        "estimates the probability that the *strong* model's answer beats the *weak* model's. The app",
        "sends the prompt to the strong model when that probability is at least the chosen threshold,",
        "so the threshold trades answer quality for cost.",
        "",
        "## Training",
        "",
        f"- Data: {data_description}",
        f"- Battles used: {info.get('n_battles', 0)}",
        *([_players_line(router.players_)] if getattr(router, "players_", None) else []),
        f"- Prompt embeddings: {EMBEDDING_MODEL} (384-d, L2-normalised), frozen",
        *([f"- Prompt features: {len(FEATURE_NAMES)} counts from the text (weight {params['text_weight']:g}): "
           + ", ".join(f"`{n}`" for n in FEATURE_NAMES)
           + ("; weighed separately for multiple-choice and open prompts" if params.get("split_by_options") else "")]
          if params.get("text_weight") else []),
        *([f"- Boosted trees (weight {params['tree_weight']:g} in the blend, multiple-choice prompts only) on those counts, "
           f"{len(CHOICE_FEATURE_NAMES)} multiple-choice features ("
           + ", ".join(f"`{n}`" for n in CHOICE_FEATURE_NAMES)
           + f") and the embedding's first {params.get('components')} principal axes"] if params.get("tree_weight") else []),
        "- Hyperparameters: " + ", ".join(f"`{k}={_fmt(v)}`" for k, v in params.items()),
        f"- Command: `{command}`",
    ]
    if checkpoint:
        lines.append(f"- Checkpoint: `{checkpoint}` (numpy .npz, no pickle)")
    lines += ["", "## Metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    else:
        lines.append("None recorded.")
    lines += [
        "",
        "## Intended use and limits",
        "",
        "- A demo of learned LLM routing (RouteLLM, arXiv 2406.18665): pick the strong or the weak model",
        "  per prompt. Not a judge of answer quality and not for decisions about people.",
        "- It knows only the two roles it was trained on: swapping the strong or weak model for another",
        "  invalidates it; refit on battles of the new pair.",
        "- It sees the prompt through a small sentence embedding (and surface counts), so it learns topic",
        "  and style of prompts, not how hard a particular question is. Expect modest gains over random",
        "  routing on prompts unlike its training data.",
        "- Win probabilities are fitted, not calibrated for a new domain: choose the threshold on",
        "  held-out prompts from the traffic you care about.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
