"""Gradient-boosted regression trees, fitted by scikit-learn, kept and applied as plain arrays.

scikit-learn's ``HistGradientBoostingRegressor`` grows the trees (well tested, fast on 2 cores); a
fitted estimator can only be saved by pickle, which a router checkpoint refuses (loading a pickle
runs code). So :func:`fit_trees` copies each tree's split feature, threshold, children and leaf value
into flat arrays, and :func:`predict_trees` walks them in numpy: the checkpoint stays one ``.npz``,
and a loaded router predicts exactly as the fitted one did (tests/test_trees.py checks it against
scikit-learn's own ``predict``).
"""

from __future__ import annotations

import numpy as np

TREE_ARRAYS = ("tree_feature", "tree_threshold", "tree_left", "tree_right", "tree_value", "tree_is_leaf",
               "tree_roots", "tree_baseline")


def fit_trees(x: np.ndarray, y: np.ndarray, *, iterations: int = 100, learning_rate: float = 0.05,
              max_leaf_nodes: int = 15, min_samples_leaf: int = 20, random_state: int = 0,
              sample_weight: np.ndarray | None = None) -> dict:
    """Least-squares boosted trees of ``y`` on ``x``, as the arrays :func:`predict_trees` reads.

    ``sample_weight`` weighs each row's squared error (the classifier's arena votes); None = all 1.
    ``min_samples_leaf`` still counts rows, not weight: a leaf never rests on a few heavy votes alone.
    No early stopping (scikit-learn turns it on by itself past 10,000 rows, which would make the
    shipped checkpoint's fit differ from a cross-validation fold's)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(
        max_iter=iterations, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf, early_stopping=False, random_state=random_state,
    ).fit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
          sample_weight=None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64))
    return export_trees(model)


def export_trees(model) -> dict:
    """The trees of a fitted single-output ``HistGradientBoostingRegressor`` as flat arrays (children
    re-indexed into the concatenation; leaf values already include the learning rate)."""
    nodes = [predictors[0].nodes for predictors in model._predictors]
    if not nodes:
        raise ValueError("the model has no trees")
    if any(n["is_categorical"].any() for n in nodes):
        raise ValueError("categorical splits are not supported")
    sizes = [len(n) for n in nodes]
    roots = np.cumsum([0] + sizes[:-1]).astype(np.int64)
    cat = np.concatenate(nodes)
    shift = np.repeat(roots, sizes)
    is_leaf = cat["is_leaf"].astype(bool)
    here = np.arange(len(cat))
    return {
        "tree_feature": cat["feature_idx"].astype(np.int32),
        "tree_threshold": cat["num_threshold"].astype(np.float64),
        # a leaf points at itself, so a walk that has reached it stays there
        "tree_left": np.where(is_leaf, here, cat["left"].astype(np.int64) + shift),
        "tree_right": np.where(is_leaf, here, cat["right"].astype(np.int64) + shift),
        "tree_value": cat["value"].astype(np.float64),
        "tree_is_leaf": is_leaf,
        "tree_roots": roots,
        "tree_baseline": np.asarray(model._baseline_prediction, dtype=np.float64).reshape(()),
    }


def predict_trees(trees: dict, x: np.ndarray) -> np.ndarray:
    """Sum of the trees' leaf values (+ the baseline) for each row of ``x`` (n, k) -> (n,).

    A sample goes left where its feature is <= the split threshold; NaN features do not occur here
    (every input is a finite count or projection)."""
    x = np.asarray(x, dtype=np.float64)
    roots = np.asarray(trees["tree_roots"])
    out = np.full(len(x), float(trees["tree_baseline"]))
    if len(x) == 0 or len(roots) == 0:
        return out
    feature, threshold = trees["tree_feature"], trees["tree_threshold"]
    left, right, is_leaf = trees["tree_left"], trees["tree_right"], trees["tree_is_leaf"]
    node = np.broadcast_to(roots, (len(x), len(roots))).copy()  # one walker per (row, tree)
    rows = np.arange(len(x))[:, None]
    while not is_leaf[node].all():
        go_left = x[rows, feature[node]] <= threshold[node]
        node = np.where(is_leaf[node], node, np.where(go_left, left[node], right[node]))
    return out + trees["tree_value"][node].sum(axis=1)
