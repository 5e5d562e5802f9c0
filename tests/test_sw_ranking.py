import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from routellm_demo.battles import Battles
from routellm_demo.config import SW_DEFAULT_PRESET, SW_PRESETS
from routellm_demo.ratings import win_probability
from routellm_demo.routers.sw_ranking import SWRankingRouter, similarity_weights

PLAYERS = ["strong", "weak", "gpt-x", "llama-y"]
DIM = 16


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def random_battles(n, seed=0, players=PLAYERS, id_start=0):
    rng = np.random.default_rng(seed)
    k = len(players)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    outcome = rng.choice([0.0, 0.5, 1.0], n, p=[0.4, 0.2, 0.4])
    emb = unit(rng.standard_normal((n, DIM)))
    return Battles(list(players), a, b, outcome, emb, np.arange(id_start, id_start + n))


# RouteLLM's kernel (10 * 10 ** (s / max s)): the hand cases below were worked out for it; the app's
# default ("sharp", config.SW_PRESETS) differs only in base, which test_base_and_scale_are_used covers.
ROUTELLM = dict(SW_PRESETS["routellm"])


def sklearn_strong_probability(battles, query, l2, base=10.0, scale=10.0):
    """Reference: RouteLLM's weights, then weighted logistic regression over the raw battles."""
    sims = battles.embeddings.astype(np.float64) @ query.astype(np.float64)
    weights = scale * base ** (sims / np.max(sims))
    k, n = len(battles.players), len(battles)
    x = np.zeros((n, k))
    x[np.arange(n), battles.a] += 1.0
    x[np.arange(n), battles.b] -= 1.0
    tie = battles.outcome == 0.5
    rows = np.vstack([x[~tie], x[tie], x[tie]])
    y = np.concatenate([battles.outcome[~tie], np.ones(tie.sum()), np.zeros(tie.sum())])
    sw = np.concatenate([weights[~tie], 0.5 * weights[tie], 0.5 * weights[tie]])
    lr = LogisticRegression(C=1.0 / l2, fit_intercept=False, tol=1e-12, max_iter=10_000)
    lr.fit(rows, y, sample_weight=sw)
    beta = lr.coef_[0]
    return beta, float(win_probability(beta[0], beta[1]))


@pytest.mark.parametrize("l2", [1e-2, 50.0])
def test_matches_weighted_logistic_regression(l2):
    battles = random_battles(300, seed=1)
    router = SWRankingRouter(**ROUTELLM, l2=l2, text_weight=0).fit(battles)
    for q in unit(np.random.default_rng(2).standard_normal((3, DIM))):
        beta_ref, p_ref = sklearn_strong_probability(battles, q, l2)
        beta = router.beta_for_similarities(router.embeddings_ @ q)
        np.testing.assert_allclose(beta, beta_ref, atol=1e-3)
        assert router.win_probability(q[None, :])[0] == pytest.approx(p_ref, abs=1e-3)


def test_base_and_scale_are_used():
    battles = random_battles(200, seed=3)
    q = unit(np.random.default_rng(4).standard_normal(DIM))
    router = SWRankingRouter(base=3.0, scale=2.0, l2=1.0, text_weight=0).fit(battles)
    _, p_ref = sklearn_strong_probability(battles, q, 1.0, base=3.0, scale=2.0)
    assert router.win_probability(q)[0] == pytest.approx(p_ref, abs=1e-3)


def two_topic_battles():
    """Strong wins on prompts near topic A, weak wins near topic B."""
    rng = np.random.default_rng(5)
    topic_a, topic_b = unit(rng.standard_normal(DIM)), unit(rng.standard_normal(DIM))
    near_a = unit(topic_a + 0.1 * rng.standard_normal((40, DIM)))
    near_b = unit(topic_b + 0.1 * rng.standard_normal((40, DIM)))
    emb = np.vstack([near_a, near_b])
    a = np.zeros(80, dtype=int)
    b = np.ones(80, dtype=int)
    outcome = np.r_[np.ones(40), np.zeros(40)]
    return Battles(["strong", "weak"], a, b, outcome, emb, np.arange(80)), topic_a, topic_b


