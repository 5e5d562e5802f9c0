"""Importers on RouteLLM's real eval files (read in place, never copied) and on small hand-made files."""

import csv
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from routellm_demo.importers import (
    ROUTELLM_FILES, STRONG_MODEL, WEAK_MODEL, DataFormatError, DownloadError, download_arena,
    download_routellm, fetch, gold_winner, import_arena, import_routellm,
)
from routellm_demo.store import Store

REPO = Path(__file__).resolve().parents[1]


def _find_shared_data():
    for candidate in (Path("/work/shared/data/routellm"), REPO.parent / "shared" / "data" / "routellm"):
        if (candidate / "mmlu").is_dir():
            return candidate
    return None


SHARED = _find_shared_data()
needs_shared = pytest.mark.skipif(
    SHARED is None,
    reason="RouteLLM eval data not found at /work/shared/data/routellm or ../shared/data/routellm "
           "(fetch it with routellm_demo.importers.download_routellm)")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "imp.db")
    yield s
    s.close()


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_gold_winner_table():
    assert gold_winner(True, False) == "model_a"
    assert gold_winner(False, True) == "model_b"
    assert gold_winner(True, True) == "tie"
    assert gold_winner(False, False) == "tie (bothbad)"


# -- RouteLLM evals on the shared data -----------------------------------------------------------


@pytest.fixture(scope="module")
def shared_import(tmp_path_factory):
    if SHARED is None:
        pytest.skip("RouteLLM eval data not found")
    s = Store(tmp_path_factory.mktemp("shared") / "routellm.db")
    first = import_routellm(s, SHARED, progress=False)
    counts = s.count_battles()
    second = import_routellm(s, SHARED, progress=False)
    yield s, first, second, counts
    s.close()


@needs_shared
def test_routellm_import_and_reimport(shared_import):
    s, first, second, counts = shared_import
    for bench in ("mmlu", "gsm8k", "mt-bench"):
        r = first[bench]
        assert r["added"] > 0 and r["skipped_contaminated"] > 0
        assert r["added"] + r["skipped_contaminated"] <= r["rows"]
        assert second[bench]["added"] == 0  # idempotent
        assert counts[f"import:{bench}"] == r["added"]
    assert s.count_battles() == counts
    b = s.battles(source="import:mmlu", limit=1)[0]
    assert (b["model_a"], b["model_b"], b["strong_side"]) == (STRONG_MODEL, WEAK_MODEL, "a")
    assert b["meta"]["benchmark"] == "mmlu" and b["meta"]["subject"]


@needs_shared
def test_gsm8k_labels_match_the_csv(shared_import):
    s = shared_import[0]
    evals = {json.loads(line)["eval_prompt"] for line in open(SHARED / "gsm8k" / "contaminated_prompts.jsonl")}
    with open(SHARED / "gsm8k" / "gsm8k_responses.csv", newline="", encoding="utf-8") as f:
        expected = Counter(
            gold_winner(r[STRONG_MODEL] == "True", r[WEAK_MODEL] == "True")
            for r in csv.DictReader(f) if r["prompt"] not in evals)
    stored = s.battles(source="import:gsm8k")
    assert Counter(b["winner"] for b in stored) == expected
    assert not {b["prompt"] for b in stored} & evals  # contaminated prompts skipped
    assert all(isinstance(b["meta"]["row"], int) for b in stored)


@needs_shared
def test_mmlu_contamination_and_subjects(shared_import):
    s = shared_import[0]
    evals = {json.loads(line)["eval_prompt"] for line in open(SHARED / "mmlu" / "contaminated_prompts.jsonl")}
    stored = s.battles(source="import:mmlu")
    assert not {b["prompt"] for b in stored} & evals
    subjects = {b["meta"]["subject"] for b in stored}
    assert subjects == {p.stem[5:] for p in (SHARED / "mmlu" / "responses").glob("mmlu_*.csv")}


@needs_shared
def test_mt_bench_labels_are_mean_of_turns(shared_import):
    s = shared_import[0]
    scores = {}
    for line in open(SHARED / "mt_bench" / "judgements.jsonl"):
        j = json.loads(line)
        scores.setdefault((j["question_id"], j["model"]), []).append(j["score"])
    for b in s.battles(source="import:mt-bench"):
        qid = b["meta"]["question_id"]
        strong = sum(scores[qid, STRONG_MODEL]) / len(scores[qid, STRONG_MODEL])
        weak = sum(scores[qid, WEAK_MODEL]) / len(scores[qid, WEAK_MODEL])
        assert b["winner"] == ("model_a" if strong > weak else "model_b" if weak > strong else "tie")


# -- RouteLLM evals on hand-made files -----------------------------------------------------------


