"""Boosted trees kept as arrays: the numpy walk predicts exactly what scikit-learn's model predicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from routellm_demo.routers.trees import TREE_ARRAYS, export_trees, fit_trees, predict_trees


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = np.sin(2 * x[:, 0]) + x[:, 1] * (x[:, 2] > 0) + 0.1 * rng.normal(size=n)
    return x, y


def test_the_arrays_predict_what_scikit_learn_predicts():
    x, y = _data(3000, 0)
    model = HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=15, early_stopping=False,
                                          random_state=0).fit(x, y)
    trees = export_trees(model)
    assert set(trees) == set(TREE_ARRAYS) and len(trees["tree_roots"]) == 40
    new, _ = _data(700, 1)
    np.testing.assert_allclose(predict_trees(trees, new), model.predict(new), rtol=0, atol=1e-12)
    # the training points too, and thresholds exactly hit (x <= threshold goes left)
    np.testing.assert_allclose(predict_trees(trees, x[:500]), model.predict(x[:500]), rtol=0, atol=1e-12)
    inner = ~trees["tree_is_leaf"]
    edge = np.zeros((inner.sum(), 5))
    edge[np.arange(inner.sum()), trees["tree_feature"][inner]] = trees["tree_threshold"][inner]
    np.testing.assert_allclose(predict_trees(trees, edge), model.predict(edge), rtol=0, atol=1e-12)


def test_fit_trees_learns_an_interaction_and_saves_as_plain_arrays(tmp_path):
    x, y = _data(3000, 0)
    trees = fit_trees(x, y, iterations=100, min_samples_leaf=20)
    new, truth = _data(1000, 2)
    assert np.corrcoef(predict_trees(trees, new), truth)[0, 1] > 0.9
    np.savez(tmp_path / "t.npz", **trees)
    with np.load(tmp_path / "t.npz", allow_pickle=False) as z:  # no object arrays: no pickle needed
        loaded = {k: z[k] for k in z.files}
    np.testing.assert_array_equal(predict_trees(loaded, new), predict_trees(trees, new))


def test_too_few_rows_to_split_gives_the_mean_and_no_rows_gives_nothing():
    x, y = _data(30, 0)
    trees = fit_trees(x, y, min_samples_leaf=20)  # no split can keep 20 on each side
    assert trees["tree_is_leaf"].all()
    np.testing.assert_allclose(predict_trees(trees, x), y.mean(), atol=1e-9)
    assert predict_trees(trees, np.zeros((0, 5))).shape == (0,)


def test_categorical_models_are_refused():
    rng = np.random.default_rng(0)
    x = np.c_[rng.integers(0, 3, 400), rng.normal(size=400)]
    model = HistGradientBoostingRegressor(max_iter=3, categorical_features=[0], early_stopping=False).fit(
        x, (x[:, 0] == 1) * 1.0)
    with pytest.raises(ValueError, match="categorical"):
        export_trees(model)


def test_scikit_learn_is_pinned_to_the_release_the_export_is_checked_on():
    """export_trees reads private attributes: requirements.txt must bound scikit-learn above, and the
    release installed (the one these tests just checked the export on) must lie in that range."""
    from pathlib import Path

    import sklearn
    from packaging.requirements import Requirement
    from packaging.version import Version

    lines = (Path(__file__).resolve().parents[1] / "requirements.txt").read_text().splitlines()
    spec = Requirement(next(line for line in lines if line.startswith("scikit-learn"))).specifier
    assert any(s.operator == "<" for s in spec), "no upper bound: a new release may rename what export_trees reads"
    assert Version(sklearn.__version__) in spec
