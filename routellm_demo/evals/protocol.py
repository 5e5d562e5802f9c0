"""The honest protocol: a router is never scored on a prompt it was trained on.

Two ways to get such scores:

- :func:`train_test_scores`: train on a separate folder's gold battles (``--train-dir``); eval prompts
  whose text also appears in the training data are dropped first (:func:`drop_leaked`), and counted;
- :func:`cross_validated_scores`: grouped K-fold inside the evaluated benchmark (MMLU by subject,
  MT-Bench by question, GSM8K by row): each fold is scored by routers fitted on the other folds,
  optionally plus the gold battles of the *other* benchmarks.

Grouping matters: MMLU questions of one subject resemble each other, so a router trained on the same
subject's other questions would be scored on near-copies of its training set, and look better than it
will on a new kind of prompt. Every fit goes through :func:`check_no_leakage`, so a bug in the fold
bookkeeping fails loudly instead of inflating the numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from routellm_demo.evals.benchmarks import EvalError, EvalSet, concat

# A fitter turns the training prompts (gold qualities, embeddings) into a fitted router.
Fitter = Callable[[EvalSet], object]


class LeakageError(EvalError):
    """An evaluated prompt is also in the training data."""


def _key(prompt: str) -> str:
    """Prompts are compared as RouteLLM's contamination lists do: exact text up to outer whitespace."""
    return prompt.strip()


def leaked(eval_prompts: Iterable[str], train_prompts: Iterable[str]) -> np.ndarray:
    """Mask over ``eval_prompts``: True where the same text is in ``train_prompts``."""
    train = {_key(p) for p in train_prompts}
    return np.array([_key(p) in train for p in eval_prompts], dtype=bool)


def check_no_leakage(eval_prompts: Iterable[str], train_prompts: Iterable[str]) -> None:
    """Raise LeakageError if any evaluated prompt is among the training prompts."""
    eval_prompts = list(eval_prompts)
    mask = leaked(eval_prompts, train_prompts)
    if mask.any():
        first = eval_prompts[int(np.flatnonzero(mask)[0])]
        raise LeakageError(f"{int(mask.sum())} evaluated prompt(s) are in the training data, e.g. {first[:80]!r}")


def drop_leaked(evalset: EvalSet, train_prompts: Iterable[str]) -> tuple[EvalSet, int]:
    """The eval set without prompts found in the training data, and how many were dropped."""
    mask = leaked(evalset.prompts, train_prompts)
    return evalset.subset(~mask), int(mask.sum())


def grouped_folds(groups, k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) per item; a group never spans two folds; folds as equal in size as possible.

    Groups are shuffled (seeded), then placed largest first into the currently smallest fold, which is
    scikit-learn's GroupKFold balancing with a reproducible shuffle on top.
    """
    groups = np.asarray(groups, dtype=object)
    labels, inverse, sizes = np.unique(groups.astype(str), return_inverse=True, return_counts=True)
    k = int(k)
    if k < 2:
        raise EvalError(f"need at least 2 folds, got {k}")
    if len(labels) < 2:
        raise EvalError(f"cross-validation needs at least 2 groups, the data has {len(labels)}")
    k = min(k, len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_group = np.empty(len(labels), dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[inverse.ravel()]


@dataclass
class Scores:
    """Out-of-sample scores per router label, over the evaluated set, and what was done to get them.

    folds: the CV fold of each prompt (each fold scored by its own fitted router), None when one
    router scored everything.
    """

    evalset: EvalSet
    scores: dict[str, np.ndarray]
    report: dict = field(default_factory=dict)
    folds: np.ndarray | None = None


def _without(extra: EvalSet | None, prompts: list[str]) -> tuple[EvalSet | None, int]:
    """Extra training data minus any prompt that is also being evaluated."""
    if extra is None or len(extra) == 0:
        return None, 0
    mask = leaked(extra.prompts, prompts)
    kept = extra.subset(~mask)
    return (kept if len(kept) else None), int(mask.sum())


def cross_validated_scores(
    evalset: EvalSet, fitters: dict[str, Fitter], *, k: int = 5, seed: int = 0,
    extra: EvalSet | None = None, progress: bool = False,
) -> Scores:
    """Grouped K-fold scores: each fold scored by routers fitted on the other folds (+ ``extra``).

    ``extra`` (e.g. the other benchmarks' gold data) joins every fold's training set; any of its
    prompts that also occur in ``evalset`` are removed first, so they cannot leak.
    """
    if evalset.embeddings is None:
        raise ValueError("embed the eval set first (benchmarks.with_embeddings)")
    folds = grouped_folds(evalset.groups, k, seed)
    n_folds = int(folds.max()) + 1
    extra, extra_dropped = _without(extra, evalset.prompts)
    scores = {label: np.full(len(evalset), np.nan) for label in fitters}
    seconds = dict.fromkeys(fitters, 0.0)
    bar = tqdm(total=n_folds * len(fitters), desc=f"{evalset.benchmark}: {n_folds}-fold CV", unit="fit",
               disable=not progress)
    with bar:
        for f in range(n_folds):
            test = folds == f
            train = evalset.subset(~test)
            if extra is not None:
                train = concat([train, extra])
            held_out = evalset.subset(test)
            check_no_leakage(held_out.prompts, train.prompts)
            for label, fitter in fitters.items():
                bar.set_postfix_str(f"fold {f + 1}: {label}")
                start = time.perf_counter()
                router = fitter(train)
                scores[label][test] = router.win_probability(held_out.embeddings, held_out.prompts)
                seconds[label] += time.perf_counter() - start
                bar.update(1)
    report = {
        "protocol": f"grouped {n_folds}-fold cross-validation",
        "folds": n_folds,
        "groups": int(len(set(map(str, evalset.groups)))),
        "extra_training_prompts": 0 if extra is None else len(extra),
        "extra_dropped_as_eval_prompts": extra_dropped,
        "seconds": {label: round(t, 2) for label, t in seconds.items()},
    }
    return Scores(evalset, scores, report, folds)


def train_test_scores(
    evalset: EvalSet, train: EvalSet, fitters: dict[str, Fitter], *, progress: bool = False,
) -> Scores:
    """Fit every router once on ``train``; score ``evalset`` minus the prompts ``train`` holds."""
    if evalset.embeddings is None or train.embeddings is None:
        raise ValueError("embed both sets first (benchmarks.with_embeddings)")
    kept, dropped = drop_leaked(evalset, train.prompts)
    if len(kept) == 0:
        raise EvalError(f"every one of the {len(evalset)} eval prompts is also in the training data: "
                        "--train-dir must hold different prompts than --data-dir")
    check_no_leakage(kept.prompts, train.prompts)
    scores, seconds = {}, {}
    for label, fitter in tqdm(fitters.items(), desc=f"{evalset.benchmark}: train/test", unit="router",
                              disable=not progress):
        start = time.perf_counter()
        scores[label] = np.asarray(fitter(train).win_probability(kept.embeddings, kept.prompts), dtype=np.float64)
        seconds[label] = round(time.perf_counter() - start, 2)
    report = {"protocol": "separate training folder", "training_prompts": len(train),
              "eval_prompts_dropped_as_in_training": dropped, "seconds": seconds}
    return Scores(kept, scores, report)
