"""Import public preference data as battles: RouteLLM's gold-labelled evals and Chatbot Arena votes.

Why these two: RouteLLM's MMLU/GSM8K/MT-Bench files say, per prompt, whether GPT-4 and Mixtral got it
right (or how a GPT-4 judge scored them), which gives honest strong-vs-weak labels; the Arena's human
votes give many more, noisier battles. Imports are idempotent (each row has a deterministic uid) and
each benchmark is written in one transaction: a bad file leaves nothing half-imported.

Contamination: RouteLLM lists eval prompts that also occur in its Arena training data. Eval prompts
listed there are skipped when importing the evals, and the matching train prompts are skipped when
importing Arena data, so evaluating on the RouteLLM benchmarks stays honest.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable

import pandas as pd
from tqdm.auto import tqdm

from routellm_demo.errors import UserError
from routellm_demo.store import Store, prompt_sha256

STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
BENCHMARKS = ("mmlu", "gsm8k", "mt-bench")
_DIRS = {"mmlu": "mmlu", "gsm8k": "gsm8k", "mt-bench": "mt_bench"}

ROUTELLM_BASE_URL = "https://raw.githubusercontent.com/lm-sys/RouteLLM/main/routellm/evals"
ARENA_URL = "https://huggingface.co/datasets/lmsys/lmsys-arena-human-preference-55k/resolve/main/train.csv"
MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics", "econometrics",
    "electrical_engineering", "elementary_mathematics", "formal_logic", "global_facts",
    "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
    "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics",
    "high_school_physics", "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law", "jurisprudence",
    "logical_fallacies", "machine_learning", "management", "marketing", "medical_genetics",
    "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition", "philosophy", "prehistory",
    "professional_accounting", "professional_law", "professional_medicine", "professional_psychology",
    "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
    "world_religions",
)
ROUTELLM_FILES = (
    *(f"mmlu/responses/mmlu_{s}.csv" for s in MMLU_SUBJECTS),
    "mmlu/contaminated_prompts.jsonl",
    "gsm8k/gsm8k_responses.csv",
    "gsm8k/contaminated_prompts.jsonl",
    "mt_bench/question.jsonl",
    "mt_bench/judgements.jsonl",
    "mt_bench/contaminated_prompts.jsonl",
)
ARENA_COLUMNS = ("id", "model_a", "model_b", "prompt", "winner_model_a", "winner_model_b", "winner_tie")


class DataFormatError(UserError, ValueError):
    """A data file is not in the expected format; the message names the file and the problem."""


class DownloadError(UserError, OSError):
    """A download failed (usually: no internet); the message says what to do instead."""

    status = 502  # an upstream we fetch from failed


# -- shared helpers ----------------------------------------------------------------------------


def gold_winner(strong_correct: bool, weak_correct: bool) -> str:
    """Correctness pair -> battle winner, with the strong model as side a."""
    if strong_correct and not weak_correct:
        return "model_a"
    if weak_correct and not strong_correct:
        return "model_b"
    return "tie" if strong_correct else "tie (bothbad)"


def _clean_text(text: str) -> str:
    """Valid UTF-8 only reaches the store: lone surrogates (seen in scraped data) become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise DataFormatError(f"{path}: line {n} is not a JSON object")
                    rows.append(row)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON lines ({exc})") from None
    return rows


def load_contamination(path: str | Path) -> tuple[set[str], set[str]]:
    """(train_prompts, eval_prompts) listed in one RouteLLM ``contaminated_prompts.jsonl``."""
    path = Path(path)
    train, evals = set(), set()
    for n, row in enumerate(_read_jsonl(path), 1):
        if "train_prompt" not in row or "eval_prompt" not in row:
            raise DataFormatError(f"{path}: line {n} lacks train_prompt/eval_prompt")
        train.add(str(row["train_prompt"]))
        evals.add(str(row["eval_prompt"]))
    return train, evals


