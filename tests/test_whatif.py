"""What-if on your own traffic (routellm_demo/whatif.py, `python -m routellm_demo whatif`): the file
readers and their one-line errors, the cost arithmetic, the quality read at the same strong share, the
held-out curves `eval` stores, and real prompts through the real embedder and routers, leaving the
store as it was."""

import csv
import hashlib
import json
import sqlite3
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from routellm_demo import whatif
from routellm_demo.errors import UserError
from routellm_demo.evals.metrics import curve_points
from routellm_demo.evals.results import read_run
from routellm_demo.whatif import PromptFile, WhatIfError, read_prompts, what_if
from conftest import REPO


# ---- reading files ---------------------------------------------------------------------------


def test_txt_one_prompt_per_line_blank_lines_skipped(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes(b"first prompt\r\n\nsecond prompt\n   \nthird\n")
    f = read_prompts(path)
    assert f.prompts == ["first prompt", "second prompt", "third"]
    assert f.rows == [1, 3, 5] and f.row_label == "line" and f.format == "txt"


def test_jsonl_and_csv_with_bom_header_case_and_multiline_fields(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a\\nb", "id": 1}\n\n{"prompt": "c"}\n', encoding="utf-8")
    f = read_prompts(jsonl)
    assert f.prompts == ["a\nb", "c"] and f.rows == [1, 3]
    raw = '\ufeffid,Prompt\n1,"line one\nline two"\n2,second\n'.encode("utf-8")
    f = read_prompts(raw, name="upload.csv")
    assert f.prompts == ["line one\nline two", "second"]
    assert f.rows == [2, 3] and f.row_label == "row"  # spreadsheet rows: the header is row 1


BAD_FILES = [
    ("p.txt", b"ok\nok\n\xff\xfe broken\n", "line 3", "UTF-8"),
    ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": "unterminated\n', "line 2", "not valid JSON"),
    ("p.jsonl", b'{"prompt": "ok"}\n["a list"]\n', "line 2", "JSON object"),
    ("p.jsonl", b'{"prompt": "ok"}\n{"text": "no prompt"}\n', "line 2", 'no "prompt" field'),
    ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": 42}\n', "line 2", "must be text"),
    ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": "\\ud800"}\n', "line 2", "lone surrogate"),
    ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": "   "}\n', "line 2", "empty"),
    ("p.csv", b"question,answer\nq,a\n", "header", 'no "prompt" column'),
    ("p.csv", b"prompt,x\nfine,1\n,2\n", "row 3", "empty"),
    ("p.csv", b"x,prompt\nfine,ok\nshort\n", "row 3", "no value"),
    ("p.csv", b"", "", "empty"),
    ("p.csv", b'prompt\n"two\nlines"\n"' + b"x" * 140_000 + b'"\n', "row 3", "unreadable CSV"),
    ("p.txt", b"ok\n" + b"x" * 101 + b"\n", "line 2", "101 characters"),
    ("p.txt", b"\n\n  \n", "", "no prompts"),
    ("p.xlsx", b"prompt\nhello\n", "", ".csv"),
]


@pytest.mark.parametrize("name,content,where,what", BAD_FILES, ids=[f"{n}:{w}:{x}" for n, _, w, x in BAD_FILES])
def test_each_bad_file_gives_one_line_naming_the_row(tmp_path, name, content, where, what):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(WhatIfError) as info:
        read_prompts(path, max_chars=100)
    message = str(info.value)
    assert "\n" not in message and where in message and what in message, message
    assert isinstance(info.value, UserError) and info.value.status == 400


def test_caps_on_bytes_and_prompt_count(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"hello\n" * 100)
    with pytest.raises(WhatIfError, match="limit"):
        read_prompts(path, max_bytes=599)
    with pytest.raises(WhatIfError, match="over"):
        read_prompts(b"hello\n" * 100, fmt="txt", max_bytes=599)
    assert len(read_prompts(path, max_bytes=600, max_prompts=100)) == 100
    with pytest.raises(WhatIfError, match="more than 99 prompts"):
        read_prompts(path, max_prompts=99)
    assert whatif.WHATIF_MAX_BYTES == 10 * 2**20


def test_bytes_need_a_name_or_a_format():
    with pytest.raises(WhatIfError, match=r"\.txt"):
        read_prompts(b"hello")
    assert read_prompts(b"hello", fmt="txt").prompts == ["hello"]


def test_default_prices_are_evals():
    from routellm_demo.evals.command import DEFAULT_STRONG_PRICE, DEFAULT_WEAK_PRICE

    assert (whatif.DEFAULT_STRONG_PRICE, whatif.DEFAULT_WEAK_PRICE) == (DEFAULT_STRONG_PRICE, DEFAULT_WEAK_PRICE)


# ---- the arithmetic, with a fake embedder and router -----------------------------------------


def write_eval_run(folder, benchmark, curves, q_strong=0.8, q_weak=0.6):
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"benchmark": benchmark, "routers": {name: {"apgr": 0.6} for name in curves}, "q_strong": q_strong,
               "q_weak": q_weak, "finished_at": "2026-01-01T00:00:00+00:00", "curves": curves}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def fake_runtime(scores, eval_dir, router="classifier"):
    """The three things what_if uses: an embedder (here: zeros), routers (fixed scores per prompt
    text), the config (router, prompt limit, eval folder)."""
    calls = []

    class Embedder:
        def embed_private(self, texts, on_batch=None):
            on_batch and on_batch(len(set(texts)), len(set(texts)))
            return np.zeros((len(texts), 384), dtype=np.float32)

    class Routers:
        def score(self, name, vectors, prompts):
            calls.append(name)
            return np.array([scores[p] for p in prompts])

    config = SimpleNamespace(router=router, max_prompt_chars=8000, eval_dir=eval_dir)
    return SimpleNamespace(embedder=Embedder(), routers=Routers(), config=config, calls=calls)


def test_costs_and_savings_by_hand(tmp_path):
    # "abcd" * 3: 12 characters = 3 tokens + 4 chat tokens = 7; "x" * 40: 10 + 4 = 14 tokens.
    short, long = "abcd" * 3, "x" * 40
    rt = fake_runtime({short: 0.8, long: 0.3}, tmp_path / "none")
    result = what_if(rt, [short, long], router="classifier", strong_price=10, weak_price=1, answer_tokens=100)
    assert result.prompt_tokens.tolist() == [7, 14]
    # Strong: (7*10 + 100*10)/1e6 = 1070e-6 and (14*10 + 1000)/1e6 = 1140e-6; weak: 107e-6 and 114e-6.
    assert result.always_strong_per_1k == pytest.approx((1070 + 1140) / 2 / 1000)
    assert result.always_weak_per_1k == pytest.approx((107 + 114) / 2 / 1000)
    row = result.row_at(0.5)  # the short prompt to strong, the long one to weak
    assert row["strong_calls"] == 1 and row["strong_pct"] == 50
    assert row["cost_per_1k"] == pytest.approx((1070 + 114) / 2 / 1000)
    assert row["savings_pct"] == pytest.approx(100 * (1 - 592 / 1105))
    assert result.row_at(0.0)["savings_pct"] == pytest.approx(0)
    assert result.row_at(0.9)["savings_pct"] == pytest.approx(100 * (1 - 110.5 / 1105))
    # Separate output prices: only the answer's 100 tokens change price.
    result = what_if(rt, [short, long], router="classifier", strong_price=10, weak_price=1, strong_output_price=20,
                     weak_output_price=2, answer_tokens=100)
    assert result.always_strong_per_1k == pytest.approx((70 + 2000 + 140 + 2000) / 2 / 1000)
    assert result.quality is None and "no mmlu evaluation" in result.notes[0]
    assert what_if(rt, [short], answer_tokens=100.0, strong_price=10, weak_price=1).answer_tokens == 100
    assert any("routing only" in n and "no fallback" in n for n in result.notes)


def test_quality_is_read_at_the_same_strong_share_not_the_same_threshold(tmp_path):
    x = list(range(101))
    quality = [0.6 + 0.004 * min(p, 50) for p in x]  # 0.6 at 0%, 0.8 from 50% on
    write_eval_run(tmp_path / "eval" / "gsm8k", "gsm8k", {"classifier": {"strong_pct": x, "quality": quality}})
    scores = {"a": 0.9, "b": 0.2, "c": 0.3, "d": 0.4}
    rt = fake_runtime(scores, tmp_path / "eval")
    result = what_if(rt, list(scores), benchmark="gsm8k", strong_price=1, weak_price=0.1, answer_tokens=10)
    row = result.row_at(0.5)
    assert row["strong_pct"] == 25  # threshold 0.5 sends 1 in 4 to strong here...
    assert row["est_quality"] == pytest.approx(0.6 + 0.004 * 25)  # ...so the curve is read at 25%, not 50%
    assert result.row_at(0.0)["est_quality"] == pytest.approx(0.8)
    assert result.quality.router == "classifier" and result.quality.q_strong == 0.8
    assert "not measured on your prompts" in result.quality.label and "gsm8k" in result.column_titles()["est_quality"]
    assert result.notes == [n for n in result.notes if "did not score" not in n]


def test_a_router_the_eval_did_not_score_uses_the_closest_with_a_note(tmp_path):
    x = list(range(101))
    write_eval_run(tmp_path / "mmlu", "mmlu", {"mf": {"strong_pct": x, "quality": [0.7] * 101},
                                               "random": {"strong_pct": x, "quality": [0.6] * 101}})
    rt = fake_runtime({"a": 0.5}, tmp_path, router="sw_ranking")
    result = what_if(rt, ["a"], strong_price=1, weak_price=0.1)
    assert result.router == "sw_ranking" and result.quality.router == "mf"
    assert "did not score sw_ranking" in result.notes[0] and "mf" in result.notes[0]
    assert result.row_at(0.5)["est_quality"] == pytest.approx(0.7)


def test_table_progress_and_downloads(tmp_path):
    prompts = [f"prompt number {i}" for i in range(50)]
    scores = {p: (i % 10) / 10 for i, p in enumerate(prompts)}
    rt = fake_runtime(scores, tmp_path)
    seen = []
    result = what_if(rt, PromptFile(prompts, list(range(2, 52)), "csv", "mine.csv"), strong_price=2,
                     weak_price=1, thresholds=[0.55], progress=lambda d, t, s: seen.append((s, d, t)))
    assert ("embedding", 0, 50) in seen and seen[-1] == ("scoring", 50, 50)
    shares = [r["strong_pct"] for r in result.table]
    assert [r["threshold"] for r in result.table] == sorted(r["threshold"] for r in result.table)
    assert all(a >= b for a, b in zip(shares, shares[1:])) and shares[0] == 100 and shares[-1] == 0
    assert 0.55 in result.thresholds
    assert [r["target_pct"] for r in result.by_share()] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [round(r["strong_pct"]) for r in result.by_share()] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert sum(result.histogram()["counts"]) == 50
    out = result.write_csv(tmp_path / "scores.csv", threshold=0.5)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 50 and rows[0]["row"] == "2" and rows[0]["prompt"] == prompts[0]
    assert rows[9]["model"] == "strong" and rows[0]["model"] == "weak"
    json.dumps(result.to_dict())  # JSON-ready as it is
    assert result.write_plot(tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize("kwargs,what", [
    ({"benchmark": "hellaswag"}, "unknown benchmark"),
    ({"strong_price": 0, "weak_price": 0}, "above 0"),
    ({"weak_price": -1}, "0 or more"),
    ({"answer_tokens": -5}, "answer length"),
    ({"answer_tokens": 2.5}, "answer length"),
    ({"thresholds": [1.5]}, "outside [0, 1]"),
    ({"router": "gpt5"}, "unknown router"),
])
def test_bad_settings_are_one_line_user_errors(tmp_path, kwargs, what):
    rt = fake_runtime({"a": 0.5}, tmp_path)
    with pytest.raises(UserError, match=what.replace("[", r"\[").replace("]", r"\]")):
        what_if(rt, ["a"], **kwargs)
    assert rt.calls == []


# ---- the curves eval stores --------------------------------------------------------------------


def test_eval_curve_points_run_from_weak_to_strong_and_average_draws():
    sq = np.array([1, 1, 0, 1.0])
    wq = np.array([0, 1, 0, 0.0])
    perfect = np.array([0.9, 0.1, 0.2, 0.8])
    worst = -perfect
    one = curve_points([(perfect, sq, wq, None)])
    assert one["strong_pct"][0] == 0 and one["strong_pct"][-1] == 100 and len(one["strong_pct"]) == 101
    assert one["quality"][0] == pytest.approx(wq.mean()) and one["quality"][-1] == pytest.approx(sq.mean())
    assert one["quality"][50] == pytest.approx(0.75)  # the two gains first
    both = curve_points([(perfect, sq, wq, None), (worst, sq, wq, None)])
    assert both["quality"][50] == pytest.approx((0.75 + 0.25) / 2)


def test_eval_run_reads_curves_and_refuses_broken_ones(tmp_path):
    x = list(range(101))
    write_eval_run(tmp_path / "a", "mmlu", {"mf": {"strong_pct": x, "quality": [0.5] * 101},
                                            "bad": {"strong_pct": [0, 0], "quality": [1, 2]},
                                            "short": {"strong_pct": x, "quality": [1]}})
    run = read_run(tmp_path / "a")
    assert run.curve_routers() == ["mf"] and run.curve("nope") is None


@pytest.mark.parametrize("benchmark", ["mmlu", "gsm8k", "mt-bench"])
def test_the_shipped_eval_runs_store_a_curve_per_router(benchmark):
    run = read_run(REPO / "data" / "eval" / benchmark)
    assert run is not None and set(run.curve_routers()) == set(run.metrics["routers"])
    for name in run.curve_routers():
        x, y = run.curve(name)
        assert x[0] == 0 and x[-1] == 100
        assert y[0] == pytest.approx(run.metrics["q_weak"]) and y[-1] == pytest.approx(run.metrics["q_strong"])


# ---- real prompts, the real embedder and routers ----------------------------------------------


def store_dump(path) -> str:
    """Every table's rows, hashed: equal before and after means nothing was written."""
    con = sqlite3.connect(path)
    try:
        return hashlib.sha256("\n".join(con.iterdump()).encode()).hexdigest()
    finally:
        con.close()


def mmlu_prompts(shared_routellm, n):
    prompts = []
    for path in sorted((shared_routellm / "mmlu" / "responses").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            prompts.extend(r["prompt"] for r in csv.DictReader(f))
        if len(prompts) >= 3 * n:
            break
    return prompts[::3][:n]  # a few subjects, spread


def test_the_store_is_left_alone_by_a_run_on_a_real_store(tmp_path, monkeypatch):
    """The fast loop's check (the model stubbed out): a real store with battles, cached embeddings and
    a routing log row; a what-if through the real Embedder and RouterSet writes none of it."""
    from routellm_demo.config import load_config
    from routellm_demo.embeddings import Embedder
    from routellm_demo.router_set import RouterSet
    from routellm_demo.store import Store

    def fake_encode(self, texts):
        rng = np.random.default_rng(abs(hash(tuple(texts))) % 2**32)
        v = rng.standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    monkeypatch.setattr(Embedder, "_encode", fake_encode)
    path = tmp_path / "store.db"
    store = Store(path)
    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    store.add_battles([{"prompt": f"stored question {i}", "model_a": strong, "model_b": weak, "strong_side": "a",
                        "winner": "model_a" if i % 3 else "model_b", "source": "test", "uid": f"t{i}"}
                       for i in range(30)])
    embedder = Embedder(store)
    config = replace(load_config(environ={}), db_path=path, seed=False, eval_dir=tmp_path / "eval")
    rt = SimpleNamespace(embedder=embedder, routers=RouterSet.from_config(store, embedder, config), config=config)
    rt.routers.get("sw_ranking")  # loading it caches the stored battles' embeddings: the store's own work
    before = store_dump(path)
    mine = [f"my private prompt {i}" for i in range(40)]
    result = what_if(rt, mine, router="sw_ranking", strong_price=5, weak_price=1)
    store.close()
    assert result.n_prompts == 40 and store_dump(path) == before


@pytest.fixture(scope="module")
def seeded_runtime(tmp_path_factory):
    from routellm_demo.config import load_config
    from routellm_demo.runtime import build_runtime

    path = tmp_path_factory.mktemp("whatif") / "store.db"
    rt = build_runtime(replace(load_config(environ={}), db_path=path, seed=True))  # the app's first start
    assert sum(rt.store.count_battles().values()) > 1000
    yield rt
    rt.close()


@pytest.mark.slow
def test_real_prompts_through_the_real_embedder_and_router_leave_the_store_alone(seeded_runtime, shared_routellm,
                                                                                tmp_path):
    rt = seeded_runtime
    rt.routers.get("sw_ranking")  # fitted from the seeded battles (their embeddings come with the seed)
    prompts = mmlu_prompts(shared_routellm, 200)
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    file = read_prompts(path, max_chars=rt.config.max_prompt_chars)
    before = store_dump(rt.config.db_path)
    encoded = rt.embedder.encoded
    result = what_if(rt, file, router="sw_ranking", benchmark="mmlu", strong_price=24.7, weak_price=0.24)
    assert store_dump(rt.config.db_path) == before  # no prompt, vector or log row was written
    assert rt.embedder.encoded - encoded == len(set(prompts))
    assert result.n_prompts == 200 and np.all((result.scores > 0) & (result.scores < 1))
    assert result.score_summary()["distinct"] > 100  # sw_ranking reads each prompt
    shares = [r["strong_pct"] for r in result.table]
    assert all(a >= b for a, b in zip(shares, shares[1:])) and shares[0] == 100 and shares[-1] == 0
    savings = [r["savings_pct"] for r in result.table]
    assert all(a <= b + 1e-9 for a, b in zip(savings, savings[1:]))
    assert result.quality is not None and result.quality.router == "sw_ranking"
    quality = [r["est_quality"] for r in result.table]
    assert quality[0] == pytest.approx(result.quality.q_strong) and quality[-1] == pytest.approx(result.quality.q_weak)
    rows = list(csv.DictReader(result.write_csv(tmp_path / "scores.csv").open(encoding="utf-8")))
    assert len(rows) == 200 and [r["prompt"] for r in rows] == prompts
    assert [float(r["score"]) for r in rows] == result.scores.tolist()
    # The same vectors as the cached path gives, without the cache.
    vectors = rt.embedder.embed_private(prompts[:3])
    assert np.allclose(vectors, type(rt.embedder)(None).embed(prompts[:3]), atol=1e-5)
    assert store_dump(rt.config.db_path) == before


def test_the_cli_refuses_a_bad_file_in_one_line_before_opening_the_store(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt\nfine\n\n  \n", encoding="utf-8")
    db = tmp_path / "never.db"
    proc = subprocess.run([sys.executable, "-m", "routellm_demo", "--db", str(db), "whatif", str(bad)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "row 4" in lines[0] and "empty" in lines[0]
    assert not db.exists()


@pytest.mark.slow
def test_cli_whatif_on_a_real_file(tmp_path, shared_routellm):
    prompts = mmlu_prompts(shared_routellm, 60)
    path = tmp_path / "mine.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "prompt"])
        w.writerows([i, p] for i, p in enumerate(prompts))
    out, plot = tmp_path / "scores.csv", tmp_path / "plot.png"
    db = tmp_path / "cli.db"
    base = [sys.executable, "-m", "routellm_demo", "--db", str(db), "whatif", str(path), "--router", "classifier",
            "--benchmark", "gsm8k", "--strong-price", "10", "--weak-price", "0.5", "--answer-tokens", "200"]
    proc = subprocess.run([*base, "--out", str(out), "--plot", str(plot)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "embedding: 60/60 prompts" in proc.stderr and "scoring: 60/60 prompts" in proc.stderr
    assert "estimated from gsm8k's held-out evaluation, not measured on your prompts" in proc.stdout
    assert "routing only" in proc.stdout and "saved %" in proc.stdout
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == 60 and plot.stat().st_size > 1000
    proc = subprocess.run([*base, "--json", "--quiet", "--thresholds", "0.5"], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0 and proc.stderr.count("prompts") == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["n_prompts"] == 60 and len(result["prompts"]) == 60 and result["prompts"][0]["row"] == 2
    assert result["quality"]["curve_router"] == "classifier" and result["prices"]["strong_output"] == 10
    shares = [r["strong_pct"] for r in result["table"]]
    assert all(a >= b for a, b in zip(shares, shares[1:]))
    from routellm_demo.store import prompt_sha256

    traces = set(prompts) | {prompt_sha256(p) for p in prompts}
    with sqlite3.connect(db) as con:  # the CLI's store got no trace of the prompts, nor of their hashes
        tables = [t for (t,) in con.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            for row in con.execute(f"select * from [{table}]"):
                assert not any(isinstance(v, str) and v in traces for v in row)
