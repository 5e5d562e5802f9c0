"""The shipped seed: gold-labelled battles, with their prompts' embeddings, for an empty store.

Why: a fresh install (a Hugging Face Space's first visitor) would otherwise show an empty product: a
leaderboard with "no battles yet", nothing for ``sw_ranking`` to weigh, an empty Learning tab. The
seed is RouteLLM's public evaluation data of the developer split (MMLU subjects, GSM8K, MT-Bench)
imported by :func:`routellm_demo.importers.import_routellm` (contamination lists honoured) and
written compactly: prompts with correctness labels or judge scores, never a model's answer. The
prompts' embeddings ship too, as int8 with a per-row scale (each code off by at most half a step,
1/254 of the row's largest; rescaled to unit length when loaded), so the why-panel works on the first visit instead of after a
minute of embedding on a small CPU.

- :func:`seed_store`: an EMPTY store gets the seed, battles and embedding cache in one transaction
  (the importer's uids make it idempotent); ``build_runtime`` calls it when ``config.seed`` is on.
- :func:`start_update`: then, in a background thread and only when online, RouteLLM's full public
  set is downloaded and imported, what the store lacks is added (embedded first, so the routers'
  refit finds every vector cached) and the online routers refit on their next use.
- :func:`build_seed`: writes the seed from RouteLLM's evals folder
  (``python -m routellm_demo seed build --from DIR``); the same input gives the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import lzma
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from routellm_demo.config import REPO_ROOT
from routellm_demo.errors import UserError
from routellm_demo.store import Store, StoreError, prompt_sha256

log = logging.getLogger(__name__)

SEED_DIR = REPO_ROOT / "data" / "seed"
BATTLES_FILE = "battles.jsonl.xz"
EMBEDDINGS_FILE = "embeddings.npz"
MANIFEST_FILE = "manifest.json"
# What a seed battle holds (store columns; id, created_at and prompt_sha256 are made when it is stored).
FIELDS = ("uid", "source", "model_a", "model_b", "winner", "strong_side", "prompt", "meta")
UPDATE_TIMEOUT = 10.0  # seconds per connection/read when fetching the full public set
_EMBED_CHUNK = 256  # prompts embedded between two progress lines in the background update
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: a rebuild from the same data gives the same bytes


class SeedError(UserError, ValueError):
    """The seed files are missing, damaged or do not belong together; the message says which."""


@dataclass(frozen=True)
class SeedReport:
    """What :func:`seed_store` wrote."""

    battles: int  # rows added (0 when the store already held them all)
    embeddings: int  # vectors put into the embedding cache
    by_source: dict
    seconds: float


# -- quantisation --------------------------------------------------------------------------------


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float -> int8 codes and a float32 scale per row: ``v ~= q * scale``, off by <= scale / 2."""
    v = np.asarray(vectors, dtype=np.float32)
    peak = np.abs(v).max(axis=1) if len(v) else np.zeros(0, np.float32)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(v / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """int8 codes -> float32 rows, rescaled to unit length as the embedder's own vectors are."""
    v = q.astype(np.float32) * np.asarray(scale, np.float32)[:, None]
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def prompts_digest(prompts: Iterable[str]) -> str:
    """One hash over the prompts' hashes, in order: ties the embedding rows to the battles file."""
    h = hashlib.sha256()
    for p in prompts:
        h.update(prompt_sha256(p).encode("ascii") + b"\n")
    return h.hexdigest()


def unique_prompts(rows: Iterable[Mapping]) -> list[str]:
    """Distinct prompts in order of first appearance (the embedding rows' order)."""
    return list(dict.fromkeys(r["prompt"] for r in rows))


# -- reading -------------------------------------------------------------------------------------


def read_manifest(seed_dir: str | Path = SEED_DIR) -> dict:
    path = Path(seed_dir) / MANIFEST_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeedError(f"no seed at {path.parent} ({MANIFEST_FILE} missing): build it with "
                        "`python -m routellm_demo seed build --from DIR`") from None
    except (OSError, ValueError) as e:
        raise SeedError(f"{path}: unreadable ({e})") from None


def read_battles(seed_dir: str | Path = SEED_DIR) -> list[dict]:
    """The seed's battles, as :meth:`Store.add_battles` takes them."""
    path = Path(seed_dir) / BATTLES_FILE
    try:
        text = lzma.decompress(path.read_bytes()).decode("utf-8")
        rows = [json.loads(line) for line in text.split("\n") if line]  # not splitlines(): U+2028 is text
    except FileNotFoundError:
        raise SeedError(f"no seed battles at {path}: build them with "
                        "`python -m routellm_demo seed build --from DIR`") from None
    except (OSError, lzma.LZMAError, UnicodeDecodeError, ValueError) as e:
        raise SeedError(f"{path}: damaged ({e})") from None
    for n, r in enumerate(rows, 1):
        if not isinstance(r, dict) or set(r) != set(FIELDS):
            raise SeedError(f"{path}: line {n} does not hold exactly the fields {', '.join(FIELDS)}")
    return rows


def read_embeddings(seed_dir: str | Path, prompts: list[str]) -> tuple[str, dict[str, np.ndarray]]:
    """(the embedder's cache key they were made with, {prompt sha256: unit float32 vector})."""
    path = Path(seed_dir) / EMBEDDINGS_FILE
    try:
        with np.load(path, allow_pickle=False) as z:
            q, scale, key, digest = z["q"], z["scale"], str(z["model"]), str(z["digest"])
    except FileNotFoundError:
        raise SeedError(f"no seed embeddings at {path}") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise SeedError(f"{path}: damaged ({e})") from None
    if q.dtype != np.int8 or q.ndim != 2 or scale.shape != (len(q),) or len(q) != len(prompts):
        raise SeedError(f"{path}: {q.shape} int8 rows expected for {len(prompts)} prompts")
    if digest != prompts_digest(prompts):
        raise SeedError(f"{path} belongs to other battles than {BATTLES_FILE}: rebuild the seed")
    vectors = dequantize(q, scale)
    return key, {prompt_sha256(p): v for p, v in zip(prompts, vectors)}


# -- seeding an empty store ----------------------------------------------------------------------


def seed_store(store: Store, cache_key: str, *, seed_dir: str | Path = SEED_DIR,
               force: bool = False) -> SeedReport | None:
    """Load the seed into ``store`` when it holds no battle (any store with ``force``); else None.

    Battles and embedding cache go in ONE transaction: a crash leaves no half seed, and the next start
    seeds again. ``cache_key``: the embedder's (:attr:`Embedder.cache_key`); vectors made under another
    key are left out (the embedder then encodes the prompts on first use). Never raises for a missing or
    damaged seed or a busy store: it logs one line and the app starts on what the store holds.
    """
    started = time.perf_counter()
    try:
        if not force and sum(store.count_battles().values()) > 0:
            log.debug("seed: the store already holds battles; not seeding")
            _backfill_embeddings(store, cache_key, seed_dir)
            return None
        rows = read_battles(seed_dir)
        vectors = _shipped_vectors(seed_dir, unique_prompts(rows), cache_key)
        with store.transaction():
            added = store.add_battles(rows)
            if vectors:
                store.put_embeddings(cache_key, vectors)
    except (ValueError, StoreError) as e:  # SeedError is a ValueError, as is a row the store rejects
        log.warning("seed: not seeded: %s", e)
        return None
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    report = SeedReport(added, len(vectors), by_source, time.perf_counter() - started)
    log.info("seed: %d gold-labelled battles (%s) and %d prompt embeddings from %s loaded in %.2f s",
             added, ", ".join(f"{s} {n}" for s, n in sorted(by_source.items())), len(vectors), seed_dir,
             report.seconds)
    return report


def _shipped_vectors(seed_dir: str | Path, prompts: list[str], cache_key: str) -> dict[str, np.ndarray]:
    """The seed's vectors when they are the embedder's (``cache_key``), else {} with one log line (a
    missing or damaged file, another encoder): the prompts are then embedded on first use."""
    try:
        key, vectors = read_embeddings(seed_dir, prompts)
    except SeedError as e:
        log.warning("seed: %s; its prompts will be embedded on first use", e)
        return {}
    if key != cache_key:
        log.warning("seed: shipped embeddings are for %s, the embedder uses %s; they are embedded on first use",
                    key, cache_key)
        return {}
    return vectors


def _backfill_embeddings(store: Store, cache_key: str, seed_dir: str | Path) -> int:
    """A store seeded under another encoder (an upgrade) lacks the current encoder's vectors for the
    seed's prompts: put the shipped ones in, instead of encoding thousands of prompts on the next
    refit. Looks at the store's first battle only (one row, one cache lookup) unless it is a seed
    battle whose vector is missing; never raises."""
    try:
        first = store.battle(1)
        if (not first or not first["source"].startswith("import:")
                or store.get_embeddings(cache_key, [first["prompt_sha256"]])):
            return 0
        vectors = _shipped_vectors(seed_dir, unique_prompts(read_battles(seed_dir)), cache_key)
        if first["prompt_sha256"] not in vectors:
            return 0
        store.put_embeddings(cache_key, vectors)  # an upsert: vectors already held are rewritten as equal
    except (ValueError, StoreError) as e:
        log.warning("seed: the shipped embeddings were not added: %s", e)
        return 0
    log.info("seed: added the shipped %s vectors of %d seed prompts to the embedding cache", cache_key, len(vectors))
    return len(vectors)


def holds_only_the_seed(store: Store, seed_dir: str | Path = SEED_DIR) -> bool:
    """True when the store's RouteLLM battles are exactly the seed's (counted by source): the full
    public set has not been added yet."""
    try:
        expected = read_manifest(seed_dir)["by_source"]
        counts = store.count_battles()
    except (SeedError, StoreError, KeyError):
        return False
    return {s: counts.get(s, 0) for s in expected} == expected


# -- the full public set, in the background ------------------------------------------------------


def public_battles(data_dir: str | Path, *, progress: bool = False) -> list[dict]:
    """Every battle :func:`import_routellm` makes of an evals folder, in import order, with FIELDS only.

    Imported into a throwaway store, so the contamination filter and the uids are the importer's own.
    """
    from routellm_demo.importers import import_routellm

    with tempfile.TemporaryDirectory(prefix="routellm_demo_seed_") as tmp:
        store = Store(Path(tmp) / "import.db")
        try:
            import_routellm(store, data_dir, progress=progress)
            rows = store.battles()
        finally:
            store.close()
    return [{f: (r[f] or None) if f == "meta" else r[f] for f in FIELDS} for r in rows]


def update_from_public(store: Store, embedder, routers=None, *, base_url: str | None = None,
                       timeout: float = UPDATE_TIMEOUT) -> dict | None:
    """Download RouteLLM's full public evals, add the battles the store lacks, make ``routers`` refit.

    A battle is new when neither its uid nor its (source, prompt) is stored: GSM8K's uids number the
    rows of its file, which differ between the developer split and the full set. New prompts are
    embedded before the battles are added. Returns ``{"added", "public", "seconds"}``, or None when
    offline or on failure (one log line, no traceback: this runs in a background thread).
    """
    from routellm_demo.importers import ROUTELLM_BASE_URL, DownloadError, download_routellm

    base_url = base_url or ROUTELLM_BASE_URL
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="routellm_demo_public_") as tmp:
            log.info("seed: fetching RouteLLM's full public evaluation data from %s (background)", base_url)
            try:
                folder = download_routellm(Path(tmp) / "evals", base_url=base_url, progress=False, timeout=timeout)
            except DownloadError as e:
                reason = getattr(e.__cause__, "reason", None) or e.__cause__ or e
                log.info("seed: offline or unreachable (%s); serving the shipped seed only", reason)
                return None
            log.info("seed: downloaded in %.1f s; importing", time.perf_counter() - started)
            rows = public_battles(folder)
        stored = store.battles()
        uids = {r["uid"] for r in stored}
        keys = {(r["source"], r["prompt_sha256"]) for r in stored}
        new = [r for r in rows if r["uid"] not in uids and (r["source"], prompt_sha256(r["prompt"])) not in keys]
        prompts = unique_prompts(new)
        log.info("seed: %d of %d public battles are new; embedding their %d prompts", len(new), len(rows), len(prompts))
        for i in range(0, len(prompts), _EMBED_CHUNK):
            embedder.embed(prompts[i:i + _EMBED_CHUNK])
            log.info("seed: embedded %d/%d prompts", min(i + _EMBED_CHUNK, len(prompts)), len(prompts))
        added = store.add_battles(new)
        if routers is not None:
            routers.reload()
        seconds = time.perf_counter() - started
        log.info("seed: added %d public battles in %.1f s; the routers refit on their next use", added, seconds)
        return {"added": added, "public": len(rows), "seconds": seconds}
    except Exception as e:  # noqa: BLE001 (a background thread has no caller: say why in one line, keep serving)
        log.warning("seed: background update failed: %s: %s", type(e).__name__, e,
                    exc_info=log.isEnabledFor(logging.DEBUG))  # offline is the common case: one line
        return None


