"""The honest protocol: leakage guard, grouped folds, data-folder errors, and a small real GSM8K eval."""

import json

import numpy as np
import pytest

from routellm_demo.evals.benchmarks import (
    EvalError, EvalSet, check_data_dir, gold_battles, gold_outcomes, load_benchmark, merge_duplicate_groups,
)
from routellm_demo.evals.protocol import (
    LeakageError, check_no_leakage, cross_validated_scores, drop_leaked, grouped_folds, train_test_scores,
)


def toy_set(n=30, n_groups=6, prefix="toy", seed=0) -> EvalSet:
    rng = np.random.default_rng(seed)
    prompts = [f"{prefix} prompt {i}" for i in range(n)]
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return EvalSet(prefix, prompts, (rng.random(n) < 0.8) * 1.0, (rng.random(n) < 0.6) * 1.0,
                   [f"{prefix}:g{i % n_groups}" for i in range(n)], embeddings=emb)


class SpyRouter:
    """Remembers what it was trained on; scores by the first embedding coordinate."""

    def __init__(self, log):
        self.log = log

    def win_probability(self, x, prompts=None):
        assert prompts is not None and len(prompts) == len(x), "the evaluation passes the scored prompts' texts"
        return 1 / (1 + np.exp(-np.asarray(x)[:, 0]))


def spy_fitter(log):
    def fit(train):
        log.append(list(train.prompts))
        return SpyRouter(log)

    return fit


# -- leakage guard ---------------------------------------------------------------------------------


def test_leakage_guard_catches_a_leaked_prompt():
    train = ["What is 2 + 2?", "Name a prime."]
    check_no_leakage(["What is 3 + 3?"], train)  # clean: no error
    with pytest.raises(LeakageError, match="1 evaluated prompt"):
        check_no_leakage(["What is 3 + 3?", "Name a prime."], train)
    with pytest.raises(LeakageError):  # outer whitespace does not hide a copy
        check_no_leakage(["  What is 2 + 2?\n"], train)
    assert issubclass(LeakageError, ValueError)


def test_drop_leaked_counts_what_it_drops():
    es = toy_set(10)
    kept, dropped = drop_leaked(es, [es.prompts[3], es.prompts[7], "unrelated"])
    assert dropped == 2 and len(kept) == 8
    assert es.prompts[3] not in kept.prompts
    assert kept.embeddings.shape == (8, 8)


# -- grouped folds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_grouped_folds_never_split_a_group(k):
    rng = np.random.default_rng(k)
    groups = rng.choice([f"subject{i}" for i in range(12)], size=500)
    folds = grouped_folds(groups, k, seed=1)
    for g in set(groups):
        assert len(set(folds[groups == g])) == 1
    assert set(folds) == set(range(min(k, 12)))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= np.unique(groups, return_counts=True)[1].max()


def test_grouped_folds_clip_k_and_refuse_one_group():
    assert set(grouped_folds(["a", "a", "b", "c"], 10)) == {0, 1, 2}
    with pytest.raises(EvalError):
        grouped_folds(["a", "a"], 5)
    with pytest.raises(EvalError):
        grouped_folds(["a", "b"], 1)
    np.testing.assert_array_equal(grouped_folds(list("aabbccdd"), 2, seed=3), grouped_folds(list("aabbccdd"), 2, seed=3))


def test_identical_prompts_share_a_group():
    groups = merge_duplicate_groups(["x", "y", "x", "z", "y"], ["g1", "g2", "g3", "g4", "g4"])
    assert groups[0] == groups[2]  # "x" in g1 and g3
    assert groups[1] == groups[4] == groups[3]  # "y" ties g2 to g4, and "z" is in g4


def test_cross_validation_never_trains_on_a_scored_prompt():
    es = toy_set(40, 8)
    extra = toy_set(10, 2, prefix="other", seed=1)
    extra.prompts[0] = es.prompts[5]  # an eval prompt hiding in the other benchmark's data
    log = []
    res = cross_validated_scores(es, {"spy": spy_fitter(log)}, k=4, extra=extra)
    assert len(log) == 4
    assert res.report["extra_dropped_as_eval_prompts"] == 1
    assert res.report["extra_training_prompts"] == 9
    folds = grouped_folds(es.groups, 4)
    for f, trained_on in enumerate(log):
        held_out = {p for p, fold in zip(es.prompts, folds) if fold == f}
        assert not held_out & set(trained_on)
        assert sum(p.startswith("other") for p in trained_on) == 9
    assert not np.isnan(res.scores["spy"]).any()