def make_mt_bench(root):
    """Five questions that exercise every MT-Bench rule."""
    qs = [{"question_id": q, "category": "writing", "turns": [f"question {q} turn 1", f"question {q} turn 2"]}
          for q in (1, 2, 3, 4, 5)]
    j = []

    def judge(q, model, turn, score):
        j.append({"question_id": q, "model": model, "judge": ["gpt-4", "single-v1"], "score": score, "turn": turn})

    judge(1, STRONG_MODEL, 1, 10), judge(1, STRONG_MODEL, 2, 6)  # strong wins turn 1 but mean 8 ...
    judge(1, WEAK_MODEL, 1, 9), judge(1, WEAK_MODEL, 2, 9)  # ... loses to a steady 9
    judge(2, STRONG_MODEL, 1, 7), judge(2, STRONG_MODEL, 2, 9), judge(2, WEAK_MODEL, 1, 8), judge(2, WEAK_MODEL, 2, 8)
    judge(3, STRONG_MODEL, 1, 9)  # the weak model was never judged: no battle
    judge(4, STRONG_MODEL, 1, 9), judge(4, STRONG_MODEL, 2, -1)  # -1 = judge failed, ignored
    judge(4, WEAK_MODEL, 1, 5), judge(4, WEAK_MODEL, 2, 10)
    judge(4, "some-other-model", 1, 1)
    judge(5, STRONG_MODEL, 1, 9), judge(5, WEAK_MODEL, 1, 1)
    write_jsonl(root / "mt_bench" / "question.jsonl", qs)
    write_jsonl(root / "mt_bench" / "judgements.jsonl", j)
    write_jsonl(root / "mt_bench" / "contaminated_prompts.jsonl",
                [{"train_prompt": "question 5 turn 2 ", "eval_prompt": "question 5 turn 2"}])  # turn 2 counts too


def test_mt_bench_rules(store, tmp_path):
    make_mt_bench(tmp_path)
    report = import_routellm(store, tmp_path, ["mt-bench"], progress=False)
    assert report == {"mt-bench": {"added": 3, "skipped_contaminated": 1, "rows": 4}}
    got = {b["meta"]["question_id"]: (b["winner"], b["meta"]["score_a"], b["meta"]["score_b"])
           for b in store.battles()}
    assert got == {1: ("model_b", 8.0, 9.0), 2: ("tie", 8.0, 8.0), 4: ("model_a", 9.0, 7.5)}
    assert store.battles()[0]["prompt"] == "question 1 turn 1"


def write_mmlu(root, subject, rows):
    path = root / "mmlu" / "responses" / f"mmlu_{subject}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["prompt", WEAK_MODEL, STRONG_MODEL]).to_csv(path, index=False)
    return path


def test_bad_file_writes_nothing_for_that_benchmark(store, tmp_path):
    write_mmlu(tmp_path, "anatomy", [["Q1\nA. x\nAnswer:", True, False], ["Q2", False, True]])
    bad = write_mmlu(tmp_path, "virology", [["Q3", True, "maybe"]])
    with pytest.raises(DataFormatError, match=r"mmlu_virology\.csv.*maybe"):
        import_routellm(store, tmp_path, ["mmlu"], progress=False)
    assert store.count_battles() == {}  # the good subject was not written either
    bad.unlink()
    assert import_routellm(store, tmp_path, ["mmlu"], progress=False)["mmlu"]["added"] == 2
    assert [b["winner"] for b in store.battles()] == ["model_b", "model_a"]


@pytest.mark.parametrize("content, message", [
    ("question,answer\nWhat is 2+2?,4\n", "missing column"),
    ("", "not a readable CSV"),
    (b"\xff\xfe\x00garbage\x00\x81", "not a readable CSV"),
])
def test_foreign_csv_is_a_data_format_error(store, tmp_path, content, message):
    path = tmp_path / "gsm8k" / "gsm8k_responses.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(DataFormatError, match=message) as exc:
        import_routellm(store, tmp_path, ["gsm8k"], progress=False)
    assert "gsm8k_responses.csv" in str(exc.value)
    assert store.count_battles() == {}


def test_missing_data_and_unknown_benchmark(store, tmp_path):
    with pytest.raises(FileNotFoundError, match="download_routellm"):
        import_routellm(store, tmp_path / "nowhere", progress=False)
    with pytest.raises(ValueError, match="unknown benchmark"):
        import_routellm(store, tmp_path, ["hellaswag"], progress=False)


# -- Chatbot Arena -------------------------------------------------------------------------------


ARENA_ROWS = [
    # id, model_a, model_b, prompt (JSON list of turns), winner flags a/b/tie
    (101, "gpt-4-0613", "llama-2-13b-chat", ["Explain TCP slow start."], 1, 0, 0),
    (102, "claude-2.1", "mistral-medium", ["Hi!", "Now tell me a joke."], 0, 1, 0),
    (103, "vicuna-13b", "koala-13b", ["¿Qué hora es? 🕒"], 0, 0, 1),
    (104, "gpt-4-0613", "vicuna-13b", ["A contaminated training prompt\n"], 1, 0, 0),
    (105, "gpt-4-0613", "vicuna-13b", [None, "second turn only"], 1, 0, 0),  # no usable first turn
    (106, "gpt-4-0613", "vicuna-13b", ["Two winners?"], 1, 1, 0),  # malformed flags
    (107, "gpt-4-0613", "vicuna-13b", ["Lone surrogate \ud83d here"], 0, 1, 0),
]