def test_score_follows_similar_battles():
    battles, topic_a, topic_b = two_topic_battles()
    router = SWRankingRouter(text_weight=0).fit(battles)
    p_a, p_b = router.win_probability(np.vstack([topic_a, topic_b]))
    assert p_a > 0.6 > 0.4 > p_b


def test_batch_equals_one_by_one():
    battles = random_battles(500, seed=6)
    router = SWRankingRouter(text_weight=0).fit(battles)
    queries = unit(np.random.default_rng(7).standard_normal((7, DIM)))
    batch = router.win_probability(queries)
    single = [router.win_probability(q[None, :])[0] for q in queries]
    # a matrix product and a mat-vec round float32 similarities differently; the sharp default kernel
    # (base 1e4) turns that last bit into ~1e-7 of a score
    np.testing.assert_allclose(batch, single, atol=1e-6, rtol=0)


def test_partial_fit_equals_fresh_fit_on_union():
    first = random_battles(200, seed=8)
    # A second batch with its own player numbering and a new player.
    second = random_battles(60, seed=9, players=["strong", "weak", "newcomer", "gpt-x"], id_start=1000)
    router = SWRankingRouter(text_weight=0).fit(first)
    for i in range(len(second)):  # one vote at a time, past the initial capacity
        one = Battles(second.players, second.a[i : i + 1], second.b[i : i + 1], second.outcome[i : i + 1],
                      second.embeddings[i : i + 1], second.ids[i : i + 1])
        router.partial_fit(one)
    players = ["strong", "weak", "gpt-x", "llama-y", "newcomer"]
    remap = np.array([players.index(p) for p in second.players])
    union = Battles(
        players,
        np.r_[first.a, remap[second.a]],
        np.r_[first.b, remap[second.b]],
        np.r_[first.outcome, second.outcome],
        np.vstack([first.embeddings, second.embeddings]),
        np.r_[first.ids, second.ids],
    )
    fresh = SWRankingRouter(text_weight=0).fit(union)
    assert router.n_battles_ == fresh.n_battles_ == 260
    assert sorted(router.players_) == sorted(players)
    queries = unit(np.random.default_rng(10).standard_normal((5, DIM)))
    np.testing.assert_allclose(router.win_probability(queries), fresh.win_probability(queries), atol=1e-8)
    np.testing.assert_array_equal(router.embeddings_, fresh.embeddings_)


def test_partial_fit_before_fit_fits():
    battles = random_battles(30, seed=11)
    q = unit(np.ones(DIM))
    assert SWRankingRouter(text_weight=0).partial_fit(battles).win_probability(q)[0] == pytest.approx(
        SWRankingRouter(text_weight=0).fit(battles).win_probability(q)[0]
    )


def test_explain_returns_most_similar_battles():
    battles, topic_a, _ = two_topic_battles()
    router = SWRankingRouter(**ROUTELLM, text_weight=0).fit(battles)
    rows = router.explain(topic_a, k=5)
    assert len(rows) == 5
    sims = battles.embeddings @ topic_a
    assert [r["battle_id"] for r in rows] == list(np.argsort(-sims)[:5])
    assert all(r["battle_id"] < 40 for r in rows)  # all from topic A
    assert rows[0]["similarity"] >= rows[-1]["similarity"]
    assert rows[0]["weight"] == pytest.approx(100.0, rel=1e-5)  # the most similar battle weighs scale * base
    assert rows[0] == {**rows[0], "player_a": "strong", "player_b": "weak", "outcome": 1.0}
    assert len(router.explain(topic_a, k=500)) == 80


def test_zero_battles_answer_half():
    empty = Battles(["strong", "weak"], [], [], [])
    router = SWRankingRouter(text_weight=0).fit(empty)
    np.testing.assert_allclose(router.win_probability(unit(np.ones((3, DIM)))), 0.5)
    assert router.explain(unit(np.ones(DIM))) == []
    # The first vote then works as usual.
    router.partial_fit(random_battles(1, seed=12))
    assert router.n_battles_ == 1
    assert 0.0 <= router.win_probability(unit(np.ones(DIM)))[0] <= 1.0


