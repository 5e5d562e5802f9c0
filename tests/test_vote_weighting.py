"""sw_ranking's vote weight (issue 18): a battle of this app's arena (source "arena-vote"; a battle with
no source when absorbed online) weighs ``vote_weight`` times an imported one of the same similarity. Hand cases against the kernel/BT math, the
equivalence with repeated votes, and the clustered index carrying the weight through the cells. The
classifier (the app's default) weighs the same votes through its loss, base rate, standardisation and trees."""

import math

import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.ratings import DEFAULT_L2, fit_bt, win_probability
from routellm_demo.routers import sw_ranking
from routellm_demo.routers.sw_ranking import SWRankingRouter

E1, E2, E3 = np.eye(3, dtype=np.float32)


def sw_battles(vectors, outcomes, strong_side="a", id_start=0):
    """Strong-vs-weak battles (outcome: 1 = side a won), strong on side a or b."""
    n = len(outcomes)
    a = np.zeros(n) if strong_side == "a" else np.ones(n)
    return Battles(["strong", "weak"], a, 1 - a, np.asarray(outcomes, dtype=float),
                   np.asarray(vectors, dtype=np.float32).reshape(n, -1), np.arange(id_start, id_start + n))


def hand_probability(strong_wins: float, weak_wins: float, ties: float = 0.0) -> float:
    counts = np.array([[0.0, strong_wins + ties / 2], [weak_wins + ties / 2, 0.0]])
    beta = fit_bt(counts, l2=DEFAULT_L2)
    return float(win_probability(beta[0], beta[1]))


def test_a_vote_weighs_vote_weight_times_a_stored_battle_on_a_hand_case():
    # Store: strong beat weak on e1 and on e2. Vote: weak beat strong on e1 (weak on side a).
    # Query e1, fixed kernel (normalize "one"), base e, scale 1: a battle at sim s weighs e**s.
    store = sw_battles([E1, E2], [1.0, 1.0])
    vote = sw_battles([E1], [1.0], strong_side="b", id_start=10)
    router = SWRankingRouter(base=math.e, scale=1.0, normalize="one", text_weight=0, vote_weight=4.0)
    router.fit(store).partial_fit(vote)
    got = router.win_probability(E1[None])[0]
    want = hand_probability(strong_wins=math.e + 1.0, weak_wins=4.0 * math.e)
    assert got == pytest.approx(want, abs=1e-9)
    assert got < 0.5  # four times the weight: the vote outweighs the two stored battles
    plain = SWRankingRouter(base=math.e, scale=1.0, normalize="one", text_weight=0).fit(store).partial_fit(vote)
    assert plain.win_probability(E1[None])[0] == pytest.approx(hand_probability(math.e + 1.0, math.e), abs=1e-9)


@pytest.mark.parametrize("normalize", ["max", "one"])
def test_a_vote_weighted_3_equals_three_copies_of_it(normalize):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store = sw_battles(x, rng.choice([0.0, 0.5, 1.0], 40))
    vote = sw_battles(E2[None], [0.5], strong_side="b", id_start=100)  # a tie weighs too
    copies = sw_battles(np.tile(E2, (3, 1)), [0.5] * 3, strong_side="b", id_start=100)
    # vote_neighbours=0: the weight everywhere (the gate, tested below, would blend in the weight-1 fit)
    weighted = SWRankingRouter(normalize=normalize, text_weight=0, vote_weight=3.0,
                               vote_neighbours=0).fit(store).partial_fit(vote)
    repeated = SWRankingRouter(normalize=normalize, text_weight=0).fit(store).partial_fit(copies)
    queries = np.vstack([E1, E2, E3, x[:5]])
    np.testing.assert_allclose(weighted.win_probability(queries), repeated.win_probability(queries), atol=1e-9)
    # the prompt-blind fit (the fallback when nothing is similar) counts the vote three times as well
    np.testing.assert_allclose(weighted.global_beta_, repeated.global_beta_, atol=1e-9)


def test_vote_weight_1_is_the_old_router_and_a_refit_forgets_the_weight():
    store = sw_battles([E1, E2, E3], [1.0, 0.0, 0.5])
    vote = sw_battles([E1], [0.0], id_start=10)
    union = sw_battles([E1, E2, E3, E1], [1.0, 0.0, 0.5, 0.0])
    one = SWRankingRouter(text_weight=0, vote_weight=1.0).fit(store).partial_fit(vote)
    fresh = SWRankingRouter(text_weight=0, vote_weight=30.0).fit(union)  # fit: no battle is an online vote
    q = np.vstack([E1, E2, E3])
    np.testing.assert_allclose(one.win_probability(q), fresh.win_probability(q), atol=1e-12)
    assert len(one.cell_a_) == 3  # weight 1: the vote shares its cell with fitted battles


