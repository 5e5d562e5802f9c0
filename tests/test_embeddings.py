"""Embedder with the real all-MiniLM-L6-v2 (offline package) and a real store cache."""

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from routellm_demo.embeddings import DIM, MAX_CHARS, Embedder, load_model  # noqa: E402
from routellm_demo.store import Store  # noqa: E402


@pytest.fixture(scope="session")
def model():
    """Load the model once for the whole test session (importing sentence-transformers is slow)."""
    return load_model()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "emb.db")
    yield s
    s.close()


def test_shapes_dtype_and_unit_norm(model, store):
    e = Embedder(store)
    vecs = e.embed(["What is the capital of France?", "Write a haiku about autumn."])
    assert vecs.shape == (2, DIM) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    one = e.embed_one("What is the capital of France?")
    assert one.shape == (DIM,) and np.allclose(one, vecs[0], atol=1e-6)
    empty = e.embed([])
    assert empty.shape == (0, DIM) and empty.dtype == np.float32
    with pytest.raises(TypeError, match="embed_one"):
        e.embed("a single string")


def test_meaning_is_captured(model):
    e = Embedder()  # works without a store too
    a, b, c = e.embed(["How do I bake bread at home?", "Recipe for homemade bread", "Prove that sqrt(2) is irrational"])
    assert a @ b > a @ c + 0.2


def test_cache_hit_encodes_nothing(model, tmp_path):
    texts = [f"question number {i}: how many apples?" for i in range(30)]
    with Store(tmp_path / "cache.db") as s:
        first = Embedder(s, batch_size=8)
        v1 = first.embed(texts, progress=True)
        assert first.encoded == 30 and first.cache_hits == 0
    with Store(tmp_path / "cache.db") as s:  # a new process would see the same file
        second = Embedder(s)
        v2 = second.embed(texts[::-1] + ["a brand new prompt"])
        assert second.encoded == 1 and second.cache_hits == 30
        assert np.array_equal(v2[:30][::-1], v1)
        assert second.embed(["a brand new prompt"]).shape == (1, DIM) and second.encoded == 1


def test_duplicates_in_one_call_are_encoded_once(model, store):
    e = Embedder(store)
    v = e.embed(["same", "same", "other", "same"])
    assert e.encoded == 2
    assert np.array_equal(v[0], v[1]) and np.array_equal(v[0], v[3])


def test_one_megabyte_prompt_is_truncated_not_rejected(model, store):
    words = "the quick brown fox jumps over the lazy dog while routers pick models ".split()
    huge = " ".join(words[i % len(words)] + str(i % 97) for i in range(200_000))[:1_000_000]
    assert len(huge) == 1_000_000 > MAX_CHARS
    e = Embedder(store)
    t = time.perf_counter()
    v = e.embed_one(huge)
    assert time.perf_counter() - t < 5.0
    assert np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-5
    # Only the first 256 tokens count, so the head of the prompt gives the same vector.
    head = Embedder().embed_one(huge[:4000])
    assert np.allclose(v, head, atol=1e-4)
    # A shorter max_seq_length truncates harder and is cached under its own key.
    short = Embedder(store, max_seq_length=32)
    assert short.cache_key != e.cache_key
    assert not np.allclose(short.embed_one(huge), v, atol=1e-3)


def test_odd_unicode_is_embedded(model, store):
    e = Embedder(store)
    v = e.embed(["", "🤖🤖🤖", "中文提示", "broken \ud83d surrogate", "\x00"])
    assert v.shape == (5, DIM) and np.isfinite(v).all()
    with pytest.raises(TypeError):
        e.embed(["ok", None])
    with pytest.raises(ValueError):
        Embedder(max_seq_length=4096)


def test_read_only_cache_still_embeds(model, tmp_path):
    path = tmp_path / "ro.db"
    Store(path).close()
    with Store(path, readonly=True) as ro:
        e = Embedder(ro)
        assert e.embed(["not cacheable here"]).shape == (1, DIM)
        assert "readonly" in e.last_cache_error


@pytest.mark.slow  # a whole export (and quantisation) of the model into a fresh folder, then PyTorch's encode
def test_onnx_backend_gives_the_pytorch_vectors(tmp_path, shared_routellm):
    """The default backend exports the shipped weights once into the cache folder and then encodes
    real prompts (MMLU, GSM8K, MT-Bench from ../shared, plus edge cases) to the reference vectors: cosine
    >= 0.999 to PyTorch's float32 ones (one int8 product per layer; the bound the embedding cache, the
    seed's vectors and the trained routers are valid within), alone or in a batch."""
    import csv
    import json

    from routellm_demo.minilm_onnx import onnx_path

    prompts = [json.loads(line)["turns"][0] for line in open(shared_routellm / "mt_bench" / "question.jsonl")]
    with open(shared_routellm / "gsm8k" / "gsm8k_responses.csv", newline="") as f:
        prompts += [row["prompt"] for _, row in zip(range(40), csv.DictReader(f))]
    for path in sorted((shared_routellm / "mmlu" / "responses").glob("*.csv"))[::8]:
        with open(path, newline="") as f:
            prompts += [row["prompt"] for _, row in zip(range(10), csv.DictReader(f))]
    prompts += ["hi", "", "ünïcödé 😀 " * 60, "word " * 5000]
    cache = tmp_path / "cache"
    onnx = Embedder(cache_dir=cache)
    reference = Embedder(backend="torch")
    for length in (256, 32):
        onnx.max_seq_length = reference.max_seq_length = length
        a, b = onnx.embed_private(prompts), reference.embed_private(prompts)
        assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        assert (a * b).sum(axis=1).min() >= 0.999, length
        # a request encodes its prompt alone: the vector it gets in a batch, whatever its neighbours
        alone = np.stack([onnx.embed_private([p])[0] for p in prompts[::9]])
        np.testing.assert_allclose(alone, a[::9], atol=1e-6)
    assert onnx_path(cache).is_file() and not list(onnx_path(cache).parent.glob("*.part"))


def test_onnx_that_cannot_load_falls_back_to_pytorch_and_says_so(tmp_path, caplog):
    """A cache folder that cannot be created (here: a file stands where it should be) costs the speed
    of ONNX, never the answer; the log says why."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    e = Embedder(cache_dir=blocked)
    with caplog.at_level("WARNING", logger="routellm_demo.embeddings"):
        v = e.embed_one("How do I bake bread at home?")
    assert v.shape == (DIM,) and abs(np.linalg.norm(v) - 1) < 1e-5
    assert "ONNX Runtime unavailable" in caplog.text and "using PyTorch" in caplog.text
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder(backend="tensorflow")


def test_batches_hold_many_short_texts_or_a_few_long_ones():
    """Batches cover the texts in order, never exceed batch_size texts, and keep about 512 padded tokens
    (a single text longer than that goes alone)."""
    emb = Embedder(batch_size=64)
    texts = sorted(["hi"] * 100 + ["word " * 40] * 30 + ["x" * 4000] * 5, key=len)
    batches = list(emb._batches(texts))
    assert batches[0][0] == 0 and batches[-1][1] == len(texts)
    assert all(a[1] == b[0] for a, b in zip(batches, batches[1:]))  # contiguous, in order
    for start, end in batches:
        assert 1 <= end - start <= 64
        longest = emb._tokens_about(texts[end - 1])
        assert end - start == 1 or (end - start) * longest <= 512
    assert batches[0] == (0, 64)  # the short ones: as many as batch_size allows
    assert [end - start for start, end in batches[-3:]] == [2, 2, 1]  # 256-token texts: two at a time
