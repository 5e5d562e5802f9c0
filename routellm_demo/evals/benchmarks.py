"""A RouteLLM benchmark folder -> an :class:`EvalSet`, and its gold strong-vs-weak battles.

Parsing is the importers' (one reader per benchmark, so the store and the evaluation read the files
alike); this module only turns their rows into per-prompt quality: MMLU and GSM8K accuracy (1/0 per
model), MT-Bench the judge's mean score over both turns. Contamination lists are applied as RouteLLM
does (an MT-Bench question goes if either turn is listed), so no router is scored on a prompt that
its Arena training data may hold.

MT-Bench can also be read one turn at a time (``turn=1`` or ``turn=2``: that turn's judge scores). A
second turn is a follow-up ("Rewrite your previous response..."): its prompt is the second user
message and its :attr:`EvalSet.contexts` holds the first, so a router can be scored on the
conversation (:mod:`routellm_demo.conversation`) as well as on the last turn alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routellm_demo.battles import STRONG, WEAK, Battles
from routellm_demo.conversation import CONTEXT_WEIGHT, DEFAULT_MODE, routing_vectors
from routellm_demo.errors import UserError
from routellm_demo.importers import BENCHMARKS, STRONG_MODEL, WEAK_MODEL, DataFormatError, load_contamination
from routellm_demo.importers import _DIRS, _READERS, _listed, _prompt, _read_jsonl, _strip_set  # noqa: PLC2701

MT_BENCH_TURNS = (1, 2)  # ``load_benchmark("mt-bench", turn=...)``; None: the question, both turns' mean


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
    contexts: per prompt, the earlier user turns of its conversation (oldest first; () for a single
    turn), or None when every prompt stands alone (MMLU, GSM8K, MT-Bench read as questions).
    """

    benchmark: str
    prompts: list[str]
    strong_quality: np.ndarray
    weak_quality: np.ndarray
    groups: np.ndarray
    skipped_contaminated: int = 0
    embeddings: np.ndarray | None = None
    contexts: list[tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        self.strong_quality = np.asarray(self.strong_quality, dtype=np.float64)
        self.weak_quality = np.asarray(self.weak_quality, dtype=np.float64)
        self.groups = np.asarray(self.groups, dtype=object)
        n = len(self.prompts)
        if not (len(self.strong_quality) == len(self.weak_quality) == len(self.groups) == n):
            raise ValueError("EvalSet arrays differ in length")
        if self.embeddings is not None and len(self.embeddings) != n:
            raise ValueError(f"{len(self.embeddings)} embeddings for {n} prompts")
        if self.contexts is not None:
            self.contexts = [tuple(c) for c in self.contexts]
            if len(self.contexts) != n:
                raise ValueError(f"{len(self.contexts)} contexts for {n} prompts")

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
            None if self.contexts is None else [self.contexts[i] for i in idx],
        )

    def by_prompt(self) -> "EvalSet":
        """The same set with one CV group per distinct prompt text (MMLU's subjects then appear on both
        sides of a split, as in RouteLLM's own setting, which trained on MMLU's validation questions;
        conversations that share a turn stay together)."""
        out = self.subset(slice(None))
        out.groups = merge_duplicate_groups(
            self.prompts, [f"{b}:{p.strip()}" for b, p in zip(self.benchmarks(), self.prompts)], self.contexts)
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
        None if all(s.contexts is None for s in sets)
        else [c for s in sets for c in (s.contexts if s.contexts is not None else [()] * len(s))],
    )


def with_embeddings(evalset: EvalSet, embedder, *, context: str = DEFAULT_MODE, weight: float = CONTEXT_WEIGHT,
                    progress: bool = False) -> EvalSet:
    """The same set with its prompts' routing vectors (through the embedder's cache): each prompt's
    embedding, or in ``context`` mode "context" its conversation's (:mod:`routellm_demo.conversation`,
    the earlier turns weighing ``weight``)."""
    evalset.embeddings = routing_vectors(embedder, evalset.prompts, evalset.contexts, context, weight=weight,
                                         progress=progress)
    return evalset


def context_leaks(evalset: EvalSet, train_prompts) -> np.ndarray:
    """Mask over ``evalset``: True where an earlier turn of the prompt's conversation is itself a
    training prompt (e.g. MT-Bench's first turns in another folder's gold data). Routed on the
    conversation, such a prompt's vector holds a training prompt's embedding, so it must not be scored."""
    if evalset.contexts is None:
        return np.zeros(len(evalset), dtype=bool)
    train = {str(p).strip() for p in train_prompts}
    return np.array([any(t.strip() in train for t in c) for c in evalset.contexts], dtype=bool)