def test_split_by_prompt_shares_subjects_but_never_a_prompt():
    es = toy_set(40, 4)
    es.prompts[7] = es.prompts[2]  # the same text twice, in two groups
    by_prompt = es.by_prompt()
    assert len(set(by_prompt.groups)) == len(set(es.prompts)) == 39
    assert by_prompt.groups[7] == by_prompt.groups[2]
    assert list(es.groups) != list(by_prompt.groups)  # the original set is untouched
    log = []
    res = cross_validated_scores(by_prompt, {"spy": spy_fitter(log)}, k=4)
    folds = res.folds
    for f, trained_on in enumerate(log):
        held_out = {p for p, fold in zip(by_prompt.prompts, folds) if fold == f}
        assert not held_out & set(trained_on)
    subject_folds = {g: {int(f) for g2, f in zip(es.groups, folds) if g2 == g} for g in set(es.groups)}
    assert all(len(fs) > 1 for fs in subject_folds.values())  # each subject on both sides


def test_eval_refuses_an_unknown_split(tmp_path):
    from routellm_demo.evals.command import run_eval

    with pytest.raises(EvalError, match="split must be one of group, prompt"):
        run_eval("gsm8k", tmp_path, tmp_path / "out", ["random"], split="subject")


def test_train_test_drops_eval_prompts_found_in_training():
    es, train = toy_set(20), toy_set(15, prefix="train", seed=2)
    train.prompts[:3] = es.prompts[:3]
    res = train_test_scores(es, train, {"spy": spy_fitter([])})
    assert res.report["eval_prompts_dropped_as_in_training"] == 3
    assert len(res.evalset) == 17 and len(res.scores["spy"]) == 17
    with pytest.raises(EvalError, match="every one"):
        train_test_scores(es, es, {"spy": spy_fitter([])})