def test_explain_shows_the_votes_weight():
    store = sw_battles([E2], [1.0])
    router = SWRankingRouter(base=10.0, normalize="one", text_weight=0, vote_weight=5.0).fit(store)
    router.partial_fit(sw_battles([E1], [0.0], id_start=7))
    top = router.explain(E1, k=2)
    assert top[0]["battle_id"] == 7 and top[0]["weight"] == pytest.approx(5.0 * 10.0 * 10.0)
    assert top[1]["battle_id"] == 0 and top[1]["weight"] == pytest.approx(10.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_vote_weight_is_refused(bad):
    with pytest.raises(ValueError, match="vote_weight"):
        SWRankingRouter(text_weight=0, vote_weight=bad).fit(sw_battles([E1], [1.0]))


def test_the_clustered_index_carries_the_vote_weight(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store = sw_battles(x, rng.choice([0.0, 0.5, 1.0], 600))
    votes = sw_battles(x[:20] + 0.05, rng.choice([0.0, 1.0], 20), strong_side="b", id_start=1000)
    votes.embeddings /= np.linalg.norm(votes.embeddings, axis=1, keepdims=True)
    monkeypatch.setattr(sw_ranking, "INDEX_MIN_BATTLES", 1)
    fast = SWRankingRouter(text_weight=0, vote_weight=30.0).fit(store)
    assert fast.index_ is not None
    monkeypatch.setattr(sw_ranking, "INDEX_MIN_BATTLES", 10**9)
    exact = SWRankingRouter(text_weight=0, vote_weight=30.0).fit(store)
    unweighted = SWRankingRouter(text_weight=0, vote_weight=1.0).fit(store)
    for k in range(len(votes)):
        for router in (fast, exact, unweighted):
            router.partial_fit(votes.subset(np.array([k])))
    q = x[:20]
    got, want = fast.win_probability(q), exact.win_probability(q)
    assert np.abs(got - want).max() < 0.01
    assert np.abs(want - unweighted.win_probability(q)).max() > 0.05  # the weight matters here


def with_sources(battles: Battles, source: str) -> Battles:
    return Battles(battles.players, battles.a, battles.b, battles.outcome, battles.embeddings, battles.ids,
                   sources=[source] * len(battles))


def joined(*parts: Battles) -> Battles:
    return Battles(["strong", "weak"], np.concatenate([p.a for p in parts]), np.concatenate([p.b for p in parts]),
                   np.concatenate([p.outcome for p in parts]), np.vstack([p.embeddings for p in parts]),
                   np.concatenate([p.ids for p in parts]), sources=[s for p in parts for s in p.sources])


def test_a_refit_from_the_store_weighs_the_votes_as_absorbing_them_did():
    """A restart or a delete refits from the store: the arena votes keep their weight (the battles carry
    their source), and an import reaching a running router through the change feed weighs 1, as it will
    at the next refit."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 3)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store = with_sources(sw_battles(x, rng.choice([0.0, 0.5, 1.0], 30)), "import:mmlu")
    votes = with_sources(sw_battles([E1, E2], [1.0, 0.0], strong_side="b", id_start=100), "arena-vote")
    imported = with_sources(sw_battles([E3], [0.0], id_start=200), "import:gsm8k")
    queries = np.vstack([E1, E2, E3, x[:5]])

    def router(vote_neighbours):
        return SWRankingRouter(normalize="one", text_weight=0, vote_weight=5.0, vote_neighbours=vote_neighbours)

    for gate in (0, 10):  # the weight everywhere, and gated by the votes' share of the 10 nearest battles
        live = router(gate).fit(store).partial_fit(votes).partial_fit(imported)
        restarted = router(gate).fit(joined(store, votes, imported))
        np.testing.assert_allclose(live.win_probability(queries), restarted.win_probability(queries), atol=1e-9)
        unweighted = SWRankingRouter(normalize="one", text_weight=0).fit(joined(store, votes, imported))
        assert not np.allclose(restarted.win_probability(queries), unweighted.win_probability(queries), atol=1e-3)
    as_copies = SWRankingRouter(normalize="one", text_weight=0).fit(
        joined(store, *[votes] * 5, imported))  # five copies of each vote, the import once
    np.testing.assert_allclose(router(0).fit(joined(store, votes, imported)).win_probability(queries),
                               as_copies.win_probability(queries), atol=1e-9)


# -- the vote gate: the heavy fit near votes, the weight-1 fit where none are ----------------------------


def gate_case():
    """Two orthogonal regions: e1 with four stored battles and two votes (weak won both), e2 with six
    stored battles. Every battle has similarity 1 or 0 to e1 and to e2, so the nearest battles of e1 and
    e2 are unambiguous."""
    store = sw_battles([E1] * 4 + [E2] * 6, [1.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0, 0.5])
    votes = sw_battles([E1, E1], [1.0, 1.0], strong_side="b", id_start=100)
    return store, votes


def test_the_gate_uses_the_heavy_fit_among_votes_and_the_weight_1_fit_far_from_them():
    store, votes = gate_case()

    def router(**kw):
        params = dict(base=math.e, scale=1.0, normalize="one", text_weight=0, vote_weight=10.0)
        return SWRankingRouter(**{**params, **kw}).fit(store).partial_fit(votes)

    def p(r, q):
        return r.win_probability(q[None])[0]

    heavy = router(vote_neighbours=0)  # the weight everywhere
    light = router(vote_weight=1.0)  # a vote counts as any battle
    gated = router(vote_neighbours=6, vote_share=0.25)
    # e1: its 6 nearest are its 4 stored battles and the 2 votes; votes are 1/3 >= 0.25: the heavy fit
    assert p(gated, E1) == pytest.approx(p(heavy, E1), abs=1e-12)
    assert abs(p(heavy, E1) - p(light, E1)) > 0.05
    # e2: its 6 nearest are its own 6 battles, no vote: the weight-1 fit, although the heavy fit moved it
    # (the kernel is never zero: e1's heavy votes weigh on e2 too)
    assert p(gated, E2) == pytest.approx(p(light, E2), abs=1e-12)
    assert abs(p(heavy, E2) - p(light, E2)) > 0.01
    # in between: among e1's 7 nearest (its 6, and one battle of e2) votes are 2/7; with vote_share 0.5 the
    # gate is (2/7) / 0.5 = 4/7 of the way from the weight-1 fit to the heavy one
    wider = router(vote_neighbours=7, vote_share=0.5)
    assert p(wider, E1) == pytest.approx(p(light, E1) + 4 / 7 * (p(heavy, E1) - p(light, E1)), abs=1e-12)


def test_the_gate_is_off_without_votes_and_with_vote_weight_1():
    store, votes = gate_case()
    plain = SWRankingRouter(text_weight=0, vote_neighbours=0).fit(store).partial_fit(votes)
    for router in (SWRankingRouter(text_weight=0, vote_weight=1.0).fit(store).partial_fit(votes),
                   SWRankingRouter(text_weight=0, vote_weight=10.0).fit(store)):
        assert router._gate_neighbours() == 0  # one fit per prompt: nothing weighs other than 1
    q = np.vstack([E1, E2, E3])
    np.testing.assert_allclose(SWRankingRouter(text_weight=0).fit(store).partial_fit(votes).win_probability(q),
                               plain.win_probability(q), atol=1e-12)


@pytest.mark.parametrize("bad", [{"vote_neighbours": -1}, {"vote_neighbours": 2.5}, {"vote_share": 0.0},
                                 {"vote_share": 1.5}, {"vote_share": float("nan")}])
def test_bad_gate_parameters_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SWRankingRouter(text_weight=0, **bad).fit(sw_battles([E1], [1.0]))


def test_the_clustered_index_gates_as_the_exact_path(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((600, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store = sw_battles(x, rng.choice([0.0, 0.5, 1.0], 600))
    # 30 votes around x[0] (weak won all): a voted region, and the rest of the sphere far from it
    votes = sw_battles(x[0] + 0.1 * rng.standard_normal((30, 8)), np.ones(30), strong_side="b", id_start=1000)
    votes.embeddings /= np.linalg.norm(votes.embeddings, axis=1, keepdims=True)

    def router():
        return SWRankingRouter(text_weight=0, vote_weight=30.0, vote_neighbours=20, vote_share=0.2)

    monkeypatch.setattr(sw_ranking, "INDEX_MIN_BATTLES", 1)
    fast = router().fit(store).partial_fit(votes)
    assert fast.index_ is not None
    monkeypatch.setattr(sw_ranking, "INDEX_MIN_BATTLES", 10**9)
    exact = router().fit(store).partial_fit(votes)
    heavy = SWRankingRouter(text_weight=0, vote_weight=30.0, vote_neighbours=0).fit(store).partial_fit(votes)
    light = SWRankingRouter(text_weight=0, vote_weight=1.0).fit(store).partial_fit(votes)
    # the index's similarities are approximate: where the 20th nearest battle is a near tie, one vote more
    # or less among them moves the gate by a step (1/20 / 0.2), so a few boundary prompts differ more
    diff = np.abs(fast.win_probability(x) - exact.win_probability(x))
    assert np.mean(diff < 0.01) > 0.98
    near, far = votes.embeddings[:5], x[x @ x[0] < 0]
    np.testing.assert_allclose(exact.win_probability(near), heavy.win_probability(near), atol=1e-9)
    moved = np.abs(heavy.win_probability(far) - light.win_probability(far))
    left = np.abs(exact.win_probability(far) - light.win_probability(far))
    assert moved.mean() > 5 * left.mean()  # far from the votes the gate keeps (nearly all of) the weight-1 fit


# -- the classifier (the app's default router): the same weight, through its loss and its trees ----------


def clf_battles(x, y, prompts, sources):
    """Strong-vs-weak battles (strong on side a; y: 1 strong won, 0 weak won, 0.5 tie) with texts and sources."""
    n = len(y)
    return Battles(["strong", "weak"], np.zeros(n), np.ones(n), np.asarray(y, dtype=float),
                   np.asarray(x, dtype=np.float32), np.arange(n), list(prompts), list(sources))


def clf_case(seed=0, n=60, d=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    prompts = [f"What is {i} + {3 * i}? (A) {i} (B) {4 * i}" if i % 2 else f"Tell me about topic {i} in a few words"
               for i in range(n)]
    y = rng.choice([0.0, 0.5, 1.0], n)
    sources = ["import:mmlu"] * (n - 3) + ["arena-vote"] * 3
    return x, y, prompts, sources


def test_a_classifier_vote_weighted_w_fits_like_w_copies_of_it():
    """One full batch (batch_size >= the data), so the weighted loss and the copies' loss are the same
    function: the head, its base rate and the text counts' standardisation come out equal."""
    from routellm_demo.routers.classifier import ClassifierRouter

    x, y, prompts, sources = clf_case()
    kw = dict(batch_size=10_000, epochs=40, tree_weight=0.0)
    weighted = ClassifierRouter(vote_weight=4.0, **kw).fit(clf_battles(x, y, prompts, sources))
    n = len(y)
    idx = np.r_[np.arange(n - 3), np.repeat(np.arange(n - 3, n), 4)]  # each vote four times, as imports
    copies = ClassifierRouter(vote_weight=4.0, **kw).fit(
        clf_battles(x[idx], y[idx], [prompts[i] for i in idx], ["import:mmlu"] * len(idx)))
    np.testing.assert_allclose(weighted.text_mean_, copies.text_mean_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.text_scale_, copies.text_scale_, rtol=1e-9)
    np.testing.assert_allclose(weighted.win_probability(x, prompts), copies.win_probability(x, prompts), atol=2e-5)
    plain = ClassifierRouter(vote_weight=1.0, **kw).fit(clf_battles(x, y, prompts, sources))
    assert np.abs(plain.win_probability(x, prompts) - weighted.win_probability(x, prompts)).max() > 1e-3


def test_classifier_without_votes_is_unchanged_and_the_weight_is_saved(tmp_path):
    """No arena vote (or no sources): the unweighted arithmetic exactly (the shipped checkpoint's fit);
    vote_weight is a hyperparameter, so a checkpoint and a refit (``type(r)(**r.get_params())``) keep it."""
    from routellm_demo.routers.classifier import ClassifierRouter

    x, y, prompts, _ = clf_case(seed=1)
    kw = dict(epochs=5, batch_size=16)
    imports = clf_battles(x, y, prompts, ["import:gsm8k"] * len(y))
    none = Battles(imports.players, imports.a, imports.b, imports.outcome, imports.embeddings, imports.ids, prompts)
    a = ClassifierRouter(vote_weight=30.0, **kw).fit(imports).win_probability(x, prompts)
    b = ClassifierRouter(vote_weight=1.0, **kw).fit(none).win_probability(x, prompts)
    np.testing.assert_array_equal(a, b)
    r = ClassifierRouter(vote_weight=7.0, **kw).fit(imports)
    loaded = ClassifierRouter.load(r.save(tmp_path / "classifier.npz"))
    assert loaded.vote_weight == 7.0 and type(loaded)(**loaded.get_params()).vote_weight == 7.0
    with pytest.raises(ValueError, match="vote_weight"):
        ClassifierRouter(vote_weight=0.0, **kw).fit(imports)


def test_the_classifier_trees_weigh_the_votes():
    """The boosted trees get the weights as sample_weight: a weighted vote moves a leaf like copies of it
    (the leaf-size rule counts rows, so compare with copies under the same rows' leaf rule: one leaf)."""
    from routellm_demo.routers.trees import fit_trees, predict_trees

    x = np.linspace(0, 1, 50)[:, None]
    y = np.r_[np.zeros(45), np.ones(5)]
    w = np.r_[np.ones(45), np.full(5, 9.0)]
    one = dict(iterations=30, learning_rate=0.3, max_leaf_nodes=2, min_samples_leaf=50)  # a single leaf: the mean
    got = predict_trees(fit_trees(x, y, sample_weight=w, **one), x[:1])[0]
    assert got == pytest.approx(45 / 90, abs=1e-3)  # weighted mean: 45 ones-weight of 90
    assert predict_trees(fit_trees(x, y, **one), x[:1])[0] == pytest.approx(0.1, abs=1e-3)
