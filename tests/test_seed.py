"""The shipped seed (data/seed/): a fresh store gets it at start, with embeddings equal to the real
embedder's within the int8 step, once; seeding off leaves the store empty; the builder reproduces the
shipped files from RouteLLM's data; the background update adds the full public set's new battles
(offline: one log line). Real SQLite files, the real MiniLM model.

conftest.py turns seeding off for the session (ROUTELLM_DEMO_SEED=0); these tests turn it on.
"""

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from routellm_demo import seed
from routellm_demo.config import ConfigError, load_config
from routellm_demo.embeddings import Embedder
from routellm_demo.importers import ROUTELLM_FILES, STRONG_MODEL, WEAK_MODEL
from routellm_demo.runtime import build_runtime
from routellm_demo.store import Store, prompt_sha256
from routellm_demo.router_set import RouterSet

MANIFEST = seed.read_manifest()
SAMPLE = 48  # prompts re-embedded to check the shipped vectors (the whole seed takes minutes)


def sample_prompts(rows, n=SAMPLE):
    """A fixed spread of prompts over every source (same draw every run)."""
    prompts = seed.unique_prompts(rows)
    idx = np.random.default_rng(0).choice(len(prompts), size=min(n, len(prompts)), replace=False)
    return [prompts[i] for i in sorted(idx)]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("seed") / "fresh.db")
    report = seed.seed_store(store, Embedder(store).cache_key)
    yield store, report
    store.close()


@pytest.fixture(scope="module")
def embedder():
    return Embedder(backend="torch")  # the real model in float32, no cache: what the builder uses


def test_the_shipped_seed_is_compact_and_described():
    files = [seed.SEED_DIR / f for f in (seed.BATTLES_FILE, seed.EMBEDDINGS_FILE, seed.MANIFEST_FILE)]
    total = sum(f.stat().st_size for f in files)
    assert total < 8_000_000, total
    rows = seed.read_battles()
    assert len(rows) == MANIFEST["battles"] and len(seed.unique_prompts(rows)) == MANIFEST["prompts"]
    assert set(MANIFEST["by_source"]) == {"import:mmlu", "import:gsm8k", "import:mt-bench"}
    assert {(r["model_a"], r["model_b"], r["strong_side"]) for r in rows} == {(STRONG_MODEL, WEAK_MODEL, "a")}
    # labels and scores only: nothing a model wrote is shipped
    assert all(set(r["meta"]) <= {"benchmark", "subject", "row", "question_id", "category", "score_a", "score_b"}
               for r in rows)


def test_a_fresh_store_gets_the_seed_and_its_embeddings(seeded):
    store, report = seeded
    assert report is not None and report.battles == MANIFEST["battles"]
    assert store.count_battles() == MANIFEST["by_source"]
    prompts = seed.unique_prompts(store.battles())
    cached = store.get_embeddings(Embedder.model_name, [prompt_sha256(p) for p in prompts])
    assert len(cached) == len(prompts) == report.embeddings
    norms = np.linalg.norm(np.stack(list(cached.values())), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)


@pytest.mark.slow  # runs the embedding model
def test_cached_embeddings_are_the_real_embedders_within_the_int8_step(seeded, embedder):
    store, _ = seeded
    prompts = sample_prompts(seed.read_battles())
    real = embedder.embed(prompts)
    cached = store.get_embeddings(embedder.cache_key, [prompt_sha256(p) for p in prompts])
    got = np.stack([cached[prompt_sha256(p)] for p in prompts])
    assert (np.sum(got * real, axis=1) > 0.9995).all()  # cosine similarity
    # the shipped int8 rows, before the rescale to unit length, are the real vectors to half a step
    # (the rescale then moves a row by its norm's error, up to ~half a step more on these anisotropic
    # vectors, so the bound is checked on the codes)
    all_prompts = seed.unique_prompts(seed.read_battles())
    row = {p: i for i, p in enumerate(all_prompts)}
    with np.load(seed.SEED_DIR / seed.EMBEDDINGS_FILE) as z:
        q, scale = z["q"], z["scale"]
    idx = [row[p] for p in prompts]
    raw = q[idx].astype(np.float32) * scale[idx, None]
    step = np.abs(real).max(axis=1) / 127.0  # the row's int8 step
    assert (np.abs(raw - real).max(axis=1) <= 0.5 * step * (1 + 1e-4) + 1e-6).all()
    np.testing.assert_allclose(got, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)