def test_gold_battles_follow_the_quality_gap():
    es = EvalSet("t", ["a", "b", "c", "d"], [1, 0, 1, 0], [0, 1, 1, 0], ["t:1"] * 4,
                 embeddings=np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(gold_outcomes(es), [1.0, 0.0, 0.5, 0.5])
    b = gold_battles(es)
    np.testing.assert_array_equal(b.strong_outcome(), [1.0, 0.0, 0.5, 0.5])


# -- data folders ----------------------------------------------------------------------------------


def test_missing_and_foreign_data_dirs_are_clear_errors(tmp_path):
    with pytest.raises(EvalError, match="no data folder"):
        check_data_dir(tmp_path / "nope")
    (tmp_path / "something_else").mkdir()
    with pytest.raises(EvalError, match="does not look like RouteLLM"):
        check_data_dir(tmp_path)
    (tmp_path / "mmlu").mkdir()
    with pytest.raises(EvalError, match="no gsm8k/ folder"):
        check_data_dir(tmp_path, "gsm8k")
    (tmp_path / "mt_bench").mkdir()
    with pytest.raises(EvalError, match="missing file question.jsonl"):
        load_benchmark(tmp_path, "mt-bench")


def test_eval_command_refuses_a_missing_data_dir(tmp_path, capsys):
    from routellm_demo.evals.command import main

    code = main(["--benchmark", "gsm8k", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "no data folder" in capsys.readouterr().err


def test_register_adds_eval_to_a_parser():
    import argparse

    from routellm_demo.evals.command import cmd_eval, register

    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(["eval", "--benchmark", "mmlu", "--data-dir", "d", "--out", "o", "--routers", "elo", "mf"])
    assert args.func is cmd_eval and args.routers == ["elo", "mf"] and args.folds == 5 and not args.combine


# -- a small real evaluation -----------------------------------------------------------------------


def test_shared_gsm8k_loads_decontaminated(shared_routellm):
    es = load_benchmark(shared_routellm, "gsm8k")
    assert len(es) > 100 and es.skipped_contaminated >= 0
    assert set(np.unique(es.strong_quality)) <= {0.0, 1.0}
    assert es.q_strong > es.q_weak
    assert len(set(es.groups)) == len(es)  # GSM8K: one group per row


@pytest.mark.slow
def test_small_end_to_end_eval_on_gsm8k(shared_routellm, tmp_path):
    from routellm_demo.evals.command import run_eval

    # ~15 s on an idle 2-core machine (most of it loading the encoder and embedding 120 prompts).
    out = tmp_path / "out"
    metrics = run_eval("gsm8k", shared_routellm, out, ["random", "elo"], folds=3, limit=120,
                       cache_db=tmp_path / "cache.db", bootstrap=20, progress=False)
    assert metrics["n_prompts"] == 120 and metrics["folds"] == 3
    assert metrics["routers"]["elo"]["apgr"] == pytest.approx(0.5)  # prompt-blind: each fold all tied
    saved = json.loads((out / "metrics.json").read_text())
    for router in ("random", "elo"):
        m = saved["routers"][router]
        for key in ("apgr", "cpt20", "cpt50", "cpt80", "auc", "strong_pct_at_95", "cost_reduction_at_95"):
            assert key in m
        assert 0.0 <= m["cpt50"] <= 100.0
    assert saved["baselines"]["oracle"]["apgr"] > 0.9
    lines = (out / "scores.csv").read_text(encoding="utf-8")
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(lines)))
    assert len(rows) == 2 * 120 and set(rows[0]) == {"router", "prompt", "score"}
    assert (out / "curve.png").stat().st_size > 10_000
    prompts = list(csv.DictReader(io.StringIO((out / "prompts.csv").read_text(encoding="utf-8"))))
    assert [r["prompt"] for r in prompts] == [r["prompt"] for r in rows[:120]]
    assert {r["fold"] for r in prompts} == {"0", "1", "2"}


@pytest.mark.slow
def test_repeated_fold_draws_report_the_mean_of_the_draws(shared_routellm, tmp_path):
    from routellm_demo.evals.command import run_eval

    common = dict(folds=3, limit=120, cache_db=tmp_path / "cache.db", bootstrap=0, progress=False)
    once = run_eval("gsm8k", shared_routellm, tmp_path / "once", ["random", "sw_ranking"], **common)
    three = run_eval("gsm8k", shared_routellm, tmp_path / "three", ["random", "sw_ranking"], repeats=3, **common)
    assert three["repeats"] == 3 and three["fold_seeds"] == [0, 1, 2] and "mean of 3 fold draws" in three["protocol"]
    for name in ("random", "sw_ranking"):
        row = three["routers"][name]
        assert len(row["apgr_by_draw"]) == 3 and len(row["cpt50_by_draw"]) == 3
        assert row["apgr_by_draw"][0] == pytest.approx(once["routers"][name]["apgr"])  # draw 0 = a single run
        assert row["apgr"] == pytest.approx(np.mean(row["apgr_by_draw"]))
        assert row["cpt50"] == pytest.approx(np.mean(row["cpt50_by_draw"]))
    assert len(set(three["routers"]["sw_ranking"]["apgr_by_draw"])) > 1  # the draws really differ
    with pytest.raises(EvalError, match="repeats"):
        run_eval("gsm8k", shared_routellm, tmp_path / "x", ["random"], train_dir=shared_routellm, repeats=2, **common)


@pytest.mark.slow
def test_eval_writes_to_the_configured_eval_dir_by_default(shared_routellm, tmp_path, monkeypatch, capsys):
    from routellm_demo.cli import main
    from routellm_demo.evals.results import latest_by_benchmark

    monkeypatch.setenv("ROUTELLM_DEMO_EVAL_DIR", str(tmp_path / "runs"))  # where the app's Evaluation tab looks
    code = main(["eval", "--benchmark", "gsm8k", "--data-dir", str(shared_routellm), "--routers", "random", "elo",
                 "--folds", "2", "--limit", "40", "--bootstrap", "0", "--cache-db", str(tmp_path / "c.db"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    run = latest_by_benchmark(tmp_path / "runs")["gsm8k"]
    assert run.folder == tmp_path / "runs" / "gsm8k" and run.plot is not None
    assert run.metrics["finished_at"] and {"random", "elo"} <= set(run.metrics["routers"])


def test_bad_router_parameters_fail_before_any_fit():
    from routellm_demo.evals.command import parse_params
    from routellm_demo.evals.routers import fitter_for

    with pytest.raises(EvalError, match="bad parameters"):
        fitter_for("mf", {"dimm": 3})
    with pytest.raises(EvalError, match="bad parameters"):
        fitter_for("classifier", {"tune": {"alpah": [1e-3]}})
    with pytest.raises(EvalError, match="not valid JSON"):
        parse_params("{mf: 1}")
    with pytest.raises(EvalError, match="unknown router"):
        parse_params('{"nope": {}}')
    assert fitter_for("mf", {"tune": {"dim": [8, 16]}}).history == []
