"""MT-Bench's turns read one at a time (turn 2 as a conversation), the eval in both routing modes, and
the paired bootstrap that decides between them (issue #16)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routellm_demo.evals.benchmarks import (
    EvalError, EvalSet, context_leaks, load_benchmark, merge_duplicate_groups, without_context_turns,
)
from routellm_demo.evals.context import compare_contexts, context_wins, draw_apgr, paired_bootstrap
from routellm_demo.importers import STRONG_MODEL, WEAK_MODEL, load_contamination


def judged(shared, turn):
    scores = {}
    for line in (shared / "mt_bench" / "judgements.jsonl").read_text().splitlines():
        j = json.loads(line)
        if j["turn"] == turn:
            scores[(j["question_id"], j["model"])] = float(j["score"])
    return scores


def test_turn_two_is_the_follow_up_with_the_first_turn_as_context(shared_routellm):
    questions = {q["question_id"]: q for q in map(json.loads, (shared_routellm / "mt_bench" / "question.jsonl")
                                                  .read_text().splitlines())}
    listed = {t.strip() for t in load_contamination(shared_routellm / "mt_bench" / "contaminated_prompts.jsonl")[1]}
    both = load_benchmark(shared_routellm, "mt-bench")
    for turn in (1, 2):
        s = load_benchmark(shared_routellm, "mt-bench", turn=turn)
        scores = judged(shared_routellm, turn)
        assert s.benchmark == f"mt-bench-turn{turn}" and len(s) == len(both) >= 30
        assert list(s.groups) == list(both.groups)  # the same questions, grouped by question as before
        for prompt, context, group, sq, wq in zip(s.prompts, s.contexts, s.groups, s.strong_quality,
                                                  s.weak_quality):
            q = questions[int(group.split(":")[1])]
            assert prompt == q["turns"][turn - 1] and context == tuple(q["turns"][:turn - 1])
            assert (sq, wq) == (scores[(q["question_id"], STRONG_MODEL)], scores[(q["question_id"], WEAK_MODEL)])
            assert not {t.strip() for t in q["turns"]} & listed  # a question goes if either turn is listed
        assert s.skipped_contaminated == both.skipped_contaminated > 0
    # the mean of both turns, per question, is what the default reading gives
    t1, t2 = (load_benchmark(shared_routellm, "mt-bench", turn=t) for t in (1, 2))
    np.testing.assert_allclose(both.strong_quality, (t1.strong_quality + t2.strong_quality) / 2)
    assert both.contexts is None
    with pytest.raises(EvalError, match="--turn is for mt-bench only"):
        load_benchmark(shared_routellm, "gsm8k", turn=2)


def test_conversations_sharing_a_turn_share_a_group_and_leaks_are_found():
    groups = merge_duplicate_groups(["b", "c", "d"], ["g1", "g2", "g3"], [("a",), ("b",), ()])
    assert groups[0] == groups[1] != groups[2]  # "b" is g1's prompt and g2's earlier turn
    s = EvalSet("x", ["why?", "how?"], [1, 0], [0, 0], ["g1", "g2"], contexts=[("prove it",), ()])
    assert list(context_leaks(s, [" prove it ", "other"])) == [True, False]
    train = EvalSet("y", ["prove it", "other"], [1, 1], [0, 0], ["t1", "t2"])
    assert without_context_turns(train, s).prompts == ["other"]
    assert s.subset([1]).contexts == [()] and s.by_prompt().contexts == s.contexts


def test_paired_bootstrap_mechanics():
    rng = np.random.default_rng(0)
    n = 60
    sq, wq = rng.integers(0, 2, n).astype(float), np.zeros(n)
    groups = np.repeat(np.arange(30), 2)  # two prompts per question: resampled together
    folds = [np.arange(n) % 3]
    noise = rng.random(n)
    same = paired_bootstrap([noise], [noise], sq, wq, groups, folds, rounds=200)
    assert same["diff"] == 0 and same["diff_ci95"] == [0.0, 0.0] and same["groups"] == 30
    better = paired_bootstrap([noise], [sq + 0.1 * noise], sq, wq, groups, folds, rounds=200)
    assert better["b"] == pytest.approx(draw_apgr([sq + 0.1 * noise], sq, wq, folds))
    assert better["b"] > better["a"]
    assert better["diff_ci95"][0] > 0 and better["p_b_better"] == 1.0


@pytest.mark.slow  # MiniLM and router fits: tens of seconds
def test_compare_contexts_scores_both_modes_on_the_same_prompts_and_folds(shared_routellm, tmp_path):
    """End to end on the real turn 2 (real MiniLM; sw_ranking only, MT-Bench alone, one fold draw)."""
    result = compare_contexts(shared_routellm, ["sw_ranking"], repeats=1, combine=False, rounds=100,
                              weights=[1.0, 2.0], cache_db=tmp_path / "cache.db")
    row = result["routers"]["sw_ranking"]
    assert result["benchmark"] == "mt-bench-turn2" and result["n_prompts"] == result["questions"] >= 30
    assert 0.0 <= row["last_turn"] <= 1.0 and 0.0 <= row["context"] <= 1.0
    assert row["last_turn"] != row["context"]  # the context moved the scores
    assert row["paired"]["diff"] == pytest.approx(row["context"] - row["last_turn"])
    lo, hi = row["paired"]["diff_ci95"]
    assert lo <= row["paired"]["diff"] <= hi
    assert set(row["context_by_weight"]) == {"1", "2"} and row["context_by_weight"]["1"] == row["context"]
    assert context_wins(result, "sw_ranking") == (lo > 0)


@pytest.mark.slow  # MiniLM and router fits: tens of seconds
def test_eval_command_turn_two_writes_its_own_run(shared_routellm, tmp_path):
    from routellm_demo.evals.command import run_eval

    metrics = run_eval("mt-bench", shared_routellm, tmp_path / "out", ["random", "sw_ranking"], turn=2,
                       context="context", cache_db=tmp_path / "cache.db", bootstrap=0, progress=False)
    assert metrics["benchmark"] == "mt-bench-turn2" and metrics["turn"] == 2 and metrics["context"] == "context"
    assert metrics["protocol"].startswith("grouped") and metrics["groups"] == metrics["n_prompts"]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["context"] == "context"