def test_a_second_start_adds_nothing(seeded):
    store, _ = seeded
    before = store.count_battles()
    assert seed.seed_store(store, Embedder.model_name) is None  # not empty: not seeded again
    again = seed.seed_store(store, Embedder.model_name, force=True)  # even when forced, the uids hold
    assert again is not None and again.battles == 0
    assert store.count_battles() == before


def test_a_store_seeded_under_another_encoder_gets_the_shipped_vectors(tmp_path, caplog):
    """An upgrade that changes the encoder: the store keeps its battles and its old cache, and the next
    start adds the shipped vectors under the new key instead of encoding every seed prompt again."""
    store = Store(tmp_path / "old.db")
    assert seed.seed_store(store, "an-older-encoder") is not None  # seeded, vectors not this encoder's
    prompts = seed.unique_prompts(store.battles())
    shas = [prompt_sha256(p) for p in prompts]
    assert store.get_embeddings(Embedder.model_name, shas) == {}
    with caplog.at_level("INFO", logger="routellm_demo.seed"):
        assert seed.seed_store(store, Embedder.model_name) is None  # not seeded again
    assert len(store.get_embeddings(Embedder.model_name, shas)) == len(prompts)
    assert store.count_battles() == MANIFEST["by_source"]
    assert "added the shipped" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="routellm_demo.seed"):
        assert seed.seed_store(store, Embedder.model_name) is None
    assert "added the shipped" not in caplog.text  # once
    store.close()


@pytest.mark.slow  # two app runtimes, one of them seeding a fresh store
def test_build_runtime_seeds_only_when_seeding_is_on(tmp_path):
    off = replace(load_config(environ={"ROUTELLM_DEMO_SEED": "0"}), db_path=tmp_path / "off.db",
                  checkpoint_dir=tmp_path / "ckpt")
    assert off.seed is False
    rt = build_runtime(off)
    try:
        assert rt.store.count_battles() == {}
        assert seed.start_update(rt) is None  # and nothing is downloaded
    finally:
        rt.close()
    rt = build_runtime(replace(off, db_path=tmp_path / "on.db", seed=True))
    try:
        assert rt.store.count_battles() == MANIFEST["by_source"]
        # the why-panel's router has past battles to show at once, from the cache alone (no model load)
        prompt = rt.store.battles(source="import:gsm8k", limit=1)[0]["prompt"]
        why = rt.routers.explain("sw_ranking", rt.embedder.embed_one(prompt), k=5, prompt=prompt)
        assert rt.embedder.encoded == 0 and len(why) == 5
        assert rt.store.battle(why[0]["battle_id"])["prompt"] == prompt and why[0]["similarity"] > 0.999
    finally:
        rt.close()


def test_the_seed_switch_in_file_and_environment(tmp_path):
    assert load_config(environ={}).seed is True
    toml = tmp_path / "c.toml"
    toml.write_text("seed = false\n")
    assert load_config(toml, environ={}).seed is False
    assert load_config(toml, environ={"ROUTELLM_DEMO_SEED": "true"}).seed is True
    with pytest.raises(ConfigError, match="seed must be true or false"):
        load_config(environ={"ROUTELLM_DEMO_SEED": "sometimes"})


def test_a_missing_seed_is_one_warning_not_a_failure(tmp_path, caplog):
    store = Store(tmp_path / "s.db")
    with caplog.at_level(logging.INFO, logger="routellm_demo.seed"):
        assert seed.seed_store(store, Embedder.model_name, seed_dir=tmp_path / "nowhere") is None
    assert store.count_battles() == {}
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "seed build" in caplog.text
    store.close()


