"""The clustered index behind sw_ranking on large stores: its sums against the exact float64 computation
on hand cases, persistence, and the router's use of it (forced at small N)."""

import math

import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.prompt_features import text_vectors
from routellm_demo.routers import sw_index, sw_ranking
from routellm_demo.routers.sw_index import SWIndex, VectorSource
from routellm_demo.routers.sw_ranking import SWRankingRouter, similarity_weights

DIM = 16
LOG10 = math.log(10.0)


def topic_vectors(rng, n, topics=6, spread=0.3):
    """Unit vectors around a few topics: similarities vary, as real prompts' do (random ones would not)."""
    centres = rng.standard_normal((topics, DIM))
    x = centres[rng.integers(0, topics, n)] + spread * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def battles(rng, n, id_start=0, prompts=True):
    players = ["strong", "weak", "x", "y"]
    a = rng.integers(0, 4, n)
    b = (a + rng.integers(1, 4, n)) % 4
    texts = [f"what is {rng.integers(1, 99)} + {rng.integers(1, 9)}?" if rng.random() < 0.5 else "write a poem"
             for _ in range(n)] if prompts else None
    return Battles(players, a, b, rng.choice([0.0, 0.5, 1.0], n), topic_vectors(rng, n),
                   np.arange(id_start, id_start + n), texts)


def exact_cell_weights(x, cells, n_cells, q, normalize="max"):
    """The float64 reference: every similarity, RouteLLM's weights, summed per cell."""
    w = similarity_weights(x.astype(np.float64) @ q.astype(np.float64), normalize=normalize)
    return np.bincount(cells, weights=w, minlength=n_cells)


@pytest.mark.parametrize("normalize", ["max", "one"])
def test_all_clusters_near_is_exact_up_to_int8(normalize):
    rng = np.random.default_rng(0)
    x = topic_vectors(rng, 600)
    cells = rng.integers(0, 5, 600)
    index = SWIndex.build(VectorSource(x), np.arange(600), cells, 5, n_clusters=12)
    for q in topic_vectors(rng, 10):
        got = index.cell_weights(q, LOG10, LOG10, normalize, near_battles=10**6)
        np.testing.assert_allclose(got, exact_cell_weights(x, cells, 5, q, normalize), rtol=2e-3)


def test_far_clusters_are_summed_at_their_centroids():
    # Two tight groups (identical members): summing the far one at its centroid is then exact.
    a, b = np.eye(DIM, dtype=np.float32)[0], np.eye(DIM, dtype=np.float32)[1]
    x = np.vstack([np.tile(a, (50, 1)), np.tile(b, (30, 1))])
    cells = np.r_[np.zeros(40, int), np.ones(10, int), np.full(30, 2)]
    index = SWIndex.build(VectorSource(x), np.arange(80), cells, 3, n_clusters=2)
    q = (0.8 * a + 0.6 * b).astype(np.float32)
    got = index.cell_weights(q, LOG10, LOG10, "max", near_battles=1)  # only the nearest cluster row by row
    np.testing.assert_allclose(got, exact_cell_weights(x, cells, 3, q), rtol=1e-5)
    rows = index.near(q, near_battles=1)[1]
    assert sorted(index.ids[rows].tolist()) == list(range(50))  # group a, the nearer one


def test_nothing_similar_weighs_every_battle_at_scale():
    x = np.tile(np.eye(DIM, dtype=np.float32)[0], (20, 1))
    index = SWIndex.build(VectorSource(x), np.arange(20), np.r_[np.zeros(5, int), np.ones(15, int)], 2, n_clusters=1)
    got = index.cell_weights(-np.eye(DIM, dtype=np.float32)[0], LOG10, LOG10, "max")
    np.testing.assert_allclose(got, [50.0, 150.0])


def test_text_block_matches_text_vectors():
    rng = np.random.default_rng(1)
    b = battles(rng, 50)
    router = SWRankingRouter(text_weight=0.3)
    rows = VectorSource(b.embeddings, router._text_block(b.prompts)).rows(slice(None))
    np.testing.assert_array_equal(rows, text_vectors(b.embeddings, b.prompts, 0.3))


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    x = topic_vectors(rng, 300)
    cells = rng.integers(0, 4, 300)
    index = SWIndex.build(VectorSource(x), np.arange(100, 400), cells, 4, n_clusters=8)
    index.append(topic_vectors(rng, 3), [0, 1, 2], [7, 8, 9], 4)  # a tail: folded into the clusters by save
    stages = []
    index.save(tmp_path / "ix", text_weight=0.0)
    index.save(tmp_path / "ix", text_weight=0.0)  # a second generation replaces the first one
    assert len([p for p in (tmp_path / "ix").iterdir() if p.is_dir()]) == 2  # and one previous is kept
    loaded, meta = SWIndex.load(tmp_path / "ix", progress=lambda stage, done, total: stages.append(stage))
    assert meta["text_weight"] == 0.0 and meta["n"] == 303 and stages and set(stages) == {"loading index"}
    for name in ("centroids", "starts", "codes", "row_scale", "ids", "labels"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(index, name))
    loaded.set_cells(index.cells, 4)
    q = topic_vectors(rng, 1)[0]
    np.testing.assert_allclose(loaded.cell_weights(q, LOG10, LOG10, "max", 50),
                               index.cell_weights(q, LOG10, LOG10, "max", 50))


