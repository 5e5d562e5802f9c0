"""A RouteLLM benchmark folder -> an :class:`EvalSet`, and its gold strong-vs-weak battles.

Parsing is the importers' (one reader per benchmark, so the store and the evaluation read the files
alike); this module only turns their rows into per-prompt quality: MMLU and GSM8K accuracy (1/0 per
model), MT-Bench the judge's mean score over both turns. Contamination lists are applied as RouteLLM
does (an MT-Bench question goes if either turn is listed), so no router is scored on a prompt that
its Arena training data may hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routellm_demo.battles import STRONG, WEAK, Battles
from routellm_demo.errors import UserError
from routellm_demo.importers import BENCHMARKS, load_contamination
from routellm_demo.importers import _DIRS, _READERS, _listed, _strip_set  # noqa: PLC2701 (shared parsers)


class EvalError(UserError, ValueError):
    """The evaluation cannot run as asked (missing or foreign data folder, nothing left to score...)."""


# Per-model correctness encoded in a gold battle's winner (see importers.gold_winner).
_CORRECTNESS = {"model_a": (1.0, 0.0), "model_b": (0.0, 1.0), "tie": (1.0, 1.0), "tie (bothbad)": (0.0, 0.0)}


@dataclass
class EvalSet:
    """One benchmark as parallel arrays: what each model scores on each prompt.

    groups: a label per prompt for grouped cross-validation (MMLU subject, MT-Bench question, GSM8K
    row), prefixed by the benchmark ("mmlu:anatomy"); identical prompt texts always share a label, so
    a fold split never puts one prompt on both sides.
    embeddings: (n, d) prompt embeddings once computed (:func:`with_embeddings`), else None.
    """

    benchmark: str
    prompts: list[str]
    strong_quality: np.ndarray
    weak_quality: np.ndarray
    groups: np.ndarray
    skipped_contaminated: int = 0
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.strong_quality = np.asarray(self.strong_quality, dtype=np.float64)
        self.weak_quality = np.asarray(self.weak_quality, dtype=np.float64)
        self.groups = np.asarray(self.groups, dtype=object)
        n = len(self.prompts)
        if not (len(self.strong_quality) == len(self.weak_quality) == len(self.groups) == n):
            raise ValueError("EvalSet arrays differ in length")
        if self.embeddings is not None and len(self.embeddings) != n:
            raise ValueError(f"{len(self.embeddings)} embeddings for {n} prompts")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def q_strong(self) -> float:
        return float(self.strong_quality.mean())

    @property
    def q_weak(self) -> float:
        return float(self.weak_quality.mean())

    def subset(self, mask_or_index) -> "EvalSet":
        idx = np.arange(len(self))[mask_or_index]
        return EvalSet(
            self.benchmark, [self.prompts[i] for i in idx], self.strong_quality[idx], self.weak_quality[idx],
            self.groups[idx], self.skipped_contaminated,
            None if self.embeddings is None else self.embeddings[idx],
        )

    def by_prompt(self) -> "EvalSet":
        """The same set with one CV group per distinct prompt text (MMLU's subjects then appear on both
        sides of a split, as in RouteLLM's own setting, which trained on MMLU's validation questions)."""
        out = self.subset(slice(None))
        out.groups = np.array([f"{self.benchmark}:{p.strip()}" for p in self.prompts], dtype=object)
        return out

    def benchmarks(self) -> np.ndarray:
        """The benchmark of each prompt (from its group prefix), for sets pooled across benchmarks."""
        return np.array([str(g).split(":", 1)[0] for g in self.groups], dtype=object)


def concat(sets: list[EvalSet]) -> EvalSet:
    """Pool several sets (e.g. the gold data of every benchmark) into one; embeddings all or none."""
    if not sets:
        raise ValueError("nothing to concatenate")
    with_emb = [s.embeddings is not None for s in sets]
    if any(with_emb) and not all(with_emb):
        raise ValueError("either every set has embeddings or none")
    return EvalSet(
        "+".join(dict.fromkeys(s.benchmark for s in sets)),
        [p for s in sets for p in s.prompts],
        np.concatenate([s.strong_quality for s in sets]),
        np.concatenate([s.weak_quality for s in sets]),
        np.concatenate([s.groups for s in sets]),
        sum(s.skipped_contaminated for s in sets),
        np.concatenate([s.embeddings for s in sets]) if all(with_emb) else None,
    )


def with_embeddings(evalset: EvalSet, embedder, *, progress: bool = False) -> EvalSet:
    """The same set with its prompts embedded (through the embedder's cache)."""
    evalset.embeddings = embedder.embed(evalset.prompts, progress=progress)
    return evalset


def benchmark_dir(data_dir: str | Path, benchmark: str) -> Path:
    if benchmark not in BENCHMARKS:
        raise EvalError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    return Path(data_dir) / _DIRS[benchmark]


def available_benchmarks(data_dir: str | Path) -> list[str]:
    """Benchmarks whose folder exists in ``data_dir`` (RouteLLM's ``routellm/evals`` layout)."""
    return [b for b in BENCHMARKS if benchmark_dir(data_dir, b).is_dir()]


def check_data_dir(data_dir: str | Path, benchmark: str | None = None) -> Path:
    """The folder as a Path, or an EvalError that says what was expected there."""
    path = Path(data_dir)
    if not path.is_dir():
        raise EvalError(f"no data folder at {path}: give RouteLLM's evals folder (with mmlu/, gsm8k/, mt_bench/)")
    found = available_benchmarks(path)
    if not found:
        raise EvalError(f"{path} does not look like RouteLLM's evals folder: none of mmlu/, gsm8k/, mt_bench/ in it")
    if benchmark is not None and benchmark not in found:
        raise EvalError(f"{path} has no {_DIRS[benchmark]}/ folder for {benchmark}; it holds: {', '.join(found)}")
    return path


def _contaminated_eval_prompts(bench_dir: Path) -> set[str]:
    listed = bench_dir / "contaminated_prompts.jsonl"
    return _strip_set(load_contamination(listed)[1]) if listed.is_file() else set()


def _quality(bench: str, row: dict) -> tuple[float, float]:
    if bench == "mt-bench":
        return float(row["meta"]["score_a"]), float(row["meta"]["score_b"])
    return _CORRECTNESS[row["winner"]]


def _group(bench: str, row: dict) -> str:
    meta = row["meta"]
    key = {"mmlu": "subject", "gsm8k": "row", "mt-bench": "question_id"}[bench]
    return f"{bench}:{meta[key]}"


def merge_duplicate_groups(prompts: list[str], groups) -> np.ndarray:
    """Relabel groups so that identical prompts share one (the first label seen wins)."""
    parent: dict = {}

    def find(g):
        while parent.setdefault(g, g) != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    first: dict[str, object] = {}
    for p, g in zip(prompts, groups):
        if p in first:
            ra, rb = find(first[p]), find(g)
            if ra != rb:
                parent[rb] = ra
        else:
            first[p] = g
    return np.array([find(g) for g in groups], dtype=object)


def load_benchmark(data_dir: str | Path, benchmark: str, *, progress: bool = False) -> EvalSet:
    """Read one benchmark from RouteLLM's layout, contamination lists applied."""
    check_data_dir(data_dir, benchmark)
    bench_dir = benchmark_dir(data_dir, benchmark)
    try:
        rows = _READERS[benchmark](bench_dir, progress)
    except FileNotFoundError as exc:
        raise EvalError(f"{bench_dir}: missing file {Path(exc.filename or '?').name}") from None
    listed = _contaminated_eval_prompts(bench_dir)
    keep = [r for r in rows if not any(_listed(t, listed) for t in r.get("_turns", [r["prompt"]]))]
    if not keep:
        raise EvalError(f"{bench_dir}: no {benchmark} prompt left to evaluate "
                        f"({len(rows)} read, {len(rows) - len(keep)} contaminated)")
    prompts = [r["prompt"] for r in keep]
    quality = np.array([_quality(benchmark, r) for r in keep], dtype=np.float64)
    groups = merge_duplicate_groups(prompts, [_group(benchmark, r) for r in keep])
    return EvalSet(benchmark, prompts, quality[:, 0], quality[:, 1], groups, len(rows) - len(keep))


def gold_outcomes(evalset: EvalSet) -> np.ndarray:
    """Strong-side outcome per prompt: 1 strong strictly better, 0 weak strictly better, else 0.5."""
    diff = evalset.strong_quality - evalset.weak_quality
    return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))


def gold_battles(evalset: EvalSet) -> Battles:
    """One strong-vs-weak battle per prompt (strong as side a), with the set's embeddings and texts."""
    n = len(evalset)
    return Battles([STRONG, WEAK], np.zeros(n), np.ones(n), gold_outcomes(evalset), evalset.embeddings,
                   prompts=evalset.prompts)