def test_the_builder_reproduces_the_shipped_battles(shared_routellm):
    rows = seed.public_battles(shared_routellm)
    shipped = seed.read_battles()
    assert json.loads(json.dumps(rows)) == shipped  # same rows, same order (the embedding rows follow it)


@pytest.mark.slow  # runs the embedding model
def test_the_builder_reproduces_the_shipped_embeddings(embedder):
    """Re-embedding a sample of the shipped prompts gives the shipped int8 codes (+-1 on a rounding edge)."""
    rows = seed.read_battles()
    prompts = seed.unique_prompts(rows)
    sample = sample_prompts(rows)
    with np.load(seed.SEED_DIR / seed.EMBEDDINGS_FILE) as z:
        q, scale = z["q"], z["scale"]
    where = {p: i for i, p in enumerate(prompts)}
    idx = [where[p] for p in sample]
    q2, scale2 = seed.quantize(embedder.embed(sample))
    assert np.abs(q2.astype(int) - q[idx].astype(int)).max() <= 1
    assert np.allclose(scale2, scale[idx], rtol=1e-4)


def small_evals(shared: Path, folder: Path, rows: int = 12) -> Path:
    """RouteLLM's layout with a few rows of each benchmark: MT-Bench whole, GSM8K's first rows, two
    MMLU subjects' first rows (the contamination lists as they are)."""
    for rel in ("mt_bench/question.jsonl", "mt_bench/judgements.jsonl", "mt_bench/contaminated_prompts.jsonl",
                "mmlu/contaminated_prompts.jsonl", "gsm8k/contaminated_prompts.jsonl"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / rel, folder / rel)
    for rel in ["gsm8k/gsm8k_responses.csv", *(str(p.relative_to(shared)) for p in
                                               sorted((shared / "mmlu" / "responses").glob("mmlu_*.csv"))[:2])]:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        pd.read_csv(shared / rel, dtype=str, keep_default_na=False).head(rows).to_csv(folder / rel, index=False)
    return folder


