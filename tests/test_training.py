"""RouterSet: votes reach the online routers once, and a reload refits from the store."""

import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.embeddings import Embedder
from routellm_demo.routers.elo import EloRouter
from routellm_demo.store import Store
from routellm_demo.router_set import RouterSet


def test_elo_partial_fit_equals_a_fresh_fit():
    rng = np.random.default_rng(0)
    players = ["strong", "weak", "x"]
    a, b = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    keep = a != b
    full = Battles(players, a[keep], b[keep], rng.choice([0.0, 0.5, 1.0], keep.sum()))
    half = len(full) // 2
    first = Battles(players, full.a[:half], full.b[:half], full.outcome[:half])
    rest = Battles(["strong", "weak", "x", "new"], np.r_[full.a[half:], 3], np.r_[full.b[half:], 0],
                   np.r_[full.outcome[half:], 1.0])
    union = Battles(["strong", "weak", "x", "new"], np.r_[full.a, 3], np.r_[full.b, 0], np.r_[full.outcome, 1.0])
    online = EloRouter().fit(first).partial_fit(rest)
    assert online.strong_win_probability_ == pytest.approx(EloRouter().fit(union).strong_win_probability_, abs=1e-9)
    assert online.n_battles_ == len(union)


def battle(prompt, winner):
    return dict(prompt=prompt, model_a="big", model_b="small", winner=winner, strong_side="a", source="test")


def test_absorb_counts_each_vote_once_even_if_the_router_was_built_after_it(tmp_path):
    store = Store(tmp_path / "t.db")
    emb = Embedder(store)
    store.add_battles([battle(f"question {i}", "model_b") for i in range(5)])
    routers = RouterSet(store, emb, checkpoint_dir=tmp_path)
    routers.get("elo")
    new_id = store.add_battle(**battle("a vote", "model_a"))
    routers.get("sw_ranking")  # built after the vote was stored: it has seen it already
    routers.absorb([store.battle(new_id)])
    assert routers.get("elo").n_battles_ == 6
    assert routers.get("sw_ranking").n_battles_ == 6
    routers.absorb([store.battle(new_id)])  # a repeat delivery changes nothing
    assert routers.get("sw_ranking").n_battles_ == 6
    store.db.execute("DELETE FROM battles WHERE id = ?", [new_id])
    routers.reload()
    assert routers.get("sw_ranking").n_battles_ == 5


def test_router_set_builds_sw_ranking_with_the_configs_weighting(tmp_path):
    from dataclasses import replace

    from routellm_demo.config import load_config

    store = Store(tmp_path / "t.db")
    emb = Embedder(store)
    store.add_battles([battle(f"question {i}", "model_b") for i in range(3)])
    cfg = replace(load_config(environ={}), checkpoint_dir=tmp_path, sw_base=3.0, sw_normalize="one", sw_text_weight=0.5)
    routers = RouterSet.from_config(store, emb, cfg)
    assert routers.get("sw_ranking").get_params() == {"base": 3.0, "scale": 10.0, "l2": pytest.approx(1e-2),
                                                      "normalize": "one", "text_weight": 0.5,
                                                      "vote_weight": 30.0, "vote_neighbours": 50,
                                                      "vote_share": 0.1}
    routers.reload()  # a refit from the store keeps the parameters
    assert routers.get("sw_ranking").normalize == "one"
    # without parameters: the router's own defaults (the "sharp" preset)
    assert RouterSet(store, emb, checkpoint_dir=tmp_path).get("sw_ranking").get_params()["base"] == 1e4
    with pytest.raises(ValueError, match="unknown router"):
        RouterSet(store, emb, checkpoint_dir=tmp_path, router_params={"sw": {}})


class StoreThatGrowsBetweenReads(Store):
    """A fake for a race no test can time: another process stores a battle right after the trainer's
    first read of the store."""

    grown = False

    def battles(self, **kwargs):
        rows = super().battles(**kwargs)
        if not self.grown:
            self.grown = True
            self.add_battle(**battle("a vote that arrived meanwhile", "model_a"))
        return rows


def test_train_and_save_reads_the_store_once_so_its_hold_out_mask_fits_its_battles(tmp_path):
    from types import SimpleNamespace

    from routellm_demo.config import load_config
    from routellm_demo.trainer import train_and_save

    store = StoreThatGrowsBetweenReads(tmp_path / "t.db")
    store.add_battles([battle(f"question {i} about {topic}", ("model_a", "model_b")[i % 2])
                       for i, topic in enumerate(["cats", "tax law", "algebra", "poems", "rivers", "chess"] * 5)])
    rt = SimpleNamespace(store=store, embedder=Embedder(store), config=load_config(environ={}))
    result = train_and_save(rt, "mf", out_dir=tmp_path / "out")
    assert result["battles"] == 30  # what the first read saw; the battle stored meanwhile waits for the next run
    assert (tmp_path / "out" / "mf.npz").is_file()