def test_vectors_dequantise_close_to_the_originals():
    rng = np.random.default_rng(3)
    x = topic_vectors(rng, 200)
    index = SWIndex.build(VectorSource(x), np.arange(200), np.zeros(200, int), 1, n_clusters=5)
    original = x[index.ids]  # rows are in cluster order; ids say where each came from
    assert np.abs(index.vectors(np.arange(200)) - original).max() < 0.01


@pytest.fixture
def indexed(monkeypatch):
    """sw_ranking uses the index from 1 battle on (it starts at INDEX_MIN_BATTLES otherwise)."""
    monkeypatch.setattr(sw_ranking, "INDEX_MIN_BATTLES", 1)


@pytest.mark.parametrize("text_weight", [0.0, 0.3])
def test_indexed_router_scores_like_the_exact_path(indexed, monkeypatch, text_weight):
    rng = np.random.default_rng(4)
    b, q = battles(rng, 2000), battles(rng, 20)
    fast = SWRankingRouter(text_weight=text_weight).fit(b)
    assert fast.index_ is not None
    monkeypatch.setattr(sw_ranking, "INDEX_MIN_BATTLES", 10**9)
    exact = SWRankingRouter(text_weight=text_weight).fit(b)
    assert exact.index_ is None
    got, want = fast.win_probability(q.embeddings, q.prompts), exact.win_probability(q.embeddings, q.prompts)
    assert np.abs(got - want).max() < 0.01
    assert fast.explain(q.embeddings[0], k=3, prompt=q.prompts[0])[0]["battle_id"] == \
        exact.explain(q.embeddings[0], k=3, prompt=q.prompts[0])[0]["battle_id"]
    with pytest.raises(RuntimeError, match="index"):
        fast.embeddings_


def test_votes_go_to_the_tail_then_fold(indexed, monkeypatch):
    monkeypatch.setattr(sw_index, "FOLD_EVERY", 5)
    rng = np.random.default_rng(5)
    b, q = battles(rng, 500), battles(rng, 10)
    router = SWRankingRouter().fit(b)
    votes = [battles(rng, 1, id_start=1000 + i) for i in range(7)]
    for vote in votes:
        router.partial_fit(vote)
    assert len(router.index_.tail_ids) == 2 and len(router.index_) == router.n_battles_ == 507
    assert sorted(router.index_.ids.tolist() + router.index_.tail_ids.tolist()) == list(range(500)) + \
        list(range(1000, 1007))
    index = router.index_
    assert (np.diff(index.labels) >= 0).all()  # folded votes sit inside their clusters
    folded = np.flatnonzero(np.isin(index.ids, np.arange(1000, 1005)))
    want = np.vstack([router._vectors(v.embeddings, v.prompts) for v in votes[:5]])[index.ids[folded] - 1000]
    assert np.abs(index.vectors(folded) - want).max() < 0.01
    monkeypatch.setattr(sw_ranking, "INDEX_MIN_BATTLES", 10**9)
    exact = SWRankingRouter().fit(b)
    for vote in votes:
        exact.partial_fit(vote)
    assert np.abs(router.win_probability(q.embeddings, q.prompts) - exact.win_probability(q.embeddings, q.prompts)
                  ).max() < 0.01


def test_restart_reuses_the_index_minus_deleted_plus_new(indexed, tmp_path):
    rng = np.random.default_rng(6)
    b = battles(rng, 800)
    stages = []
    first = SWRankingRouter()
    first.index_dir, first.index_progress = tmp_path / "ix", lambda s, d, t: stages.append(s)
    first.fit(b)
    assert "assigning" in stages and SWIndex.exists(tmp_path / "ix")

    keep = np.arange(100, 800)  # battles 0-99 deleted since, 50 added
    later = Battles(b.players, b.a[keep], b.b[keep], b.outcome[keep], b.embeddings[keep], b.ids[keep],
                    [b.prompts[i] for i in keep])
    new = battles(rng, 50, id_start=5000)
    both = Battles(b.players, np.r_[later.a, new.a], np.r_[later.b, new.b], np.r_[later.outcome, new.outcome],
                   np.vstack([later.embeddings, new.embeddings]), np.r_[later.ids, new.ids],
                   later.prompts + new.prompts)
    stages.clear()
    second = SWRankingRouter()
    second.index_dir, second.index_progress = tmp_path / "ix", lambda s, d, t: stages.append(s)
    second.fit(both)
    assert "loading index" in stages and "assigning" not in stages  # reused, not rebuilt
    held = np.r_[second.index_.ids, second.index_.tail_ids]
    assert sorted(held.tolist()) == sorted(both.ids.tolist())
    assert second.cell_count_.sum() == len(both) == second.n_battles_
    on_disk, _ = SWIndex.load(tmp_path / "ix")  # saved again: the deleted battles left the disk too
    assert sorted(on_disk.ids.tolist()) == sorted(both.ids.tolist())