def arena_frame():
    return pd.DataFrame([
        {"id": i, "model_a": a, "model_b": b, "prompt": json.dumps(p), "response_a": json.dumps(["..."]),
         "response_b": json.dumps(["..."]), "winner_model_a": wa, "winner_model_b": wb, "winner_tie": wt}
        for i, a, b, p, wa, wb, wt in ARENA_ROWS])


def contamination_dir(tmp_path):
    root = tmp_path / "routellm"
    write_jsonl(root / "mt_bench" / "contaminated_prompts.jsonl",
                [{"train_prompt": "A contaminated training prompt\n", "eval_prompt": "Some eval prompt"}])
    return root


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".json", ".parquet"])
def test_arena_import_each_format(tmp_path, ext):
    df = arena_frame()
    path = tmp_path / f"arena{ext}"
    {".csv": lambda: df.to_csv(path, index=False),
     ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
     ".json": lambda: df.to_json(path, orient="records"),
     ".parquet": lambda: df.to_parquet(path)}[ext]()
    with Store(tmp_path / "arena.db") as s:
        report = import_arena(s, path, contaminated=contamination_dir(tmp_path), progress=False)
        assert report == {"added": 4, "skipped": 3, "rows": 7}
        rows = {b["meta"]["arena_id"]: b for b in s.battles()}
        assert set(rows) == {"101", "102", "103", "107"}
        assert rows["102"]["prompt"] == "Hi!" and rows["102"]["meta"]["turns"] == 2
        assert [rows[k]["winner"] for k in ("101", "102", "103")] == ["model_a", "model_b", "tie"]
        assert rows["103"]["prompt"] == "¿Qué hora es? 🕒"
        assert "\ufffd" in rows["107"]["prompt"]  # the broken character was replaced, not stored
        assert all(b["strong_side"] is None and b["source"] == "import:arena" for b in rows.values())
        assert rows["101"]["uid"] == "import:arena:101"
        again = import_arena(s, path, contaminated=[tmp_path / "routellm" / "mt_bench" / "contaminated_prompts.jsonl"],
                             progress=False)
        assert again["added"] == 0  # idempotent
        assert import_arena(s, path, progress=False)["added"] == 1  # without the list, the tainted row comes in


def test_arena_foreign_file_writes_nothing(store, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("id,question,answer\n1,hi,there\n")
    with pytest.raises(DataFormatError, match=r"other\.csv.*winner_model_a"):
        import_arena(store, path, progress=False)
    xlsx = tmp_path / "arena.xlsx"
    xlsx.write_text("nope")
    with pytest.raises(DataFormatError, match="extension"):
        import_arena(store, xlsx, progress=False)
    with pytest.raises(FileNotFoundError, match="download_arena"):
        import_arena(store, tmp_path / "missing.csv", progress=False)
    assert store.count_battles() == {}


# -- downloads via file:// URLs ------------------------------------------------------------------


def make_mirror(root):
    """A tiny but well-formed copy of RouteLLM's routellm/evals layout."""
    for rel in ROUTELLM_FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith("mmlu/responses/"):
            write_mmlu(root, Path(rel).stem[5:], [[f"MMLU question for {rel}", True, True]])
        elif rel == "gsm8k/gsm8k_responses.csv":
            pd.DataFrame([["2+2?", False, True, "5", "4"]], columns=[
                "prompt", WEAK_MODEL, STRONG_MODEL, WEAK_MODEL + "_response", STRONG_MODEL + "_response",
            ]).to_csv(path, index=False)
        elif rel.endswith("contaminated_prompts.jsonl"):
            path.write_text("")
    make_mt_bench(root)


def test_download_routellm_then_import(store, tmp_path):
    mirror = tmp_path / "mirror"
    make_mirror(mirror)
    dest = download_routellm(tmp_path / "data", base_url=mirror.as_uri(), progress=False)
    for rel in ROUTELLM_FILES:
        assert (dest / rel).read_bytes() == (mirror / rel).read_bytes()
    assert not list(dest.rglob("*.part"))
    report = import_routellm(store, dest, progress=False)
    assert report["mmlu"]["added"] == 57 and report["gsm8k"]["added"] == 1
    assert store.battles(source="import:gsm8k")[0]["winner"] == "model_a"


def test_download_arena_and_offline_errors(tmp_path):
    src = tmp_path / "train.csv"
    arena_frame().to_csv(src, index=False)
    dest = download_arena(tmp_path / "dl" / "arena.csv", url=src.as_uri(), progress=False)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DownloadError, match="internet"):
        fetch((tmp_path / "absent.csv").as_uri(), tmp_path / "dl" / "x.csv", progress=False)
    with pytest.raises(DownloadError, match="cannot download"):
        fetch("http://127.0.0.1:9/train.csv", tmp_path / "dl" / "y.csv", progress=False, timeout=2)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["arena.csv"]  # no partial files
