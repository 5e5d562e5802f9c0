"""The votes' own ridge (issue 18): it speaks where the votes are and keeps the router's score elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.routers.classifier import ClassifierRouter
from routellm_demo.routers.vote_ridge import ALPHAS, MIN_VOTES, VoteRidge, loo_error


def unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def two_regions(rng, n_votes=40, n_store=200, d=6):
    """Votes around axis 0 (their outcome rises along axis 1), the store around axis 2."""
    votes = unit(np.c_[np.ones(n_votes), rng.uniform(-0.5, 0.5, n_votes), np.zeros(n_votes),
                       0.05 * rng.standard_normal((n_votes, d - 3))])
    outcome = np.clip(0.5 + votes[:, 1], 0.0, 1.0)
    store = unit(np.c_[0.1 * rng.standard_normal((n_store, 2)), np.ones(n_store),
                       0.05 * rng.standard_normal((n_store, d - 3))])
    return votes, outcome, store


def test_the_gate_is_the_share_of_votes_among_the_nearest_battles_over_share():
    votes = unit([[1, 0, 0], [1, 0.1, 0]])
    store = unit([[0, 0, 1], [0, 0.1, 1], [0, 1, 0], [0.9, 0, 0.1]])
    ridge = VoteRidge(neighbours=4, share=0.8, reference_rows=10).fit(votes, np.array([1.0, 0.0]), store)
    # from [1, 0, 0]: the two votes, then [0.9, 0, 0.1], then [0, 0.1, 1] or [0, 0, 1]: 2 votes of 4 -> .5 / .8
    # from [0, 0, 1]: three store prompts nearer than any vote, then a vote: 1 of 4 -> .25 / .8
    np.testing.assert_allclose(ridge.gate(unit([[1, 0, 0], [0, 0, 1]])), [0.625, 0.3125])
    # a sample of the store stands for all of it: one row of two weighs two battles
    half = VoteRidge(neighbours=4, share=1.0, reference_rows=1, random_state=0).fit(
        votes, np.array([1.0, 0.0]), unit([[0, 0, 1], [0, 0.1, 1]]))
    assert half.reference_mass_ == 2.0 and half.gate(unit([[1, 0, 0]]))[0] == pytest.approx(0.5)


def test_the_ridge_is_trusted_in_the_votes_span_and_not_off_it():
    rng = np.random.default_rng(0)
    votes, outcome, store = two_regions(rng)
    ridge = VoteRidge().fit(votes, outcome, store)
    inside = ridge.trust(votes[:5])
    off_span = ridge.trust(unit([[1, 0, 0, 1, 0, 0]]))  # near the votes' centre, along a direction they never vary in
    assert inside.min() > 0.5 and off_span[0] == 0.0


def test_the_closed_form_leave_one_out_error_equals_refitting_without_each_vote():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((25, 4)), rng.random(25)
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        xm, ym = x[keep].mean(axis=0), y[keep].mean()
        w = np.linalg.solve((x[keep] - xm).T @ (x[keep] - xm) + 3.0 * np.eye(4), (x[keep] - xm).T @ (y[keep] - ym))
        # a ridge at alpha 3 fitted on the other votes (intercept unpenalised), scoring the one left out
        errors.append((y[i] - (ym + (x[i] - xm) @ w)) ** 2)
    assert loo_error(x - x.mean(axis=0), y - y.mean(), 3.0) == pytest.approx(np.mean(errors), rel=1e-9)


def test_the_penalty_is_chosen_by_the_votes_leave_one_out_error():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 5))
    signal = VoteRidge().fit(x, 0.5 + 0.1 * x[:, 0], x)
    noise = VoteRidge().fit(x, rng.choice([0.0, 0.5, 1.0], 60), x)
    assert signal.alpha_ == min(ALPHAS) and noise.alpha_ == max(ALPHAS)


def test_blend_keeps_the_routers_score_far_from_the_votes_and_takes_the_ridges_among_them(tmp_path):
    rng = np.random.default_rng(2)
    votes, outcome, store = two_regions(rng)
    ridge = VoteRidge(neighbours=10).fit(votes, outcome, store)
    router = np.full(len(store), 0.3)
    np.testing.assert_array_equal(ridge.blend(router[:20], store[:20]), router[:20])  # gate 0 on the store
    among = votes[:10]
    w = ridge.gate(among) * ridge.trust(among)
    assert w.min() > 0.5
    np.testing.assert_allclose(ridge.blend(np.full(10, 0.3), among), (1 - w) * 0.3 + w * ridge.predict(among))
    # the ridge learnt the votes' direction: a higher axis-1 component, a higher expected outcome
    assert np.corrcoef(ridge.predict(votes), outcome)[0, 1] > 0.9
    # inside the votes' span but where the store is denser than the votes: the gate keeps the router's score
    crowd = unit(np.c_[np.ones(50), np.full(50, 0.2), np.zeros(50), 1e-3 * rng.standard_normal((50, 3))])
    crowded = VoteRidge(neighbours=10).fit(votes, outcome, np.vstack([store, crowd]))
    assert crowded.trust(crowd[:3]).min() > 0.5 and crowded.gate(crowd[:3]).max() == 0.0
    np.testing.assert_array_equal(crowded.blend(np.full(3, 0.3), crowd[:3]), np.full(3, 0.3))
    # given the router's scores at the votes, the ridge speaks on their scale, its ranking kept
    router_scale = VoteRidge(neighbours=10).fit(votes, outcome, store, scores=0.4 + 0.01 * outcome)
    mapped = router_scale.on_router_scale(votes)
    assert mapped.min() >= 0.4 - 1e-12 and mapped.max() <= 0.41 + 1e-12
    assert np.all(np.diff(mapped[np.argsort(router_scale.predict(votes))]) >= 0)
    again = VoteRidge.from_arrays(router_scale.to_arrays("r_"), "r_")
    np.testing.assert_array_equal(again.blend(np.full(10, 0.3), among), router_scale.blend(np.full(10, 0.3), among))
    again = VoteRidge.from_arrays(ridge.to_arrays("r_"), "r_")
    np.testing.assert_array_equal(again.blend(np.full(10, 0.3), among), ridge.blend(np.full(10, 0.3), among))
    assert VoteRidge.from_arrays({}, "r_") is None


def test_a_ridge_needs_two_voted_prompts():
    with pytest.raises(ValueError, match="at least 2"):
        VoteRidge().fit(np.ones((1, 3)), np.ones(1), np.ones((4, 3)))


# -- in the classifier (the app's default router) ----------------------------------------------------------


def classifier_case(n_votes, seed=3, d=6):
    """Store battles around axis 2, votes around axis 0; strong wins where axis 1 < 0 in the store and where it
    is > 0 among the votes: a global fit follows the store, which outnumbers the votes."""
    rng = np.random.default_rng(seed)
    votes, _, _ = two_regions(rng, n_votes=n_votes, d=d)
    n_store = 600
    store = unit(np.c_[np.zeros(n_store), rng.uniform(-0.5, 0.5, n_store), np.ones(n_store),
                       0.05 * rng.standard_normal((n_store, d - 3))])
    vote_y = (votes[:, 1] > 0).astype(float)
    store_y = (store[:, 1] < 0).astype(float)
    x = np.vstack([store, votes]).astype(np.float32)
    y = np.r_[store_y, vote_y]
    prompts = [f"stored prompt {i}" for i in range(len(store))] + [f"voted prompt {i}" for i in range(n_votes)]
    sources = ["import:mmlu"] * len(store) + ["arena-vote"] * n_votes
    n = len(y)
    battles = Battles(["strong", "weak"], np.zeros(n), np.ones(n), y, x, np.arange(n), prompts, sources)
    return battles, votes.astype(np.float32), store.astype(np.float32)


KW = dict(epochs=5, tree_weight=0.0, text_weight=0.0)


def test_the_classifier_learns_the_votes_direction_where_they_are_and_keeps_its_score_elsewhere(tmp_path):
    battles, votes, store = classifier_case(60)
    with_ridge = ClassifierRouter(**KW).fit(battles)
    without = ClassifierRouter(vote_ridge=False, **KW).fit(battles)
    assert with_ridge.vote_ridge_ is not None and without.vote_ridge_ is None
    np.testing.assert_array_equal(with_ridge.win_probability(store), without.win_probability(store))
    wins = votes[:, 1] > 0
    p, own = with_ridge.win_probability(votes), without.win_probability(votes)

    def ordered(scores):  # share of (win, loss) pairs the scores put in the right order
        return float(np.mean(scores[wins][:, None] > scores[~wins][None, :]))

    assert ordered(p) > 0.9 and ordered(own) < 0.75  # the votes' direction, which the global fit missed
    assert own.min() - 1e-9 <= p.min() and p.max() <= own.max() + 1e-9  # on the classifier's scale at the votes
    loaded = ClassifierRouter.load(with_ridge.save(tmp_path / "classifier.npz"))
    np.testing.assert_array_equal(loaded.win_probability(votes), p)  # a restart scores as the live router


def test_fewer_voted_prompts_than_the_minimum_give_no_ridge():
    battles, _, _ = classifier_case(MIN_VOTES - 1)
    assert ClassifierRouter(**KW).fit(battles).vote_ridge_ is None


def counts_case(options: bool, seed=5, d=6, n_votes=60, n_store=400):
    """Votes whose outcome rises with how many numbers the prompt holds, on vectors that carry none of it."""
    rng = np.random.default_rng(seed)
    votes = unit(np.c_[np.ones(n_votes), 0.05 * rng.standard_normal((n_votes, d - 1))])
    store = unit(np.c_[np.zeros((n_store, 2)), np.ones(n_store), 0.05 * rng.standard_normal((n_store, d - 3))])
    numbers = rng.integers(0, 6, n_votes)
    tail = "\nA. yes\nB. no\nC. maybe\nD. never" if options else ""
    vote_prompts = [f"How many apples has {chr(97 + i % 26)}{chr(97 + i // 26)} left"
                    + "".join(f" after {3 + j} are eaten" for j in range(k)) + tail for i, k in enumerate(numbers)]
    store_prompts = [f"Tell me about the topic {chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(n_store)]
    y = np.r_[rng.integers(0, 2, n_store).astype(float), (numbers >= 3).astype(float)]
    n = len(y)
    sources = ["import:mmlu"] * n_store + ["arena-vote"] * n_votes
    battles = Battles(["strong", "weak"], np.zeros(n), np.ones(n), y, np.vstack([store, votes]).astype(np.float32),
                      np.arange(n), store_prompts + vote_prompts, sources)
    return battles, votes.astype(np.float32), vote_prompts, numbers


def test_the_classifiers_ridge_reads_an_open_prompts_text_counts_and_not_a_multiple_choice_ones():
    from routellm_demo.prompt_features import FEATURE_NAMES

    battles, votes, prompts, numbers = counts_case(options=False)
    router = ClassifierRouter(epochs=5, tree_weight=0.0).fit(battles)
    ridge = router.vote_ridge_
    assert ridge.n_inputs_ == votes.shape[1] + len(FEATURE_NAMES)
    many = numbers >= 3
    ridge_says = ridge.predict(router.vote_ridge_inputs(votes, prompts))
    assert float(np.mean(ridge_says[many][:, None] > ridge_says[~many][None, :])) > 0.9  # read from the counts
    # the same votes on the vectors alone: nothing to read
    vectors_only = VoteRidge().fit(votes, many.astype(float), votes)
    assert float(np.mean(vectors_only.predict(votes)[many][:, None] > vectors_only.predict(votes)[~many][None, :])) < 0.75
    # multiple-choice votes: their counts' block stays zero, so the ridge reads their vectors alone
    battles, votes, prompts, _ = counts_case(options=True)
    mc = ClassifierRouter(epochs=5, tree_weight=0.0).fit(battles).vote_ridge_
    np.testing.assert_allclose(mc.coef_[votes.shape[1]:], 0.0, atol=1e-12)


def test_a_ridge_saved_on_the_vectors_alone_still_blends_after_a_load(tmp_path):
    battles, votes, prompts, _ = counts_case(options=False)
    router = ClassifierRouter(epochs=5, tree_weight=0.0).fit(battles)
    loaded = ClassifierRouter.load(router.save(tmp_path / "counts.npz"))
    np.testing.assert_array_equal(loaded.win_probability(votes, prompts), router.win_probability(votes, prompts))
    # a ridge from before the counts (fitted on the vectors): blended on the vectors, not refused
    old = VoteRidge().fit(votes, np.linspace(0, 1, len(votes)), votes, router.win_probability(votes, prompts))
    router.vote_ridge_ = old
    head_only = ClassifierRouter.load(router.save(tmp_path / "old.npz"))
    assert head_only.vote_ridge_.n_inputs_ == votes.shape[1]
    np.testing.assert_array_equal(head_only.win_probability(votes, prompts), router.win_probability(votes, prompts))