@pytest.mark.parametrize("text_weight", [0.0, 0.3])
def test_restart_rebuilds_when_the_embeddings_changed(indexed, tmp_path, text_weight):
    rng = np.random.default_rng(7)
    b = battles(rng, 400, prompts=bool(text_weight))
    router = SWRankingRouter(text_weight=text_weight)
    router.index_dir = tmp_path / "ix"
    router.fit(b)
    other = Battles(b.players, b.a, b.b, b.outcome, topic_vectors(rng, 400), b.ids, b.prompts)  # a new model
    stages = []
    same = SWRankingRouter(text_weight=text_weight)
    same.index_dir, same.index_progress = tmp_path / "ix", lambda s, d, t: stages.append(s)
    same.fit(b)
    assert "assigning" not in stages
    again = SWRankingRouter(text_weight=text_weight)
    again.index_dir, again.index_progress = tmp_path / "ix", lambda s, d, t: stages.append(s)
    again.fit(other)
    assert "assigning" in stages
    np.testing.assert_array_equal(np.sort(again.index_.ids), b.ids)


def test_cells_are_numbered_as_the_row_wise_unique_numbered_them():
    # _cells_of encodes (a, b, outcome) as one integer: same cells, same order as np.unique(axis=0) gave.
    rng = np.random.default_rng(8)
    b = battles(rng, 300)
    router = SWRankingRouter(text_weight=0).fit(battles(rng, 0, prompts=False))
    cells = router._cells_of(b)
    rows, inverse = np.unique(np.column_stack([b.a, b.b, b.outcome]), axis=0, return_inverse=True)
    assert [(router.cell_a_[c], router.cell_b_[c], router.cell_outcome_[c]) for c in range(len(rows))] == \
        [(int(a), int(b_), float(o)) for a, b_, o in rows]
    np.testing.assert_array_equal(cells, inverse.ravel())


def test_a_vote_with_a_new_player_reaches_the_index(indexed):
    rng = np.random.default_rng(9)
    router = SWRankingRouter().fit(battles(rng, 300))
    vote = Battles(["strong", "weak", "newcomer"], [2], [0], [1.0], topic_vectors(rng, 1), [999], ["hello"])
    router.partial_fit(vote)
    assert "newcomer" in router.players_ and router.index_.n_cells == len(router.cell_a_)
    p = router.win_probability(vote.embeddings, vote.prompts)
    assert 0.0 < p[0] < 1.0


def test_progress_is_logged_by_default(indexed, tmp_path, caplog):
    b = battles(np.random.default_rng(10), 300)
    with caplog.at_level("INFO", logger="routellm_demo.routers.sw_ranking"):
        for _ in range(2):  # a build, then a restart's reload
            router = SWRankingRouter()
            router.index_dir = tmp_path / "ix"
            router.fit(b)
    messages = [r.getMessage() for r in caplog.records]
    assert any("assigning 300/300" in m for m in messages) and any("loading index 300/300" in m for m in messages)


def test_the_app_keeps_its_index_beside_the_store_and_reloads_it(indexed, tmp_path, monkeypatch):
    """RouterSet.from_config (what the app builds) gives sw_ranking ``<db>.index/sw_ranking``: the first
    start builds and saves the index, the next process's start reloads it (real store, real embedder)."""
    from dataclasses import replace

    from routellm_demo.config import load_config
    from routellm_demo.embeddings import Embedder
    from routellm_demo.router_set import RouterSet
    from routellm_demo.store import Store

    db = tmp_path / "arena.db"
    config = replace(load_config(environ={}), db_path=db, seed=False)
    rows = [{"prompt": f"What is {i} plus {i % 7}?" if i % 2 else f"Write a poem about the number {i}.",
             "model_a": "strong", "model_b": "weak", "winner": ("model_a", "model_b", "tie")[i % 3],
             "source": "test", "uid": f"u{i}"} for i in range(60)]
    embedder = Embedder()
    builds = []
    build = SWIndex.build.__func__
    monkeypatch.setattr(SWIndex, "build", classmethod(lambda cls, *a, **k: builds.append(1) or build(cls, *a, **k)))
    scores = []
    for _ in range(2):  # two starts of the app on one store
        with Store(db) as store:
            if not store.count_battles():
                store.add_battles(rows)
            routers = RouterSet.from_config(store, Embedder(store), config)
            scores.append(routers.score("sw_ranking", embedder.embed(["What is 3 plus 3?"]), ["What is 3 plus 3?"]))
    assert (tmp_path / "arena.db.index" / "sw_ranking").is_dir()
    assert len(builds) == 1 and np.allclose(scores[0], scores[1])  # built once, reloaded by the second start
