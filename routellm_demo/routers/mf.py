"""RouteLLM's matrix-factorisation router, sized for a CPU.

Each player (the strong role, the weak role, and any other arena model) gets a learned vector ``P_m``;
the prompt embedding is projected to the same space and normalised; a model's score on a prompt is
``s(m, q) = w . (P_m * proj(q))`` and ``P(a beats b | q) = sigmoid(s(a, q) - s(b, q))``. Because the
score is per *player*, battles between other models still train the projection, which is why RouteLLM
fits it on the whole arena and not only on strong-vs-weak pairs.

Training uses torch (imported only in ``fit``); prediction is plain numpy, so loading a checkpoint and
routing does not need torch, and a loaded router predicts exactly as the fitted one did.
"""

from __future__ import annotations

import numpy as np

from routellm_demo.battles import STRONG, WEAK, Battles
from routellm_demo.routers.base import Router
from routellm_demo.routers.checkpoint import load_checkpoint, save_checkpoint
from routellm_demo.routers.numeric import check_battles, check_embeddings, sigmoid, train_minibatches


class MFRouter(Router):
    """Matrix factorisation (RouteLLM "mf"): learned model vectors x projected prompt embedding."""

    name = "mf"

    def __init__(
        self,
        dim: int = 64,
        epochs: int = 10,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        random_state: int = 0,
    ):
        self.dim = dim
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, battles: Battles) -> "MFRouter":
        """Fit on every battle (all players), ties as soft 0.5 targets, with AdamW."""
        import torch

        x_np = check_battles(battles)
        played = set(battles.a.tolist()) | set(battles.b.tolist())
        if 0 not in played or 1 not in played:
            raise ValueError(f'the "{STRONG}" and "{WEAK}" players must both appear in the battles')
        g = torch.Generator().manual_seed(int(self.random_state))
        n, d = x_np.shape
        x = torch.from_numpy(x_np)
        a = torch.from_numpy(battles.a.astype(np.int64))
        b = torch.from_numpy(battles.b.astype(np.int64))
        y = torch.from_numpy(battles.outcome.astype(np.float32))

        # Initialised from the seeded generator (not torch's global RNG): same seed, same router.
        P = (torch.randn(len(battles.players), self.dim, generator=g) / self.dim**0.5).requires_grad_()
        W = (torch.randn(self.dim, d, generator=g) / d**0.5).requires_grad_()
        w = (torch.randn(self.dim, generator=g) / self.dim**0.5).requires_grad_()
        opt = torch.optim.AdamW([P, W, w], lr=self.lr, weight_decay=self.weight_decay)

        def loss_of_batch(idx):
            q = torch.nn.functional.normalize(x[idx] @ W.T, dim=1)
            logit = ((P[a[idx]] - P[b[idx]]) * q) @ w
            return torch.nn.functional.binary_cross_entropy_with_logits(logit, y[idx])

        self.loss_history_ = train_minibatches(
            loss_of_batch, n, epochs=self.epochs, batch_size=self.batch_size, optimizer=opt, generator=g
        )
        self.players_ = list(battles.players)
        self.player_vectors_ = P.detach().numpy().astype(np.float32)
        self.projection_ = W.detach().numpy().astype(np.float32)
        self.head_ = w.detach().numpy().astype(np.float32)
        self.n_battles_ = int(n)
        return self

    # -- prediction --------------------------------------------------------------------------------
    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Each player's score s(m, q) for each prompt: (n, n_players)."""
        x = check_embeddings(embeddings, self.projection_.shape[1])
        q = x @ self.projection_.T
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        return (q * self.head_) @ self.player_vectors_.T

    def win_probability(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        s = self.scores(embeddings)
        return sigmoid(s[:, 0] - s[:, 1]).astype(np.float64)

    def info(self) -> dict:
        return {**super().info(), **self.get_params(), "players": len(getattr(self, "players_", []))}

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path):
        """One small .npz (weights + hyperparameters, no pickle); returns its path."""
        return save_checkpoint(
            path,
            self.name,
            self.get_params(),
            {"player_vectors": self.player_vectors_, "projection": self.projection_, "head": self.head_},
            n_battles=self.n_battles_,
            players=self.players_,
        )

    @classmethod
    def load(cls, path) -> "MFRouter":
        meta, arrays = load_checkpoint(path, cls.name)
        router = cls(**meta["hyperparameters"])
        router.player_vectors_ = arrays["player_vectors"]
        router.projection_ = arrays["projection"]
        router.head_ = arrays["head"]
        router.players_ = list(meta["players"])
        router.n_battles_ = int(meta["n_battles"])
        return router
