"""Controller.decide routes through the embedder it was given: an injected embedder is the only one used."""

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from routellm_demo.config import load_config
from routellm_demo.controller import Controller
from routellm_demo.store import Store
from routellm_demo.router_set import RouterSet


class HashingEmbedder:
    """A test double for an injected embedder (another model, a remote service): unit vectors drawn
    from each text's hash, no MiniLM anywhere."""

    cache_key = "hashing-test-double"
    loads = 0

    def load(self):
        self.loads += 1

    def embed(self, texts, *, progress=False):
        rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=384)
                for t in texts]
        x = np.asarray(rows, dtype=np.float32).reshape(len(rows), 384)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_decide_uses_the_injected_embedder_and_never_loads_minilm(tmp_path, monkeypatch):
    def minilm_loaded(*args, **kwargs):
        pytest.fail("Controller.decide loaded MiniLM although an embedder was injected")

    monkeypatch.setattr("routellm_demo.embeddings.load_model", minilm_loaded)
    monkeypatch.setattr("routellm_demo.controller.load_model", minilm_loaded, raising=False)
    cfg = replace(load_config(environ={}), db_path=tmp_path / "d.db", checkpoint_dir=tmp_path / "none")
    store = Store(cfg.db_path)
    store.add_battles([dict(prompt=f"question {i}", model_a="big", model_b="small", winner="model_a",
                            strong_side="a", source="test") for i in range(5)])
    embedder = HashingEmbedder()
    ctl = Controller(cfg, store, embedder, RouterSet(store, embedder, checkpoint_dir=cfg.checkpoint_dir))
    decision = ctl.decide("What is 2 + 2?", router="sw_ranking", threshold=0.5)
    assert decision.role in ("strong", "weak") and 0.0 <= decision.score <= 1.0
    assert embedder.loads == 1  # the injected embedder was warmed instead
    store.close()
