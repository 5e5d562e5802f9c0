"""Active labelling (issue 18, part 2): the coverage gap and the routers' priorities on hand cases, the
epsilon-mixed sampling, the selection on a small real store (real embeddings, real routers), and
`simulate-votes --order active|uncertain` replaying the same gold labels in the chosen order."""

import random
from dataclasses import replace

import numpy as np
import pytest

from routellm_demo import active
from routellm_demo.replay import FIXED_FRACTION, fixed_size, register, simulate_votes
from routellm_demo.store import ARENA_SOURCE, Store

# -- hand cases ---------------------------------------------------------------------------------------


def test_rank_percentile_spreads_ranks_over_0_1_and_ties_share_theirs():
    np.testing.assert_allclose(active.rank_percentile([0.9, 0.1, 0.5]), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(active.rank_percentile([0.2, 0.2, 0.7, 0.1]), [0.5, 0.5, 1.0, 0.0])
    assert active.rank_percentile([0.3]).tolist() == [0.5]
    assert len(active.rank_percentile([])) == 0


def test_uncertainty_is_one_at_the_cut_and_zero_at_the_far_end():
    scores = [0.10, 0.20, 0.30, 0.40, 0.50]  # ranks 0, .25, .5, .75, 1; the median cut at .5
    np.testing.assert_allclose(active.uncertainty(scores), [0.0, 0.5, 1.0, 0.5, 0.0])
    # only ranks count: any increasing transform (sw_ranking's scores hug the base rate) gives the same
    np.testing.assert_allclose(active.uncertainty(np.exp(np.array(scores) * 9)), active.uncertainty(scores))
    # a threshold placed at its rank: 1 of 5 scores below 0.15 -> the cut at .2; the farther end (rank 1) .8 away
    np.testing.assert_allclose(active.uncertainty(scores, threshold=0.15), [0.75, 0.9375, 0.625, 0.3125, 0.0])


def test_disagreement_is_the_spread_of_the_routers_ranks():
    a = [0.1, 0.2, 0.3]
    np.testing.assert_allclose(active.disagreement([a, a]), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(active.disagreement([a, [0.3, 0.2, 0.1]]), [1.0, 0.0, 1.0])  # opposite ends
    with pytest.raises(ValueError, match="two routers"):
        active.disagreement([a])
    # two routers: the mean uncertainty and the disagreement, half each
    np.testing.assert_allclose(active.priority({"x": a, "y": [0.3, 0.2, 0.1]}), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(active.priority([a]), [0.0, 1.0, 0.0])


def test_the_coverage_gap_is_the_votes_ridge_leverage_on_a_hand_case():
    votes = np.array([[1.0, 0.0], [-1.0, 0.0]])  # mean 0; Xc'Xc = diag(2, 0); + alpha I (1) -> diag(3, 1)
    gap = active.coverage_gap(votes, np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [2.0, 0.0]]), alpha=1.0)
    np.testing.assert_allclose(gap, [1 / 3, 1.0, 0.0, 4 / 3])  # along the votes' span: less uncovered
    # the same as the leverage of a ridge on those votes, from its hat matrix (without the intercept's 1/n)
    x = np.random.default_rng(0).normal(size=(6, 3))
    xc = x - x.mean(axis=0)
    hat = xc @ np.linalg.inv(xc.T @ xc + 10.0 * np.eye(3)) @ xc.T
    np.testing.assert_allclose(active.coverage_gap(x, x), np.diag(hat))
    # before any vote nothing is covered; a new vote beside a prompt covers it
    np.testing.assert_allclose(active.coverage_gap(np.zeros((0, 2)), np.eye(2)), [1.0, 1.0])
    far = np.array([[0.0, 3.0]])
    assert active.coverage_gap(np.vstack([votes, far]), far)[0] < active.coverage_gap(votes, far)[0]
    with pytest.raises(ValueError, match="alpha"):
        active.coverage_gap(votes, votes, alpha=0.0)


def test_choose_takes_the_most_uncertain_without_randomness_and_stays_representative_with_it():
    prio = np.array([0.0, 0.1, 1.0, 0.9, 0.2, 0.0])
    rng = np.random.default_rng(0)
    top = active.choose(prio, 2, rng, epsilon=0.0, power=60.0)
    assert sorted(top.tolist()) == [2, 3]
    picks = active.choose(prio, 6, rng)  # everything, each once
    assert sorted(picks.tolist()) == list(range(6))
    # epsilon-mixed: a zero-priority prompt is still picked now and then, a high one far more often
    counts = np.zeros(6)
    for seed in range(2000):
        counts[active.choose(prio, 1, np.random.default_rng(seed), epsilon=0.1)] += 1
    assert counts[0] > 0 and counts[5] > 0
    assert counts[2] > 5 * counts[0] and counts[2] > counts[3] > counts[1]
    # all-zero priorities: uniform, never stuck
    assert len(set(active.choose(np.zeros(4), 4, rng, epsilon=0.0).tolist())) == 4
    with pytest.raises(ValueError):
        active.choose([0.5, -1.0], 1, rng)
    with pytest.raises(ValueError):
        active.choose([0.5], 1, rng, epsilon=1.5)


# -- a small real store -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_real_store(tmp_path_factory, shared_routellm):
    """Gold battles of two MMLU subjects (a random 75% of each) in a real store with real embeddings, and
    the other 25% as the pool; the routers as the app builds them (no checkpoint: fitted from the store)."""
    from routellm_demo.config import load_config
    from routellm_demo.embeddings import Embedder
    from routellm_demo.replay import gold_rows, load_domain
    from routellm_demo.router_set import RouterSet

    tmp = tmp_path_factory.mktemp("active")
    sets = [load_domain(shared_routellm, "mmlu", s) for s in ("high_school_government_and_politics", "virology")]
    store = Store(tmp / "small.db")
    embedder = Embedder(store)
    rng = np.random.default_rng(0)
    pool_prompts = []
    for evalset in sets:
        idx = rng.permutation(len(evalset))[:100]
        cut = 75
        store.add_battles(gold_rows(evalset.subset(np.sort(idx[:cut]))))
        pool_prompts += [evalset.prompts[i] for i in idx[cut:]]
    cfg = replace(load_config(environ={}), db_path=tmp / "small.db", checkpoint_dir=tmp / "none")
    routers = RouterSet.from_config(store, embedder, cfg)
    yield routers, pool_prompts, embedder.embed(pool_prompts)
    store.close()


def test_the_next_prompts_are_the_ones_the_votes_do_not_cover_on_real_embeddings(small_real_store):
    """Votes on 15 politics questions: the virology questions are the uncovered ones, and the picks go
    there (all of them without randomness, most of them with it)."""
    routers, prompts, emb = small_real_store
    assert len(routers.store.battles()) == 150 and len(prompts) == 50  # 25 politics, then 25 virology
    voted, candidates = emb[:15], emb[15:]  # 10 politics and 25 virology candidates
    virology = np.arange(len(candidates)) >= 10
    gap = active.coverage_gap(voted, candidates)
    assert gap[virology].mean() > 1.5 * gap[~virology].mean()
    picks = active.next_prompts(voted, candidates, 5, np.random.default_rng(0), epsilon=0.0, power=200.0)
    assert virology[picks].all() and set(picks) == set(np.argsort(-gap)[:5])
    shares = [virology[active.next_prompts(voted, candidates, 10, np.random.default_rng(s))].mean()
              for s in range(30)]
    assert np.mean(shares) > virology.mean() + 0.1  # leaning, not only: 25 of 35 candidates are virology
    assert min(shares) < 1.0  # the randomness keeps politics in reach


@pytest.mark.slow  # fits mf and the classifier on a real store
def test_the_routers_disagreement_on_a_real_store(small_real_store):
    routers, prompts, emb = small_real_store
    scores = {n: routers.score(n, emb, prompts) for n in ("sw_ranking", "classifier")}
    d = active.disagreement(list(scores.values()))
    assert d.shape == (50,) and 0.0 <= d.min() and d.max() <= 1.0 and d.max() > 0.2
    prio = active.priority(scores)
    np.testing.assert_allclose(prio, 0.5 * (np.mean([active.uncertainty(s) for s in scores.values()], axis=0) + d))
    picks = active.choose(prio, 10, np.random.default_rng(1))
    assert len(set(picks.tolist())) == 10 and picks.max() < 50


# -- simulate-votes --order active ---------------------------------------------------------------------


def test_the_order_option_defaults_to_random(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    common = ["simulate-votes", "--data-dir", "d", "--benchmark", "gsm8k", "--out", "o"]
    assert parser.parse_args(common).order == "random"
    assert parser.parse_args([*common, "--order", "active"]).order == "active"
    assert parser.parse_args([*common, "--order", "uncertain"]).order == "uncertain"
    assert parser.parse_args(common).active_routers is None
    assert parser.parse_args([*common, "--active-routers", "sw_ranking,classifier"]).active_routers == (
        "sw_ranking", "classifier")
    with pytest.raises(SystemExit):
        parser.parse_args([*common, "--order", "greedy"])
    from routellm_demo.replay import ReplayError

    with pytest.raises(ReplayError, match="--active-routers"):
        simulate_votes(tmp_path, "gsm8k", tmp_path / "o", order="uncertain", active_routers=("nope",), progress=False)
    with pytest.raises(ReplayError, match="--order uncertain only"):
        simulate_votes(tmp_path, "gsm8k", tmp_path / "o", order="active", active_routers=("sw_ranking",),
                       progress=False)


def test_active_order_replays_the_same_labels_on_chosen_prompts_never_the_fixed_set(tmp_path):
    from test_replay import synthetic_gsm8k

    from routellm_demo.replay import load_domain

    data = synthetic_gsm8k(tmp_path, n_per_kind=30)
    domain = load_domain(data, "gsm8k")
    n, votes = len(domain), 30
    runs = {}
    for order in ("random", "active", "uncertain"):
        result = simulate_votes(data, "gsm8k", tmp_path / order, votes=votes, every=10, seed=4,
                                cache_db=tmp_path / "cache.db",
                                progress=False, order=order)
        with Store(result.store_path) as store:
            runs[order] = [r["prompt"] for r in store.battles(source=ARENA_SOURCE)]
        assert [r["votes"] for r in result.rows] == [0, 10, 20, 30]
        assert result.summary["order"] == order
        assert {r["n_fixed"] for r in result.rows} == {fixed_size(n, votes)} == {round(FIXED_FRACTION * n)}
        assert result.rows[-1]["n_heldout"] == n - votes and all(np.isfinite(r["apgr_fixed"]) for r in result.rows)
    for order in ("active", "uncertain"):
        assert len(runs[order]) == len(set(runs[order])) == votes
    # the same seed's fixed set: the prompts random order reaches last; active never votes on them
    perm = np.random.default_rng(4).permutation(n)
    fixed = {domain.prompts[i] for i in perm[n - fixed_size(n, votes):]}
    assert not fixed & (set(runs["active"]) | set(runs["uncertain"]) | set(runs["random"]))
    assert runs["random"] == [domain.prompts[i] for i in perm[:votes]]  # random order: unchanged
    assert runs["active"] != runs["random"] and runs["uncertain"] != runs["random"]
    assert runs["active"] != runs["uncertain"]


def test_watch_scores_a_domain_that_got_no_vote_with_its_battles_kept_out_of_the_store(tmp_path):
    """--watch: the other-domains check of issue 18 (a benchmark scored at every checkpoint, none of its
    prompts in the store, so only the votes on the domain can move it)."""
    import pandas as pd
    from test_replay import synthetic_gsm8k

    from routellm_demo.importers import STRONG_MODEL, WEAK_MODEL
    from routellm_demo.replay import ReplayError, load_domain

    data = synthetic_gsm8k(tmp_path, n_per_kind=15)
    folder = data / "mmlu" / "responses"
    folder.mkdir(parents=True)
    rng = random.Random(1)
    for subject, topic in (("geography", "the capital of country"), ("arithmetic", "the sum of")):
        rows = [{"prompt": f"What is {topic} number {i}?\nA. {i}\nB. {i + 1}\nC. {i + 2}\nD. {i + 3}\nAnswer:",
                 WEAK_MODEL: str(rng.random() < 0.5), STRONG_MODEL: str(rng.random() < 0.8)} for i in range(30)]
        pd.DataFrame(rows, columns=["prompt", WEAK_MODEL, STRONG_MODEL]).to_csv(folder / f"mmlu_{subject}.csv",
                                                                                  index=False)
    result = simulate_votes(data, "mmlu", tmp_path / "out", subject="geography", votes=12, every=6, seed=0,
                            seed_store="all-other", watch="gsm8k", cache_db=tmp_path / "cache.db", progress=False)
    gsm8k = load_domain(data, "gsm8k")
    with Store(result.store_path) as store:
        stored = {r["prompt"] for r in store.battles()}
    assert not stored & set(gsm8k.prompts)  # the watched benchmark never reached the store
    assert any(p.startswith("What is the sum of") for p in stored)  # the other subject did (all-other)
    assert {r["n_watch"] for r in result.rows} == {len(gsm8k)}
    assert all(np.isfinite(r["apgr_watch"]) for r in result.rows) and result.summary["watch"] == "gsm8k"
    with pytest.raises(ReplayError, match="--watch"):
        simulate_votes(data, "gsm8k", tmp_path / "x", votes=5, watch="gsm8k", cache_db=None, progress=False)