def start_update(runtime, *, seed_dir: str | Path = SEED_DIR, **kwargs) -> threading.Thread | None:
    """Run :func:`update_from_public` in a daemon thread when seeding is on and the store holds the
    seed and no more of RouteLLM's data; returns the thread (None when there is nothing to do)."""
    if not runtime.config.seed or not holds_only_the_seed(runtime.store, seed_dir):
        return None
    thread = threading.Thread(target=update_from_public, args=(runtime.store, runtime.embedder, runtime.routers),
                              kwargs=kwargs, daemon=True, name="seed-update")
    thread.start()
    return thread


# -- building ------------------------------------------------------------------------------------


def build_seed(data_dir: str | Path, out_dir: str | Path = SEED_DIR, *, embedder=None,
               progress: bool = False) -> dict:
    """Write the seed (battles, int8 embeddings, manifest) made from RouteLLM's evals folder.

    ``embedder``: the project's :class:`~routellm_demo.embeddings.Embedder` (by default a cache-less one
    on PyTorch: the model's float32 vectors, the reference every faster backend is held to, so the
    shipped vectors do not depend on which one serves requests). Returns the manifest.
    """
    if embedder is None:
        from routellm_demo.embeddings import Embedder

        embedder = Embedder(backend="torch")
    out_dir = Path(out_dir)
    rows = public_battles(data_dir, progress=progress)
    if not rows:
        raise SeedError(f"{data_dir} gave no battles")
    prompts = unique_prompts(rows)
    q, scale = quantize(embedder.embed(prompts, progress=progress))
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    _write_atomic(out_dir / BATTLES_FILE, lzma.compress(text.encode("utf-8"), preset=9 | lzma.PRESET_EXTREME))
    _write_atomic(out_dir / EMBEDDINGS_FILE, _npz({"q": q, "scale": scale, "model": np.array(embedder.cache_key),
                                                   "digest": np.array(prompts_digest(prompts))}))
    manifest = {
        "what": "gold-labelled battles from RouteLLM's public evaluation data (developer split): "
                "correctness labels (MMLU, GSM8K) and GPT-4 judge scores (MT-Bench) of gpt-4-1106-preview "
                "vs Mixtral-8x7B-Instruct; no model answers",
        "battles": len(rows),
        "by_source": dict(sorted(by_source.items())),
        "prompts": len(prompts),
        "embedding_model": embedder.cache_key,
        "embedding_format": "int8 codes q (prompts x 384) and float32 scale per prompt; vector = q * scale, "
                            "then unit length; rows in the order prompts first appear in battles.jsonl.xz",
        "command": "python -m routellm_demo seed build --from DIR",
    }
    _write_atomic(out_dir / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest


def _npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An .npz (compressed) with fixed timestamps, so the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
