"""What-if on your own traffic: a file of prompts, two prices -> what routing them would cost and keep.

A stakeholder brings their prompts (text lines, JSONL or CSV with a ``prompt`` column) and the two
models' prices. :func:`read_prompts` reads and checks the file (one :class:`WhatIfError` naming the row
and the problem for a bad one); :func:`what_if` embeds the prompts, scores them with a router and
returns a :class:`WhatIfResult`: the scores' distribution, and for every threshold the share of strong
calls, the projected cost per 1,000 requests, the saving against always-strong, and the quality
*estimated* at that strong share from a benchmark's held-out evaluation (``data/eval/<benchmark>/
metrics.json``, read at the same share of strong calls, not at the same threshold: a threshold means
something only for one score distribution).

Privacy: the prompts never reach the store. They are embedded with
:meth:`~routellm_demo.embeddings.Embedder.embed_private` (no cache read or write), scored by a router
(which only reads), and live in the returned object until the caller drops it. The shells delete the
uploaded file after the run; nothing here writes anywhere except :meth:`WhatIfResult.write_csv` and
:meth:`WhatIfResult.write_plot`, to a path the caller gives.

What it projects is routing only: every request is answered by the model the router picks, once
(no fallback to the other model, no retries), with the answer length the caller assumes.

Past 500 lines because reading the file, pricing, the quality estimate and the result's views (table,
histogram, CSV, plot) are one feature that the CLI and the app share; each part is short.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from routellm_demo.errors import UserError

WHATIF_MAX_BYTES = 10 * 1024 * 1024  # an upload cap of its own: 10,000 prompts are ~5 MB
WHATIF_MAX_PROMPTS = 20_000
DEFAULT_ANSWER_TOKENS = 300
MAX_ANSWER_TOKENS = 1_000_000
CHAT_OVERHEAD_TOKENS = 4  # per message, as the endpoints estimate a chat prompt with no usage reported
FORMATS = ("txt", "jsonl", "csv")
BENCHMARKS = ("mmlu", "gsm8k", "mt-bench")
THRESHOLD_GRID = tuple(round(i / 100, 2) for i in range(101))  # 0.00, 0.01, ..., 1.00
HISTOGRAM_BINS = 20
PREVIEW_CHARS = 80
SCORE_CHUNK = 1000  # prompts scored per router call (progress, and the router's lock held briefly)
# RouteLLM's prices (USD per 1M tokens, paper section 5.2), the eval command's defaults too (kept equal
# by a test; importing them from there would cost the app seconds of pandas at start).
DEFAULT_STRONG_PRICE = 24.7
DEFAULT_WEAK_PRICE = 0.24
# When a benchmark's evaluation has no curve for the router used: the nearest in kind, in order.
CLOSEST_ROUTERS = {
    "classifier": ("mf", "sw_ranking"),
    "mf": ("classifier", "sw_ranking"),
    "sw_ranking": ("mf", "classifier"),
    "elo": ("random",),
    "random": ("elo",),
}
FALLBACK_ORDER = ("classifier", "mf", "sw_ranking", "elo", "random")
QUALITY_UNITS = {"mmlu": "accuracy (0-1)", "gsm8k": "accuracy (0-1)", "mt-bench": "GPT-4 judge score (1-10)"}
COLUMN_TITLES = {
    "threshold": "threshold", "strong_calls": "strong calls", "strong_pct": "strong calls (%)",
    "cost_per_1k": "cost per 1,000 requests (USD)", "savings_pct": "saved vs always-strong (%)",
    "est_quality": "estimated quality",
}

Progress = Callable[[int, int, str], None]


class WhatIfError(UserError, ValueError):
    """A prompt file or a what-if setting that cannot be used; the message names the row and the
    problem, in one line. Nothing stored changes."""

    status = 400


# ---- reading the file --------------------------------------------------------------------------


@dataclass
class PromptFile:
    """The prompts of one file, in file order, with where each came from: ``rows[i]`` is the line
    number (.txt, .jsonl) or the row number counting the header as row 1 (.csv) of ``prompts[i]``."""

    prompts: list[str]
    rows: list[int]
    format: str
    name: str = "prompts"

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def row_label(self) -> str:
        return "row" if self.format == "csv" else "line"


def _format_of(name: str | None, fmt: str | None) -> str:
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS:
            raise WhatIfError(f"unknown prompt file format {fmt!r}; use one of: {', '.join(FORMATS)}")
        return fmt
    suffix = Path(name or "").suffix.lower().lstrip(".")
    suffix = {"text": "txt", "ndjson": "jsonl"}.get(suffix, suffix)
    if suffix in FORMATS:
        return suffix
    raise WhatIfError(f"{Path(name or 'the file').name}: give a .txt (one prompt per line), .jsonl (a \"prompt\" "
                      f"field per line) or .csv (a \"prompt\" column) file")


def _read_bytes(source, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise WhatIfError(f"{path.name} is {size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:g} MiB: "
                                  "split the file")
            with open(path, "rb") as f:
                raw = f.read(max_bytes + 1)
        except OSError as exc:
            raise WhatIfError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise WhatIfError(f"the file is over {max_bytes / 2**20:g} MiB; split it")
    return raw


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)  # utf-8-sig counts after the BOM
        line = raw[:start].count(b"\n") + 1
        raise WhatIfError(f"{name} line {line}: not valid UTF-8 (byte {start}); save the file as UTF-8") from None


def _check_prompt(prompt, where: str, max_chars: int) -> str:
    if not isinstance(prompt, str):
        raise WhatIfError(f"{where}: the prompt must be text, got {type(prompt).__name__}")
    if not prompt.strip():
        raise WhatIfError(f"{where}: the prompt is empty")
    if len(prompt) > max_chars:
        raise WhatIfError(f"{where}: the prompt has {len(prompt):,} characters; the limit is {max_chars:,}")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise WhatIfError(f"{where}: the prompt holds invalid text (a lone surrogate); fix or remove it") from None
    return prompt


def _lines(text: str):
    """(line number, line) per line; only "\\n" (and "\\r\\n") end a line, as in an editor."""
    for number, line in enumerate(text.split("\n"), 1):
        yield number, line[:-1] if line.endswith("\r") else line


def _records(text: str, fmt: str, name: str):
    """(row number, prompt as found) per record of the file, in order."""
    if fmt == "txt":
        for number, line in _lines(text):
            if line.strip():
                yield number, line
    elif fmt == "jsonl":
        for number, line in _lines(text):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise WhatIfError(f"{name} line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise WhatIfError(f"{name} line {number}: expected a JSON object with a \"prompt\" field, "
                                  f"got a {type(obj).__name__}")
            if "prompt" not in obj:
                raise WhatIfError(f"{name} line {number}: no \"prompt\" field")
            yield number, obj["prompt"]
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
        number = 1  # the header's row; a record's row number counts records, not physical lines
        try:
            header = next(reader, None)
            if header is None:
                raise WhatIfError(f"{name}: the file is empty; the first row must name a \"prompt\" column")
            names = [h.strip().lower() for h in header]
            if "prompt" not in names:
                shown = ", ".join(repr(h) for h in header[:8]) + (", ..." if len(header) > 8 else "")
                raise WhatIfError(f"{name}: no \"prompt\" column in the header row (it has: {shown or 'nothing'})")
            column = names.index("prompt")
            for record in reader:
                number += 1
                if not record:
                    continue  # a blank line between rows
                if column >= len(record):
                    raise WhatIfError(f"{name} row {number}: no value in the \"prompt\" column "
                                      f"({len(record)} field(s), the prompt is field {column + 1})")
                yield number, record[column]
        except csv.Error as exc:
            raise WhatIfError(f"{name} row {number + 1}: unreadable CSV ({exc})") from None


def read_prompts(
    source, *, name: str | None = None, fmt: str | None = None, max_chars: int = 8000,
    max_prompts: int = WHATIF_MAX_PROMPTS, max_bytes: int = WHATIF_MAX_BYTES,
) -> PromptFile:
    """The prompts of a file: ``source`` is a path, or the file's bytes (then give ``name`` or ``fmt``).

    The format comes from ``fmt`` ("txt", "jsonl", "csv") or the name's suffix: .txt, one prompt per
    line (blank lines skipped); .jsonl, one JSON object per line with a "prompt" string; .csv, a
    header row with a "prompt" column (any case; other columns ignored). A UTF-8 byte-order mark is
    allowed. Raises :class:`WhatIfError`, naming the line or row, for: a file over ``max_bytes``, text
    that is not UTF-8, bad JSON, a missing "prompt" field or column, an empty prompt, one over
    ``max_chars`` characters (the config's ``limits.max_prompt_chars``), more than ``max_prompts``
    prompts, or none at all. Reads only; the caller deletes an uploaded file when done.
    """
    if name is None and not isinstance(source, (bytes, bytearray, memoryview)):
        name = Path(source).name
    fmt = _format_of(name, fmt)
    label = Path(name).name if name else f"the .{fmt} file"
    text = _decode(_read_bytes(source, max_bytes), label)
    prompts: list[str] = []
    rows: list[int] = []
    kind = "row" if fmt == "csv" else "line"
    for number, prompt in _records(text, fmt, label):
        prompts.append(_check_prompt(prompt, f"{label} {kind} {number}", max_chars))
        rows.append(number)
        if len(prompts) > max_prompts:
            raise WhatIfError(f"{label} holds more than {max_prompts:,} prompts (the limit); split it or sample it")
    if not prompts:
        raise WhatIfError(f"{label} holds no prompts")
    return PromptFile(prompts, rows, fmt, label)


# ---- the quality estimate ------------------------------------------------------------------------


@dataclass
class QualityCurve:
    """A router's held-out quality at each strong share, from one benchmark's evaluation run."""

    benchmark: str
    router: str  # the router whose curve this is (may differ from the one routing: see note)
    strong_pct: np.ndarray
    quality: np.ndarray
    q_strong: float | None
    q_weak: float | None
    note: str = ""
    run: str = ""

    @property
    def label(self) -> str:
        return f"estimated from {self.benchmark}'s held-out evaluation, not measured on your prompts"

    def at(self, strong_pct) -> np.ndarray:
        """Quality at ``strong_pct`` (percent of calls to strong), linear between stored points."""
        return np.interp(strong_pct, self.strong_pct, self.quality)


def quality_curve_for(eval_dir, benchmark: str, router: str) -> tuple[QualityCurve | None, str]:
    """The newest ``benchmark`` run's held-out curve for ``router`` (or the closest router it has),
    and a note saying what was used or why there is none."""
    from routellm_demo.evals.results import latest_by_benchmark

    if benchmark not in BENCHMARKS:
        raise WhatIfError(f"unknown benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)}")
    run = latest_by_benchmark(Path(eval_dir)).get(benchmark)
    if run is None:
        return None, (f"no {benchmark} evaluation in {eval_dir}; run `python -m routellm_demo eval --benchmark "
                      f"{benchmark} ...` to get quality estimates")
    available = run.curve_routers()
    if not available:
        return None, (f"the {benchmark} evaluation in {run.folder} stores no quality curves (it predates them); "
                      "re-run eval to get quality estimates")
    if router in available:
        used, note = router, ""
    else:
        candidates = [*CLOSEST_ROUTERS.get(router, ()), *FALLBACK_ORDER]
        used = next((r for r in candidates if r in available), available[0])
        note = (f"the {benchmark} evaluation did not score {router}; quality is read off {used}'s curve instead")
    x, y = run.curve(used)
    m = run.metrics
    q_strong = m.get("q_strong") if isinstance(m.get("q_strong"), (int, float)) else None
    q_weak = m.get("q_weak") if isinstance(m.get("q_weak"), (int, float)) else None
    return QualityCurve(benchmark, used, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                        q_strong, q_weak, note, str(run.folder)), note


# ---- costs -----------------------------------------------------------------------------------


def prompt_tokens(prompts: Sequence[str]) -> np.ndarray:
    """Estimated input tokens per prompt sent as one chat message: ~4 characters per token plus the
    chat format's 4 (the endpoints' estimate when an API reports no usage)."""
    from routellm_demo.llm.endpoints import estimate_tokens

    return np.array([estimate_tokens(p) + CHAT_OVERHEAD_TOKENS for p in prompts], dtype=np.int64)


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens; output prices default to the input ones."""

    strong: float
    weak: float
    strong_output: float | None = None
    weak_output: float | None = None

    def __post_init__(self):
        for label, value in (("strong price", self.strong), ("weak price", self.weak),
                             ("strong output price", self.strong_output), ("weak output price", self.weak_output)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise WhatIfError(f"the {label} must be a number of USD per 1M tokens, 0 or more; got {value!r}")
        if self.strong <= 0:
            raise WhatIfError("the strong model's price must be above 0 (savings are measured against it)")

    def endpoint(self, role: str):
        """A :class:`~routellm_demo.config.ModelEndpoint` priced so, for :func:`~routellm_demo.llm.costs.cost_usd`."""
        from routellm_demo.config import ModelEndpoint

        price = self.strong if role == "strong" else self.weak
        out = self.strong_output if role == "strong" else self.weak_output
        return ModelEndpoint(name=role, model=role, input_price=float(price),
                             output_price=float(price if out is None else out))

    def to_dict(self) -> dict:
        s, w = self.endpoint("strong"), self.endpoint("weak")
        return {"unit": "USD per 1M tokens", "strong_input": s.input_price, "strong_output": s.output_price,
                "weak_input": w.input_price, "weak_output": w.output_price}


def call_costs(tokens: np.ndarray, answer_tokens: int, prices: Prices) -> tuple[np.ndarray, np.ndarray]:
    """USD per request on the strong and on the weak model: each prompt's tokens in, ``answer_tokens``
    out, priced as the app prices a call (:func:`routellm_demo.llm.costs.cost_usd`)."""
    from routellm_demo.llm.costs import cost_usd

    strong, weak = prices.endpoint("strong"), prices.endpoint("weak")
    return (np.array([cost_usd(strong, int(t), answer_tokens) for t in tokens], dtype=np.float64),
            np.array([cost_usd(weak, int(t), answer_tokens) for t in tokens], dtype=np.float64))


# ---- the result ------------------------------------------------------------------------------


def _preview(prompt: str) -> str:
    flat = " ".join(prompt.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS - 1] + "…"


@dataclass
class WhatIfResult:
    """Everything the CLI and the app show. Money in USD; shares and savings in percent.

    ``scores[i]``, ``prompt_tokens[i]`` and ``source_rows[i]`` belong to the i-th prompt of the file;
    ``table`` has one row per threshold of ``thresholds`` (each a dict with the keys of
    :data:`COLUMN_TITLES`); ``quality`` is None when no held-out curve could be read (see ``notes``).
    """

    router: str
    benchmark: str
    prices: Prices
    answer_tokens: int
    scores: np.ndarray
    prompt_tokens: np.ndarray
    source_rows: list[int]
    row_label: str
    thresholds: list[float]
    quality: QualityCurve | None
    notes: list[str]
    seconds: dict
    file_name: str = "prompts"
    _prompts: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self):
        self._strong_cost, self._weak_cost = call_costs(self.prompt_tokens, self.answer_tokens, self.prices)
        self.table = [self.row_at(t) for t in self.thresholds]

    @property
    def n_prompts(self) -> int:
        return int(self.scores.size)

    @property
    def always_strong_per_1k(self) -> float:
        return float(1000 * self._strong_cost.mean())

    @property
    def always_weak_per_1k(self) -> float:
        return float(1000 * self._weak_cost.mean())

    def column_titles(self) -> dict[str, str]:
        """Column headings for :attr:`table`; the quality one names the benchmark and says it is an estimate."""
        titles = dict(COLUMN_TITLES)
        if self.quality is not None:
            titles["est_quality"] = (f"estimated quality ({self.benchmark} held-out, {self.quality.router}; "
                                     "not measured on your prompts)")
        return titles

    def row_at(self, threshold: float) -> dict:
        """The projection at ``threshold`` (route to strong when score >= threshold)."""
        from routellm_demo.routers.base import routes_to_strong

        strong = routes_to_strong(self.scores, float(threshold))
        share = float(strong.mean())
        cost = float(np.where(strong, self._strong_cost, self._weak_cost).mean())
        all_strong = float(self._strong_cost.mean())
        est = float(self.quality.at(100 * share)) if self.quality is not None else None
        return {"threshold": float(threshold), "strong_calls": int(strong.sum()), "strong_pct": 100 * share,
                "cost_per_1k": 1000 * cost, "savings_pct": 100 * (1 - cost / all_strong) if all_strong > 0 else None,
                "est_quality": est}

    def by_share(self, step_pct: float = 10) -> list[dict]:
        """Rows at the thresholds closest to strong shares 0, step, 2 step, ..., 100% (what the CLI
        prints), each with the share it targets as ``target_pct``; the realised share may differ
        where scores tie."""
        from routellm_demo.calibration import threshold_for_strong_share

        targets = np.unique(np.clip(np.append(np.arange(0, 100, step_pct), 100), 0, 100))
        return [{"target_pct": float(p), **self.row_at(threshold_for_strong_share(self.scores, p / 100))}
                for p in targets]

    def histogram(self, bins: int = HISTOGRAM_BINS) -> dict:
        """Counts of scores in ``bins`` equal bins over [0, 1] (the last bin includes 1)."""
        counts, edges = np.histogram(np.clip(self.scores, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
        return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}

    def score_summary(self) -> dict:
        q = np.percentile(self.scores, [0, 10, 25, 50, 75, 90, 100])
        return {"n": self.n_prompts, "mean": float(self.scores.mean()), "min": float(q[0]), "p10": float(q[1]),
                "p25": float(q[2]), "median": float(q[3]), "p75": float(q[4]), "p90": float(q[5]),
                "max": float(q[6]), "distinct": int(np.unique(self.scores).size)}

    def per_prompt(self, threshold: float | None = None) -> list[dict]:
        """One row per prompt, in file order: where it was, a preview, its score and prompt tokens (and
        the model it goes to at ``threshold``, when given)."""
        rows = []
        for i in range(self.n_prompts):
            row = {self.row_label: self.source_rows[i], "prompt": _preview(self._prompts[i]),
                   "score": float(self.scores[i]), "prompt_tokens": int(self.prompt_tokens[i])}
            if threshold is not None:
                row["model"] = "strong" if self.scores[i] >= threshold else "weak"
            rows.append(row)
        return rows

    def write_csv(self, path, threshold: float | None = None) -> Path:
        """The per-prompt download: line/row in the file, score, estimated prompt tokens, (the model at
        ``threshold``,) and the prompt itself, one row per prompt in file order. The caller owns (and
        deletes) ``path``: for the app, a temporary file of this visitor's only."""
        path = Path(path)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([self.row_label, "score", "prompt_tokens", *(["model"] if threshold is not None else []),
                        "prompt"])
            for i in range(self.n_prompts):
                model = ([("strong" if self.scores[i] >= threshold else "weak")] if threshold is not None else [])
                w.writerow([self.source_rows[i], repr(float(self.scores[i])), int(self.prompt_tokens[i]), *model,
                            self._prompts[i]])
        return path

    def figure(self):
        """A matplotlib Figure: the scores' histogram, and cost saved and estimated quality against the
        share of strong calls (no pyplot: safe in a server's worker threads)."""
        from matplotlib.figure import Figure

        hist = self.histogram()
        fig = Figure(figsize=(11, 4.5), layout="constrained")
        left, right = fig.subplots(1, 2)
        edges = np.asarray(hist["edges"])
        left.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", edgecolor="white")
        left.set_xlabel(f"{self.router} score (strong win probability)")
        left.set_ylabel("prompts")
        left.set_title(f"scores of your {self.n_prompts:,} prompts")
        x = [r["strong_pct"] for r in self.table]
        right.plot(x, [r["savings_pct"] for r in self.table], color="tab:green", label="saved vs always-strong (%)")
        right.set_xlabel("calls to the strong model (%)")
        right.set_ylabel("saved vs always-strong (%)")
        right.set_xlim(0, 100)
        right.grid(alpha=0.3)
        if self.quality is not None:
            twin = right.twinx()
            grid = np.linspace(0, 100, 101)
            twin.plot(grid, self.quality.at(grid), color="tab:purple", linestyle="--",
                      label=f"estimated quality ({self.benchmark} held-out)")
            twin.set_ylabel(f"estimated quality, {QUALITY_UNITS[self.benchmark]}")
            twin.legend(loc="lower right", fontsize=8)
        right.legend(loc="upper right", fontsize=8)
        right.set_title("projected saving; quality estimated from the benchmark")
        return fig

    def write_plot(self, path) -> Path:
        """:meth:`figure` as a PNG at ``path``."""
        self.figure().savefig(path, dpi=100)
        return Path(path)

    def to_dict(self, *, per_prompt: bool = True) -> dict:
        """JSON-ready: settings, the distribution, the table, the quality source and the per-prompt rows
        (previews only; the full texts are in :meth:`write_csv`)."""
        quality = None
        if self.quality is not None:
            quality = {"label": self.quality.label, "benchmark": self.quality.benchmark,
                       "curve_router": self.quality.router, "unit": QUALITY_UNITS[self.benchmark],
                       "q_strong": self.quality.q_strong, "q_weak": self.quality.q_weak, "run": self.quality.run}
        out = {
            "file": self.file_name, "n_prompts": self.n_prompts, "router": self.router, "benchmark": self.benchmark,
            "prices": self.prices.to_dict(), "answer_tokens": self.answer_tokens,
            "prompt_tokens": {"total": int(self.prompt_tokens.sum()), "mean": float(self.prompt_tokens.mean()),
                              "estimate": "~4 characters per token + 4 per chat message"},
            "always_strong_per_1k": self.always_strong_per_1k, "always_weak_per_1k": self.always_weak_per_1k,
            "score_summary": self.score_summary(), "histogram": self.histogram(),
            "quality": quality, "notes": self.notes, "seconds": self.seconds,
            "columns": self.column_titles(), "table": self.table, "by_share": self.by_share(),
        }
        if per_prompt:
            out["prompts"] = self.per_prompt()
        return out


# ---- the run ---------------------------------------------------------------------------------


def what_if(
    runtime, prompts, *, router: str | None = None, strong_price: float = DEFAULT_STRONG_PRICE,
    weak_price: float = DEFAULT_WEAK_PRICE, strong_output_price: float | None = None,
    weak_output_price: float | None = None, answer_tokens: int = DEFAULT_ANSWER_TOKENS,
    benchmark: str = "mmlu", thresholds: Sequence[float] | None = None, eval_dir=None,
    progress: Progress | None = None,
) -> WhatIfResult:
    """Project routing ``prompts`` (a :class:`PromptFile` or a list of texts) with ``router``.

    ``runtime``: anything with ``embedder``, ``routers`` and ``config`` (a
    :class:`~routellm_demo.runtime.Runtime`). Prices are USD per 1M tokens (output prices default to
    the input ones); ``answer_tokens`` is the assumed answer length. Quality is read off the newest
    ``benchmark`` run under ``eval_dir`` (default: the config's ``eval_dir``) at each threshold's share
    of strong calls. ``progress(done, total, stage)`` is called as the work advances, ``stage`` being
    "embedding" (done/total: distinct prompts) or "scoring" (prompts); an exception raised from it
    stops the run (nothing is left to clean up). Writes nothing anywhere.
    """
    from routellm_demo.routers import check_router

    started = time.perf_counter()
    if not isinstance(prompts, PromptFile):
        prompts = list(prompts)
        for i, p in enumerate(prompts):
            _check_prompt(p, f"prompt {i + 1}", runtime.config.max_prompt_chars)
        if not prompts:
            raise WhatIfError("no prompts to project")
        if len(prompts) > WHATIF_MAX_PROMPTS:
            raise WhatIfError(f"{len(prompts):,} prompts; the limit is {WHATIF_MAX_PROMPTS:,}: split or sample them")
        prompts = PromptFile(prompts, list(range(1, len(prompts) + 1)), "txt")
    router = check_router(router or runtime.config.router)
    if benchmark not in BENCHMARKS:
        raise WhatIfError(f"unknown benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)}")
    if isinstance(answer_tokens, float) and answer_tokens.is_integer():
        answer_tokens = int(answer_tokens)  # a number box's 300.0
    if isinstance(answer_tokens, bool) or not isinstance(answer_tokens, (int, np.integer)) \
            or not 0 <= answer_tokens <= MAX_ANSWER_TOKENS:
        raise WhatIfError(f"the assumed answer length must be a whole number of tokens in 0..{MAX_ANSWER_TOKENS:,}, "
                          f"got {answer_tokens!r}")
    prices = Prices(strong_price, weak_price, strong_output_price, weak_output_price)
    extra = [_check_threshold(t) for t in (thresholds or ())]
    curve, note = quality_curve_for(eval_dir if eval_dir is not None else runtime.config.eval_dir, benchmark, router)
    notes = [note] if note else []
    notes.append("a projection of routing only: every request answered once by the model the router picks "
                 "(no fallback to the other model, no retries), with answers of the assumed length")

    texts = prompts.prompts
    report = progress or (lambda done, total, stage: None)
    report(0, len(set(texts)), "embedding")
    t0 = time.perf_counter()
    vectors = runtime.embedder.embed_private(texts, on_batch=lambda d, t: report(d, t, "embedding"))
    t1 = time.perf_counter()
    scores = np.empty(len(texts), dtype=np.float64)
    report(0, len(texts), "scoring")
    for start in range(0, len(texts), SCORE_CHUNK):
        stop = min(start + SCORE_CHUNK, len(texts))
        scores[start:stop] = runtime.routers.score(router, vectors[start:stop], texts[start:stop])
        report(stop, len(texts), "scoring")
    t2 = time.perf_counter()
    if not np.all(np.isfinite(scores)):
        raise WhatIfError(f"router {router} gave no score for some prompts; try another router")
    grid = threshold_grid(scores, extra)
    return WhatIfResult(
        router=router, benchmark=benchmark, prices=prices, answer_tokens=int(answer_tokens), scores=scores,
        prompt_tokens=prompt_tokens(texts), source_rows=list(prompts.rows), row_label=prompts.row_label,
        thresholds=grid, quality=curve, notes=notes, file_name=prompts.name,
        seconds={"embedding": round(t1 - t0, 2), "scoring": round(t2 - t1, 2),
                 "total": round(time.perf_counter() - started, 2)},
        _prompts=list(texts),
    )


def threshold_grid(scores, extra: Sequence[float] = ()) -> list[float]:
    """The table's thresholds, ascending: 0, 0.01, ..., 1; the thresholds closest to strong shares 0,
    1, ..., 100% of these scores (a narrow score distribution would otherwise get few rows); ``extra``."""
    from routellm_demo.calibration import threshold_for_strong_share

    by_share = {threshold_for_strong_share(scores, p / 100) for p in range(101)}
    return sorted({*THRESHOLD_GRID, *by_share, *(float(t) for t in extra)})


def _check_threshold(t) -> float:
    """The routers' own threshold check, raised as the what-if's error."""
    from routellm_demo.routers import UnknownRouterError, check_threshold

    try:
        return check_threshold(t)
    except UnknownRouterError as e:
        raise WhatIfError(str(e)) from None