def _listed(prompt: str, listed: set[str]) -> bool:
    return prompt in listed or prompt.strip() in listed


def _strip_set(prompts: set[str]) -> set[str]:
    return prompts | {p.strip() for p in prompts}


def _read_csv(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """Read a CSV and insist on the given columns, turning every pandas failure into DataFormatError."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {list(df.columns)[:8]}")
    return df


def _as_bool(value: str, path: Path, row: int, column: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "1.0"):
        return True
    if v in ("false", "0", "0.0"):
        return False
    raise DataFormatError(f"{path}: row {row}, column {column!r} should be True/False, got {value!r}")


def _prompt(value, path: Path, row: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(f"{path}: row {row} has an empty prompt")
    return _clean_text(value)


# -- RouteLLM evals ----------------------------------------------------------------------------


def _gold_rows(df: pd.DataFrame, path: Path, source: str, key, meta) -> list[dict]:
    """Battles from a correctness table (MMLU, GSM8K); key(i) and meta(i) vary per benchmark."""
    rows = []
    for i, (p, weak, strong) in enumerate(zip(df["prompt"], df[WEAK_MODEL], df[STRONG_MODEL])):
        prompt = _prompt(p, path, i)
        winner = gold_winner(_as_bool(strong, path, i, STRONG_MODEL), _as_bool(weak, path, i, WEAK_MODEL))
        sha = prompt_sha256(prompt)
        rows.append(dict(
            prompt=prompt, model_a=STRONG_MODEL, model_b=WEAK_MODEL, winner=winner, source=source,
            strong_side="a", uid=f"{source}:{key(i)}:{sha}", meta=meta(i),
        ))
    return rows


def _mmlu_rows(bench_dir: Path, progress: bool) -> list[dict]:
    files = sorted((bench_dir / "responses").glob("mmlu_*.csv"))
    if not files:
        raise DataFormatError(f"{bench_dir / 'responses'}: no mmlu_<subject>.csv files")
    rows = []
    for path in tqdm(files, desc="mmlu: reading", unit="file", disable=not progress):
        subject = path.stem[len("mmlu_"):]
        df = _read_csv(path, ("prompt", WEAK_MODEL, STRONG_MODEL))
        rows += _gold_rows(df, path, "import:mmlu", lambda i: subject,
                           lambda i: {"benchmark": "mmlu", "subject": subject})
    return rows


def _gsm8k_rows(bench_dir: Path, progress: bool) -> list[dict]:
    path = bench_dir / "gsm8k_responses.csv"
    df = _read_csv(path, ("prompt", WEAK_MODEL, STRONG_MODEL))
    return _gold_rows(df, path, "import:gsm8k", lambda i: i, lambda i: {"benchmark": "gsm8k", "row": i})


def _mt_bench_rows(bench_dir: Path, progress: bool) -> list[dict]:
    """One battle per question: the first turn as prompt, each model's mean judge score over turns."""
    qpath, jpath = bench_dir / "question.jsonl", bench_dir / "judgements.jsonl"
    questions = {}
    for n, q in enumerate(_read_jsonl(qpath), 1):
        turns = q.get("turns")
        if "question_id" not in q or not isinstance(turns, list) or not turns:
            raise DataFormatError(f"{qpath}: line {n} lacks question_id or turns")
        questions[q["question_id"]] = q
    scores: dict[tuple, list[float]] = {}
    for n, j in enumerate(_read_jsonl(jpath), 1):
        if not {"question_id", "model", "score"} <= j.keys():
            raise DataFormatError(f"{jpath}: line {n} lacks question_id/model/score")
        try:
            score = float(j["score"])
        except (TypeError, ValueError):
            raise DataFormatError(f"{jpath}: line {n} has a non-numeric score {j['score']!r}") from None
        if j["model"] in (STRONG_MODEL, WEAK_MODEL) and score >= 0 and not math.isnan(score):  # -1: judge failed
            scores.setdefault((j["question_id"], j["model"]), []).append(score)
    rows = []
    for qid, q in questions.items():
        strong, weak = scores.get((qid, STRONG_MODEL)), scores.get((qid, WEAK_MODEL))
        if not strong or not weak:
            continue  # not judged for both models: no battle
        s, w = sum(strong) / len(strong), sum(weak) / len(weak)
        prompt = _prompt(q["turns"][0], qpath, qid)
        rows.append(dict(
            prompt=prompt, model_a=STRONG_MODEL, model_b=WEAK_MODEL, source="import:mt-bench",
            winner="model_a" if s > w else "model_b" if w > s else "tie", strong_side="a",
            uid=f"import:mt-bench:{qid}:{prompt_sha256(prompt)}",
            meta={"benchmark": "mt-bench", "question_id": qid, "category": q.get("category"),
                  "score_a": s, "score_b": w},
            _turns=[t for t in q["turns"] if isinstance(t, str)],
        ))
    return rows


_READERS = {"mmlu": _mmlu_rows, "gsm8k": _gsm8k_rows, "mt-bench": _mt_bench_rows}


def import_routellm(
    store: Store, data_dir: str | Path, benchmarks: Iterable[str] = BENCHMARKS, *, progress: bool = True,
) -> dict[str, dict]:
    """Import RouteLLM's eval files (original ``routellm/evals`` layout) as gold strong-vs-weak battles.

    Returns ``{benchmark: {"added", "skipped_contaminated", "rows"}}``; ``rows`` counts candidate
    battles read, so a re-import reports ``added == 0``.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no RouteLLM data at {data_dir}: run download_routellm({str(data_dir)!r}) first")
    report = {}
    for bench in benchmarks:
        if bench not in _READERS:
            raise ValueError(f"unknown benchmark {bench!r}; choose from {BENCHMARKS}")
        bench_dir = data_dir / _DIRS[bench]
        if not bench_dir.is_dir():
            raise FileNotFoundError(f"no {bench} folder at {bench_dir}: run download_routellm first")
        rows = _READERS[bench](bench_dir, progress)
        contaminated = bench_dir / "contaminated_prompts.jsonl"
        listed = _strip_set(load_contamination(contaminated)[1]) if contaminated.is_file() else set()
        keep = []
        for r in rows:
            turns = r.pop("_turns", [r["prompt"]])
            if not any(_listed(t, listed) for t in turns):
                keep.append(r)
        bar = tqdm(keep, desc=f"{bench}: writing", unit="battle", disable=not progress)
        added = store.add_battles(bar)
        report[bench] = {"added": added, "skipped_contaminated": len(rows) - len(keep), "rows": len(rows)}
    return report


# -- Chatbot Arena -----------------------------------------------------------------------------


def _read_table(path: Path) -> pd.DataFrame:
    """Arena rows from CSV, JSON (records or lines), JSONL or Parquet, chosen by extension."""
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    try:
        if suffix.startswith(".csv"):
            return pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
        if suffix.startswith(".jsonl"):
            return pd.read_json(path, lines=True, dtype={"id": str})
        if suffix.startswith(".json"):
            try:
                return pd.read_json(path, dtype={"id": str})
            except ValueError:
                return pd.read_json(path, lines=True, dtype={"id": str})
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataFormatError(f"{path}: cannot read as {suffix[1:]} ({str(exc).splitlines()[0]})") from None
    raise DataFormatError(f"{path}: unknown extension {suffix!r}; use .csv, .json, .jsonl or .parquet")


def _turns(value) -> list:
    """The prompt column holds a JSON list of turns (some null); tolerate a real list or a bare string."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        value = parsed if isinstance(parsed, list) else [value]
    return value if isinstance(value, list) else []


def _flag(value) -> int | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f in (0.0, 1.0) else None


def import_arena(
    store: Store, path: str | Path, *, contaminated: Iterable[str | Path] | str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Import Chatbot Arena human votes (lmsys-arena-human-preference-55k columns) as battles.

    ``contaminated``: RouteLLM ``contaminated_prompts.jsonl`` files, or folders holding them (e.g. the
    RouteLLM data dir); their train prompts are skipped. Rows without a usable prompt, models or a
    single winner flag are skipped too. Returns ``{"added", "skipped", "rows"}``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no arena file at {path}: run download_arena({str(path)!r}) first")
    listed: set[str] = set()
    for item in _contamination_files(contaminated):
        listed |= load_contamination(item)[0]
    listed = _strip_set(listed)
    df = _read_table(path)
    missing = [c for c in ARENA_COLUMNS if c not in df.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; expected the lmsys-arena-human-preference-55k columns")
    rows, skipped = [], 0
    it = zip(*(df[c] for c in ARENA_COLUMNS))
    for rid, model_a, model_b, prompt, wa, wb, wt in tqdm(it, total=len(df), desc="arena: reading",
                                                         unit="row", disable=not progress):
        turns = _turns(prompt)
        flags = (_flag(wa), _flag(wb), _flag(wt))
        usable = (turns and isinstance(turns[0], str) and turns[0].strip() and isinstance(model_a, str) and model_a.strip()
                  and isinstance(model_b, str) and model_b.strip() and sorted(flags) == [0, 0, 1])
        if not usable or _listed(turns[0], listed):
            skipped += 1
            continue
        winner = ("model_a", "model_b", "tie")[flags.index(1)]
        rows.append(dict(
            prompt=_clean_text(turns[0]), model_a=_clean_text(model_a), model_b=_clean_text(model_b),
            winner=winner, source="import:arena", strong_side=None, uid=f"import:arena:{rid}",
            meta={"dataset": "lmsys-arena-human-preference-55k", "arena_id": str(rid), "turns": len(turns)},
        ))
    bar = tqdm(rows, desc="arena: writing", unit="battle", disable=not progress)
    added = store.add_battles(bar)
    return {"added": added, "skipped": skipped, "rows": len(df)}


def _contamination_files(contaminated) -> list[Path]:
    if contaminated is None:
        return []
    items = [contaminated] if isinstance(contaminated, (str, Path)) else list(contaminated)
    files = []
    for item in map(Path, items):
        if item.is_dir():
            files += sorted(item.glob("*/contaminated_prompts.jsonl")) + sorted(item.glob("contaminated_prompts.jsonl"))
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"contamination list {item} does not exist")
    return files


# -- downloads (for real users; tests use file:// URLs) ----------------------------------------


def fetch(url: str, dest: str | Path, *, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` via a temp file and an atomic rename, so a broken download never
    leaves a truncated file that a later import would trust."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        Path(tmp).unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"cannot download {url} ({reason}): check your internet connection, "
                            f"or fetch it by hand to {dest}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def download_routellm(dest_dir: str | Path, *, base_url: str = ROUTELLM_BASE_URL, progress: bool = True,
                      timeout: float = 30.0) -> Path:
    """Fetch RouteLLM's eval files into ``dest_dir`` in their original layout; existing files are kept.
    ``timeout``: seconds per connection and per read."""
    dest_dir = Path(dest_dir)
    for rel in tqdm(ROUTELLM_FILES, desc="RouteLLM evals", unit="file", disable=not progress):
        target = dest_dir / rel
        if not target.exists():
            fetch(f"{base_url.rstrip('/')}/{rel}", target, progress=False, timeout=timeout)
    return dest_dir


def download_arena(dest_path: str | Path, *, url: str = ARENA_URL, progress: bool = True) -> Path:
    """Fetch the Chatbot Arena 55k human-preference CSV (~180 MB) to ``dest_path``."""
    return fetch(url, dest_path, progress=progress)
