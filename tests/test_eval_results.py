"""Finding finished evaluation runs for the app's Evaluation tab (real files in a tmp folder)."""

import json
import os

from routellm_demo.evals.results import find_runs, latest_by_benchmark, read_run


def write_run(folder, benchmark, finished_at=None, routers=None):
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"benchmark": benchmark, "n_prompts": 10, "protocol": "grouped 5-fold cross-validation",
               "routers": routers or {"mf": {"apgr": 0.6, "apgr_ci95": [0.55, 0.65], "cpt50": 30.0}},
               "baselines": {"oracle": {"apgr": 1.1, "cpt50": 6.0}}}
    if finished_at:
        metrics["finished_at"] = finished_at
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_newest_run_per_benchmark_wins(tmp_path):
    write_run(tmp_path / "mmlu", "mmlu", "2026-01-01T00:00:00+00:00")
    write_run(tmp_path / "old" / "mmlu", "mmlu", "2025-01-01T00:00:00+00:00", {"mf": {"apgr": 0.1}})
    write_run(tmp_path / "gsm8k", "gsm8k", "2026-02-01T00:00:00+00:00")
    latest = latest_by_benchmark(tmp_path)
    assert list(latest) == ["gsm8k", "mmlu"]
    assert latest["mmlu"].folder == tmp_path / "mmlu"
    assert [r.benchmark for r in find_runs(tmp_path)] == ["gsm8k", "mmlu", "mmlu"]  # newest first


def test_table_has_routers_then_baselines(tmp_path):
    run = read_run(write_run(tmp_path / "r", "gsm8k"))
    rows = run.table()
    assert [r["router"] for r in rows] == ["mf", "oracle"]
    assert rows[0]["apgr"] == 0.6 and rows[0]["cpt50"] == 30.0 and rows[1]["apgr_ci95"] is None
    assert run.plot is None  # no curve.png written
    assert "gsm8k: 10 prompts" in run.summary()


def test_bad_or_unfinished_folders_are_skipped(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metrics.json").write_text(json.dumps({"benchmark": "mmlu"}))  # no routers
    (tmp_path / "running").mkdir()  # a run still writing: no metrics.json yet
    write_run(tmp_path / "ok", "mmlu")
    assert [r.folder.name for r in find_runs(tmp_path)] == ["ok"]
    assert find_runs(tmp_path / "missing") == []


def test_runs_without_a_timestamp_use_the_file_time(tmp_path):
    old = write_run(tmp_path / "a", "mmlu")
    new = write_run(tmp_path / "b", "mmlu")
    os.utime(old / "metrics.json", (1_000_000, 1_000_000))
    assert latest_by_benchmark(tmp_path)["mmlu"].folder == new