@pytest.mark.slow  # runs the embedding model
def test_seed_build_command_writes_what_the_app_loads(shared_routellm, tmp_path, capsys):
    """`seed build --from DIR` end to end on a few rows of each benchmark: its files load, its battles are
    the shipped seed's own rows, and its int8 codes are the shipped ones (+-1 on a rounding edge)."""
    from routellm_demo.cli import main

    evals, out = small_evals(shared_routellm, tmp_path / "evals"), tmp_path / "seed"
    assert main(["seed", "build", "--from", str(evals), "--out", str(out), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    rows = seed.read_battles(out)
    assert printed["battles"] == len(rows) == seed.read_manifest(out)["battles"] > 50
    shipped = {r["uid"]: r for r in seed.read_battles()}
    assert all(shipped[r["uid"]] == r for r in rows)
    key, vectors = seed.read_embeddings(out, seed.unique_prompts(rows))
    assert key == Embedder.model_name and len(vectors) == len(rows)
    shipped_prompts = seed.unique_prompts(shipped.values())
    where = {p: i for i, p in enumerate(shipped_prompts)}
    with np.load(out / seed.EMBEDDINGS_FILE) as new, np.load(seed.SEED_DIR / seed.EMBEDDINGS_FILE) as old:
        mine = [i for i, p in enumerate(seed.unique_prompts(rows)) if p in where]
        theirs = [where[p] for p in seed.unique_prompts(rows) if p in where]
        assert len(mine) == len(rows)  # every prompt is in the shipped seed
        assert np.abs(new["q"][mine].astype(int) - old["q"][theirs].astype(int)).max() <= 1
    store = Store(tmp_path / "s.db")  # and the app's loader takes it
    report = seed.seed_store(store, Embedder.model_name, seed_dir=out)
    assert report.battles == len(rows) and report.embeddings == len(rows)
    store.close()


def test_seed_build_refuses_a_folder_that_is_not_routellms(tmp_path, capsys):
    from routellm_demo.cli import main

    assert main(["seed", "build", "--from", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "not RouteLLM's evals folder" in capsys.readouterr().err


# -- the full public set, in the background -------------------------------------------------------


def test_offline_the_update_is_one_log_line(seeded, caplog):
    store, _ = seeded
    before = store.count_battles()
    with caplog.at_level(logging.INFO, logger="routellm_demo.seed"):
        result = seed.update_from_public(store, Embedder(store), base_url="http://127.0.0.1:9/evals", timeout=2)
    assert result is None and store.count_battles() == before
    offline = [r for r in caplog.records if "offline" in r.getMessage()]
    assert len(offline) == 1 and offline[0].exc_info is None and "Traceback" not in caplog.text


def public_mirror(shared: Path, folder: Path) -> tuple[Path, int]:
    """RouteLLM's full file layout, as the download finds it: the shared files (GSM8K's rows reordered,
    so row numbers differ from the seed's, as in the real full file) and 2 new prompts per MMLU
    subject and for GSM8K. Returns (folder, how many battles are new)."""
    new = 0
    for rel in ROUTELLM_FILES:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        source = shared / rel
        if rel == "gsm8k/gsm8k_responses.csv":
            df = pd.read_csv(source, dtype=str, keep_default_na=False)
            extra = pd.DataFrame({"prompt": ["A farmer has 3 fields of 12 rows each. How many rows?",
                                             "Tom reads 15 pages a day for 9 days. How many pages?"],
                                  WEAK_MODEL: ["False", "True"], STRONG_MODEL: ["True", "True"]})
            pd.concat([df.iloc[::-1], extra]).to_csv(target, index=False)
            new += 2
        elif source.is_file():
            shutil.copyfile(source, target)
        elif rel.startswith("mmlu/responses/"):
            subject = rel.rsplit("mmlu_", 1)[1][:-4]
            pd.DataFrame({"prompt": [f"A new {subject} question {i}? A) yes B) no" for i in range(2)],
                          WEAK_MODEL: ["True", "False"], STRONG_MODEL: ["True", "True"]}).to_csv(target, index=False)
            new += 2
        else:
            raise AssertionError(f"the shared data lacks {rel}")
    return folder, new


@pytest.mark.slow  # runs the embedding model
def test_the_update_adds_the_public_sets_new_battles_and_the_routers_see_them(shared_routellm, tmp_path, caplog):
    mirror, expected = public_mirror(shared_routellm, tmp_path / "public")
    store = Store(tmp_path / "s.db")
    embedder = Embedder(store)
    seed.seed_store(store, embedder.cache_key)
    assert seed.holds_only_the_seed(store)
    routers = RouterSet.from_config(store, embedder, replace(load_config(environ={}), checkpoint_dir=tmp_path))
    n_before = routers.get("sw_ranking").n_battles_
    with caplog.at_level(logging.INFO, logger="routellm_demo.seed"):
        result = seed.update_from_public(store, embedder, routers, base_url=mirror.as_uri())
    assert result is not None and result["added"] == expected, caplog.text
    assert embedder.encoded == expected  # new prompts embedded before they were added; the seed's came cached
    gsm8k = store.battles(source="import:gsm8k")
    assert len({b["prompt_sha256"] for b in gsm8k}) == len(gsm8k) == MANIFEST["by_source"]["import:gsm8k"] + 2
    assert routers.get("sw_ranking").n_battles_ == n_before + expected  # refit from the store
    assert not seed.holds_only_the_seed(store)  # the next start downloads nothing
    assert "added %d public battles" % expected in caplog.text
    again = seed.update_from_public(store, embedder, routers, base_url=mirror.as_uri())
    assert again is not None and again["added"] == 0
    store.close()