def test_battles_without_embeddings_are_refused():
    no_emb = Battles(["strong", "weak"], [0], [1], [1.0])
    with pytest.raises(ValueError, match="embeddings"):
        SWRankingRouter(text_weight=0).fit(no_emb)
    router = SWRankingRouter(text_weight=0).fit(random_battles(10))
    with pytest.raises(ValueError, match="embeddings"):
        router.partial_fit(no_emb)
    with pytest.raises(ValueError, match="dims"):
        router.win_probability(np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        router.win_probability(np.full((1, DIM), np.nan, dtype=np.float32))


def test_nothing_similar_falls_back_to_global_fit():
    battles, topic_a, _ = two_topic_battles()
    router = SWRankingRouter(text_weight=0).fit(battles)
    # A zero vector is similar to nothing: all weights equal -> the prompt-blind answer.
    p = router.win_probability(np.zeros(DIM, dtype=np.float32))[0]
    assert p == pytest.approx(float(win_probability(router.global_beta_[0], router.global_beta_[1])))
    assert p == pytest.approx(0.5, abs=1e-6)  # 40 wins each way


# -- the weighting options (issue #8) -------------------------------------------------------------------


def test_normalize_one_matches_weighted_logistic_regression_with_a_fixed_kernel():
    """normalize="one": weight = scale * base ** sim (no division by the largest similarity)."""
    battles = random_battles(300, seed=13)
    q = unit(np.random.default_rng(14).standard_normal(DIM))
    sims = battles.embeddings.astype(np.float64) @ q.astype(np.float64)
    router = SWRankingRouter(base=10.0, scale=10.0, l2=1.0, normalize="one", text_weight=0).fit(battles)
    np.testing.assert_allclose(similarity_weights(sims, 10.0, 10.0, "one"), 10.0 * 10.0 ** sims, rtol=1e-12)
    # the reference divides by max(sim): base ** max(sim) ** (sim / max(sim)) == base ** sim
    _, p_ref = sklearn_strong_probability(battles, q, 1.0, base=10.0 ** sims.max(), scale=10.0)
    assert router.win_probability(q)[0] == pytest.approx(p_ref, abs=1e-3)
    # and "max" stays RouteLLM's formula
    np.testing.assert_allclose(similarity_weights(sims, 10.0, 10.0, "max"), 10.0 * 10.0 ** (sims / sims.max()),
                               rtol=1e-12)


def test_normalize_one_falls_back_to_the_global_fit_when_nothing_is_similar():
    battles, _, _ = two_topic_battles()
    router = SWRankingRouter(normalize="one", text_weight=0).fit(battles)
    p = router.win_probability(np.zeros(DIM, dtype=np.float32))[0]
    assert p == pytest.approx(float(win_probability(router.global_beta_[0], router.global_beta_[1])))


def test_bad_weighting_parameters_are_refused():
    battles = random_battles(5)
    with pytest.raises(ValueError, match="normalize must be one of max, one"):
        SWRankingRouter(normalize="softmax", text_weight=0).fit(battles)
    with pytest.raises(ValueError, match="base > 1"):
        SWRankingRouter(base=1.0, text_weight=0).fit(battles)
    with pytest.raises(ValueError, match="normalize"):
        similarity_weights(np.ones(3), normalize="min")


def test_presets_are_valid_and_the_default_is_the_routers():
    assert SW_PRESETS[SW_DEFAULT_PRESET] == {k: v for k, v in SWRankingRouter().get_params().items()
                                             if k not in ("l2", "text_weight", "vote_weight", "vote_neighbours", "vote_share")}
    for params in SW_PRESETS.values():
        SWRankingRouter(**params, text_weight=0).fit(random_battles(5))


def vote_moves(normalize, players, n_histories=25, n_queries=8):
    """For random stored histories and query prompts: how far one vote on the prompt itself moves its
    score toward the voted side (positive = the voted way), for a vote each way."""
    moves = []
    for seed in range(n_histories):
        history = random_battles(80, seed=seed, players=players)
        for q in unit(np.random.default_rng(1000 + seed).standard_normal((n_queries, DIM))):
            before = SWRankingRouter(base=10.0, normalize=normalize, text_weight=0).fit(history).win_probability(q)[0]
            for outcome in (1.0, 0.0):  # strong wins, weak wins
                router = SWRankingRouter(base=10.0, normalize=normalize, text_weight=0).fit(history)
                router.partial_fit(Battles(["strong", "weak"], [0], [1], [outcome], q[None, :], [10_000]))
                after = router.win_probability(q)[0]
                moves.append(after - before if outcome == 1.0 else before - after)
    return np.array(moves)


@pytest.mark.parametrize("players", [["strong", "weak"], PLAYERS])
def test_with_a_fixed_kernel_a_vote_never_moves_its_prompt_against_the_vote(players):
    """A vote for the strong model never lowers that prompt's score, a vote for the weak one never
    raises it: with normalize="one" a new battle only adds weight on the voted side."""
    moves = vote_moves("one", players)
    assert moves.min() >= -1e-9
    assert (moves > 0).mean() > 0.99


def test_routellm_normalisation_can_move_a_prompt_against_its_vote():
    """Why "one" exists: under RouteLLM's division by the largest similarity, a vote on the prompt
    itself raises that maximum to 1 and reweighs every other battle, which can outweigh the vote."""
    assert vote_moves("max", ["strong", "weak"]).min() < -1e-3


# -- similarity that also reads the prompt's text ----------------------------------------------------


def worded_battles(n, seed=0):
    """Strong-vs-weak battles whose embeddings are noise: the strong model wins the prompts full of
    numbers and loses the plain ones, so only the text can tell a new prompt's kind."""
    rng = np.random.default_rng(seed)
    numeric = rng.random(n) < 0.5
    prompts = [f"Add {rng.integers(10, 999)} and {rng.integers(10, 999)}.{rng.integers(1, 99)}, then take 15% of $40."
               if is_num else "Describe a quiet morning by the sea." for is_num in numeric]
    outcome = np.where(numeric, 1.0, 0.0)
    return Battles(["strong", "weak"], np.zeros(n), np.ones(n), outcome, unit(rng.standard_normal((n, DIM))),
                   np.arange(n), prompts), numeric


def test_text_weight_lets_votes_on_numeric_prompts_inform_other_numeric_prompts():
    stored, _ = worded_battles(200, seed=0)
    queries, numeric = worded_battles(40, seed=1)
    reading = SWRankingRouter(**ROUTELLM, text_weight=1.0).fit(stored)
    p = reading.win_probability(queries.embeddings, queries.prompts)
    assert p[numeric].min() > 0.5 > p[~numeric].max()
    blind = SWRankingRouter(**ROUTELLM, text_weight=0).fit(stored).win_probability(queries.embeddings)
    assert abs(blind[numeric].mean() - blind[~numeric].mean()) < 0.05
    assert reading.embeddings_.shape[1] == DIM + 17  # stored once, text-extended
    top = reading.explain(queries.embeddings[0], k=3, prompt=queries.prompts[0])
    assert len(top) == 3 and all(r["outcome"] == float(numeric[0]) for r in top)


def test_text_weight_votes_append_like_a_fresh_fit_and_need_prompts():
    battles, _ = worded_battles(60)
    first, second = battles.subset(np.arange(50)), battles.subset(np.arange(50, 60))
    grown = SWRankingRouter().fit(first).partial_fit(second)
    fresh = SWRankingRouter().fit(battles)
    q, qp = battles.embeddings[:5], battles.prompts[:5]
    np.testing.assert_allclose(grown.win_probability(q, qp), fresh.win_probability(q, qp), rtol=1e-9)
    with pytest.raises(ValueError, match="pass the prompts"):
        fresh.win_probability(q)
    with pytest.raises(ValueError, match="carry no prompt texts"):
        SWRankingRouter().fit(random_battles(5))
    with pytest.raises(ValueError, match="the router holds 16"):
        fresh.win_probability(np.ones((1, 8), dtype=np.float32), ["x"])
    empty = SWRankingRouter().fit(battles.subset(np.zeros(60, dtype=bool)))
    assert empty.partial_fit(first).win_probability(q, qp).shape == (5,)