def without_context_turns(train: EvalSet, evalset: EvalSet) -> EvalSet:
    """``train`` without the prompts that are an earlier turn of one of ``evalset``'s conversations."""
    if evalset.contexts is None:
        return train
    turns = {t.strip() for c in evalset.contexts for t in c}
    return train.subset(np.array([p.strip() not in turns for p in train.prompts], dtype=bool))


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


def merge_duplicate_groups(prompts: list[str], groups, contexts=None) -> np.ndarray:
    """Relabel groups so that identical prompts share one (the first label seen wins). With
    ``contexts`` (each prompt's earlier turns), a text that is one prompt's earlier turn and another's
    prompt or earlier turn joins their groups too: a conversation's vector holds its earlier turns'."""
    parent: dict = {}

    def find(g):
        while parent.setdefault(g, g) != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    first: dict[str, object] = {}
    for i, (p, g) in enumerate(zip(prompts, groups)):
        for text in (p, *(() if contexts is None else contexts[i])):
            if text in first:
                ra, rb = find(first[text]), find(g)
                if ra != rb:
                    parent[rb] = ra
            else:
                first[text] = g
    return np.array([find(g) for g in groups], dtype=object)


def _mt_bench_turn_rows(bench_dir: Path, turn: int) -> list[dict]:
    """One row per MT-Bench question judged on ``turn`` for both models: that turn's user message as the
    prompt, the earlier ones as ``_context``, each model's judge score of that turn (-1, a failed
    judgement, drops the question)."""
    qpath, jpath = bench_dir / "question.jsonl", bench_dir / "judgements.jsonl"
    questions = {q.get("question_id"): q for q in _read_jsonl(qpath)}
    scores: dict[tuple, float] = {}
    for n, j in enumerate(_read_jsonl(jpath), 1):
        if not {"question_id", "model", "score"} <= j.keys():
            raise DataFormatError(f"{jpath}: line {n} lacks question_id/model/score")
        if "turn" not in j:
            raise DataFormatError(f"{jpath}: line {n} has no turn; per-turn evaluation needs judgements by turn")
        if j["model"] in (STRONG_MODEL, WEAK_MODEL) and int(j["turn"]) == turn:
            scores[(j["question_id"], j["model"])] = float(j["score"])
    rows = []
    for qid, q in questions.items():
        turns = q.get("turns")
        strong, weak = scores.get((qid, STRONG_MODEL)), scores.get((qid, WEAK_MODEL))
        if strong is None or weak is None or min(strong, weak) < 0 or not isinstance(turns, list) or len(turns) < turn:
            continue
        texts = [t for t in turns if isinstance(t, str)]
        rows.append({"prompt": _prompt(turns[turn - 1], qpath, qid), "_context": tuple(texts[:turn - 1]),
                     "_turns": texts, "meta": {"question_id": qid, "score_a": strong, "score_b": weak}})
    return rows


def load_benchmark(data_dir: str | Path, benchmark: str, *, turn: int | None = None,
                   progress: bool = False) -> EvalSet:
    """Read one benchmark from RouteLLM's layout, contamination lists applied. ``turn`` (MT-Bench only):
    score that turn alone, as a conversation (see the module docstring); the set is then named
    ``mt-bench-turn<turn>`` while its groups stay ``mt-bench:<question id>``."""
    check_data_dir(data_dir, benchmark)
    bench_dir = benchmark_dir(data_dir, benchmark)
    if turn is not None and (benchmark != "mt-bench" or turn not in MT_BENCH_TURNS):
        raise EvalError(f"--turn is for mt-bench only and must be one of {', '.join(map(str, MT_BENCH_TURNS))}; "
                        f"got {benchmark} turn {turn}")
    try:
        rows = _READERS[benchmark](bench_dir, progress) if turn is None else _mt_bench_turn_rows(bench_dir, turn)
    except FileNotFoundError as exc:
        raise EvalError(f"{bench_dir}: missing file {Path(exc.filename or '?').name}") from None
    listed = _contaminated_eval_prompts(bench_dir)
    keep = [r for r in rows if not any(_listed(t, listed) for t in r.get("_turns", [r["prompt"]]))]
    if not keep:
        raise EvalError(f"{bench_dir}: no {benchmark} prompt left to evaluate "
                        f"({len(rows)} read, {len(rows) - len(keep)} contaminated)")
    prompts = [r["prompt"] for r in keep]
    quality = np.array([_quality(benchmark, r) for r in keep], dtype=np.float64)
    contexts = None if turn is None else [r["_context"] for r in keep]
    groups = merge_duplicate_groups(prompts, [_group(benchmark, r) for r in keep], contexts)
    if turn is not None:
        return EvalSet(f"{benchmark}-turn{turn}", prompts, quality[:, 0], quality[:, 1], groups,
                       len(rows) - len(keep), contexts=contexts)
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
