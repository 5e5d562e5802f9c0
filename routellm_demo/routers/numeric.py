"""Numeric helpers the learned routers share: the logistic function, checks of their inputs, and
the minibatch loop that trains them (torch, imported only when training)."""

from __future__ import annotations

import numpy as np

from routellm_demo.battles import Battles


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def check_embeddings(embeddings, dim: int | None = None) -> np.ndarray:
    """Embeddings as a 2-D float32 array (a single vector becomes one row), with ``dim`` columns if given."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"embeddings have {x.shape[1]} dims, the router was fitted on {dim}")
    return x


def check_battles(battles: Battles) -> np.ndarray:
    """The battles' embeddings, refusing what no prompt-aware router can fit on."""
    if len(battles) == 0:
        raise ValueError("no battles to fit on")
    if battles.embeddings is None:
        raise ValueError("these battles carry no prompt embeddings; a prompt-aware router needs them")
    return check_embeddings(battles.embeddings)


SCHEDULES = ("constant", "linear")  # learning-rate schedules of train_minibatches


def train_minibatches(loss_of_batch, n: int, *, epochs: int, batch_size: int, optimizer, generator,
                      schedule: str = "constant") -> list[float]:
    """Shuffle, cut into minibatches, step; returns the mean loss of each epoch (to check convergence).

    ``schedule``: "constant" keeps the optimizer's learning rate; "linear" lowers it after every step, to
    0 at the last: the weights then settle instead of ending wherever the last minibatches left them.

    Shared by the MF and classifier routers so both train the same way; the shuffling draws from the
    given torch generator only, so a fixed seed gives the same weights run after run. Runs on one
    torch thread (restored afterwards): these matrices are too small to gain from threads, and on a
    busy 2-core machine thread contention made training 10x slower; a fixed thread count also keeps
    the float results independent of the caller's torch thread setting.
    """
    import torch

    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _epochs(loss_of_batch, n, epochs, batch_size, optimizer, generator, schedule)
    finally:
        torch.set_num_threads(threads)


def _epochs(loss_of_batch, n, epochs, batch_size, optimizer, generator, schedule="constant") -> list[float]:
    import torch

    scheduler = None
    if schedule == "linear":
        steps = int(epochs) * -(-int(n) // int(batch_size))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / steps))
    history = []
    for _ in range(int(epochs)):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, int(batch_size)):
            idx = order[start : start + int(batch_size)]
            optimizer.zero_grad()
            loss = loss_of_batch(idx)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / n)
    return history
