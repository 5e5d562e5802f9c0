"""MF and classifier routers: they learn where the strong model wins, and persist exactly."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.routers.checkpoint import load_checkpoint, load_router, save_checkpoint, write_model_card
from routellm_demo.routers.classifier import ClassifierRouter
from routellm_demo.routers.mf import MFRouter

D = 384


def _direction() -> np.ndarray:
    u = np.zeros(D, dtype=np.float32)
    u[7] = 1.0
    return u


def _prompts(rng, n: int):
    """Unit vectors with a clear +/- component along the hidden direction; returns (x, side)."""
    side = rng.choice([-1.0, 1.0], size=n)
    x = rng.normal(size=(n, D)) / np.sqrt(D) + 0.4 * side[:, None] * _direction()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), side


def synthetic_battles(n: int = 2000, seed: int = 0, n_arena: int = 200) -> Battles:
    """Strong wins 85% where side=+1, loses 85% where side=-1, 15% ties; sides shuffled;
    plus arena battles between two other models."""
    rng = np.random.default_rng(seed)
    x, side = _prompts(rng, n)
    strong_wins = np.where(side > 0, rng.random(n) < 0.85, rng.random(n) < 0.15).astype(float)
    y_strong = np.where(rng.random(n) < 0.15, 0.5, strong_wins)
    strong_is_a = rng.random(n) < 0.5
    a = np.where(strong_is_a, 0, 1)
    b = 1 - a
    outcome = np.where(strong_is_a, y_strong, 1.0 - y_strong)
    xa, _ = _prompts(rng, n_arena)
    a = np.concatenate([a, np.full(n_arena, 2)])
    b = np.concatenate([b, np.full(n_arena, 3)])
    outcome = np.concatenate([outcome, rng.choice([0.0, 0.5, 1.0], size=n_arena)])
    return Battles(["strong", "weak", "model-x", "model-y"], a, b, outcome, np.concatenate([x, xa]))


ROUTERS = {
    "mf": lambda: MFRouter(),
    "logistic": lambda: ClassifierRouter(hidden=0, text_weight=0, tree_weight=0),
    "mlp": lambda: ClassifierRouter(hidden=16, text_weight=0, tree_weight=0, alpha=1e-3, epochs=20),
}


@pytest.fixture(scope="module")
def battles() -> Battles:
    return synthetic_battles()


@pytest.fixture(scope="module")
def fitted(battles):
    return {name: make().fit(battles) for name, make in ROUTERS.items()}


@pytest.fixture(scope="module")
def test_prompts():
    return _prompts(np.random.default_rng(123), 1000)


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = score[positive], score[~positive]
    greater = (pos[:, None] > neg[None, :]).mean()
    equal = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * equal)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_router_learns_where_strong_wins(fitted, test_prompts, name):
    x, side = test_prompts
    p = fitted[name].win_probability(x)
    assert p.shape == (len(x),)
    assert np.all((p >= 0) & (p <= 1))
    assert p[side > 0].mean() - p[side < 0].mean() > 0.15
    assert _auc(p, side > 0) > 0.95


@pytest.mark.parametrize("name", list(ROUTERS))
def test_training_loss_goes_down(fitted, name):
    history = fitted[name].loss_history_
    assert history[-1] < history[0]


@pytest.mark.parametrize("name", list(ROUTERS))
def test_n_battles(fitted, battles, name):
    expected = len(battles) if name == "mf" else int((~np.isnan(battles.strong_outcome())).sum())
    assert fitted[name].n_battles_ == expected
    assert fitted[name].info()["n_battles"] == expected


@pytest.mark.parametrize("name", list(ROUTERS))
def test_save_load_round_trip(fitted, test_prompts, tmp_path, name):
    router = fitted[name]
    path = router.save(tmp_path / f"{name}.npz")
    assert path.stat().st_size < 1_000_000
    for loaded in (type(router).load(path), load_router(path)):
        assert type(loaded) is type(router)
        assert loaded.get_params() == router.get_params()
        assert loaded.n_battles_ == router.n_battles_
        np.testing.assert_array_equal(loaded.win_probability(test_prompts[0]), router.win_probability(test_prompts[0]))


def test_save_appends_npz_suffix(fitted, tmp_path):
    path = fitted["mf"].save(tmp_path / "router")
    assert path.name == "router.npz" and path.exists()


def test_checkpoint_has_no_pickle(fitted, tmp_path):
    path = fitted["mlp"].save(tmp_path / "c.npz")
    with np.load(path, allow_pickle=False) as z:  # would raise on object arrays
        assert all(z[k].dtype != object for k in z.files)
    meta, _ = load_checkpoint(path)
    assert meta["kind"] == "classifier" and meta["hyperparameters"]["hidden"] == 16


def test_load_refuses_other_kind(fitted, tmp_path):
    path = fitted["mf"].save(tmp_path / "mf.npz")
    with pytest.raises(ValueError, match="not 'classifier'"):
        ClassifierRouter.load(path)


def test_load_refuses_foreign_npz(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a router checkpoint"):
        MFRouter.load(path)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_same_seed_same_router(name):
    small = synthetic_battles(n=400, seed=1, n_arena=40)
    x = small.embeddings[:50]
    make = ROUTERS[name]
    p1 = make().fit(small).win_probability(x)
    p2 = make().fit(small).win_probability(x)
    np.testing.assert_array_equal(p1, p2)
    other = make()
    other.random_state = 99
    assert not np.array_equal(p1, other.fit(small).win_probability(x))


def test_mf_uses_all_players(fitted):
    mf = fitted["mf"]
    assert mf.players_ == ["strong", "weak", "model-x", "model-y"]
    assert mf.player_vectors_.shape == (4, mf.dim)
    assert mf.scores(np.ones((2, D), dtype=np.float32) / np.sqrt(D)).shape == (2, 4)


def test_classifier_needs_strong_vs_weak_battles():
    rng = np.random.default_rng(0)
    x, _ = _prompts(rng, 20)
    arena_only = Battles(["strong", "weak", "m1", "m2"], np.full(20, 2), np.full(20, 3), rng.random(20) < 0.5, x)
    with pytest.raises(ValueError, match="no strong-vs-weak battles"):
        ClassifierRouter().fit(arena_only)
    with pytest.raises(ValueError, match="must both appear"):
        MFRouter().fit(arena_only)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_empty_battles_refused(name):
    empty = Battles(["strong", "weak"], [], [], [], np.zeros((0, D), dtype=np.float32))
    with pytest.raises(ValueError, match="no battles"):
        ROUTERS[name]().fit(empty)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_battles_without_embeddings_refused(name):
    bare = Battles(["strong", "weak"], [0, 1], [1, 0], [1.0, 0.0])
    with pytest.raises(ValueError, match="no prompt embeddings"):
        ROUTERS[name]().fit(bare)


def test_wrong_embedding_width_refused(fitted):
    with pytest.raises(ValueError, match="fitted on 384"):
        fitted["mf"].win_probability(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="fitted on 384"):
        fitted["logistic"].win_probability(np.zeros((2, 100), dtype=np.float32))


def test_model_card(fitted, tmp_path):
    router = fitted["mf"]
    card = write_model_card(
        tmp_path / "mf.md",
        router,
        data_description="synthetic battles",
        command="python -m routellm_demo.train --router mf",
        metrics={"held-out AUC": 0.98765},
        checkpoint="mf.npz",
    )
    text = card.read_text()
    assert "# Model card: `mf` router" in text
    assert "synthetic battles" in text
    assert "python -m routellm_demo.train --router mf" in text
    assert f"Battles used: {router.n_battles_}" in text
    assert "| held-out AUC | 0.9877 |" in text
    assert "`dim=64`" in text
    assert "Intended use and limits" in text


# -- prompt features: the classifier also reads the text -------------------------------------------


def text_battles(n: int = 1500, seed: int = 0):
    """Embeddings are pure noise; the strong model wins 85% of prompts that carry many numbers and
    loses 85% of those with none: only the text tells them apart."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    numeric = rng.random(n) < 0.5
    prompts = [
        (f"A shop sells {rng.integers(2, 99)} pens at ${rng.integers(1, 9)}.{rng.integers(10, 99)} each and "
         f"{rng.integers(2, 50)} more per day; what is the total after {rng.integers(2, 9)} days?")
        if is_num else "Tell me something kind about friendship and why it matters to people."
        for is_num in numeric
    ]
    y = np.where(numeric, rng.random(n) < 0.85, rng.random(n) < 0.15).astype(float)
    return Battles(["strong", "weak"], np.zeros(n), np.ones(n), y, x, prompts=prompts), numeric


@pytest.mark.slow
def test_classifier_reads_the_prompt_text():
    train, _ = text_battles(seed=0)
    test, numeric = text_battles(n=400, seed=1)
    with_text = ClassifierRouter().fit(train)
    p = with_text.win_probability(test.embeddings, test.prompts)
    assert _auc(p, numeric) > 0.95
    blind = ClassifierRouter(text_weight=0, tree_weight=0).fit(train)
    assert abs(_auc(blind.win_probability(test.embeddings), numeric) - 0.5) < 0.1


def test_text_classifier_needs_the_prompts(tmp_path):
    train, _ = text_battles(n=200)
    router = ClassifierRouter(epochs=2).fit(train)
    with pytest.raises(ValueError, match="pass the prompts"):
        router.win_probability(train.embeddings[:3])
    with pytest.raises(ValueError, match="2 prompts for 3 embeddings"):
        router.win_probability(train.embeddings[:3], train.prompts[:2])
    no_text = Battles(["strong", "weak"], train.a, train.b, train.outcome, train.embeddings)
    with pytest.raises(ValueError, match="carry no prompt texts"):
        ClassifierRouter().fit(no_text)


def test_text_classifier_round_trip(tmp_path):
    train, _ = text_battles(n=300)
    router = ClassifierRouter(epochs=3).fit(train)
    loaded = ClassifierRouter.load(router.save(tmp_path / "c.npz"))
    assert loaded.get_params() == router.get_params() and loaded.text_weight > 0 and loaded.tree_weight > 0
    np.testing.assert_array_equal(loaded.win_probability(train.embeddings[:50], train.prompts[:50]),
                                  router.win_probability(train.embeddings[:50], train.prompts[:50]))


def test_checkpoint_from_before_prompt_features_reads_the_embedding_only(fitted, test_prompts, tmp_path):
    old = fitted["logistic"]
    params = {k: v for k, v in old.get_params().items() if k not in ("text_weight", "tree_weight", "components")}
    arrays = {"weight0": old.weights_[0], "bias0": old.biases_[0]}
    path = save_checkpoint(tmp_path / "old.npz", "classifier", params, arrays, n_battles=old.n_battles_)
    loaded = ClassifierRouter.load(path)
    assert loaded.text_weight == 0 and loaded.tree_weight == 0
    np.testing.assert_array_equal(loaded.win_probability(test_prompts[0]), old.win_probability(test_prompts[0]))


# -- the boosted trees blended into the classifier --------------------------------------------------


def choice_battles(n: int = 1200, seed: int = 0):
    """Embeddings are noise and the text counts equal (same lengths, words, negations); the strong model
    wins 85% of the questions whose options differ by a word (``Wrong, Not wrong`` ...) and loses 85% of
    those whose options share little: only the options' overlap tells them apart."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    close = rng.random(n) < 0.5
    near = ["Wrong, Wrong", "Wrong, Not wrong", "Not wrong, Wrong", "Not wrong, Not wrong"]
    far = ["Crown, Brown", "Strong, Not town", "Not long, Clowns", "Not sings, Not hymns"]  # same counts
    prompts = [f"Question {i}: which one fits the case described here?\n"
               + "\n".join(f"{letter}. {opt}" for letter, opt in zip("ABCD", near if c else far)) + "\nAnswer:"
               for i, c in enumerate(close)]
    y = np.where(close, rng.random(n) < 0.85, rng.random(n) < 0.15).astype(float)
    return Battles(["strong", "weak"], np.zeros(n), np.ones(n), y, x, prompts=prompts), close


@pytest.mark.slow
def test_trees_learn_what_the_linear_head_cannot_see():
    train, _ = choice_battles(seed=0)
    test, close = choice_battles(n=400, seed=1)
    blended = ClassifierRouter(epochs=5).fit(train)
    p = blended.win_probability(test.embeddings, test.prompts)
    assert p.shape == (400,) and ((p >= 0) & (p <= 1)).all()
    assert _auc(p, close) > 0.9
    linear = ClassifierRouter(epochs=5, tree_weight=0).fit(train)
    assert _auc(linear.win_probability(test.embeddings, test.prompts), close) < 0.7
    # the blend is exactly (1 - w) * head + w * trees, and w = 1 is the trees alone
    trees_only = ClassifierRouter(epochs=5, tree_weight=1.0).fit(train)
    q = trees_only.win_probability(test.embeddings, test.prompts)
    head = linear.win_probability(test.embeddings, test.prompts)
    np.testing.assert_allclose(p, 0.5 * head + 0.5 * q, atol=1e-6)
    # an open prompt (no lettered options) gets the head's probability alone
    open_prompts = [t.split("\nA.")[0] for t in test.prompts]
    np.testing.assert_array_equal(blended.win_probability(test.embeddings, open_prompts),
                                  linear.win_probability(test.embeddings, open_prompts))


def mixed_battles(n: int = 1600, seed: int = 0):
    """Numbers help the strong model on open word problems and hurt it on multiple-choice ones (as on
    the public GSM8K and MMLU's mathematics): one weight per count cannot say both."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    numeric, choice = rng.random(n) < 0.5, rng.random(n) < 0.5
    prompts = []
    for num, mcq in zip(numeric, choice):
        stem = (f"A shop sells {rng.integers(2, 99)} pens at ${rng.integers(1, 9)}.{rng.integers(10, 99)} each; "
                f"what do {rng.integers(2, 9)} days cost?") if num else "Which virtue matters most in a friend?"
        options = "\nA. one\nB. two\nC. three\nD. four\nAnswer:" if mcq else ""
        prompts.append(stem + options)
    strong_side = numeric != choice
    y = np.where(strong_side, rng.random(n) < 0.85, rng.random(n) < 0.15).astype(float)
    return Battles(["strong", "weak"], np.zeros(n), np.ones(n), y, x, prompts=prompts), strong_side


def test_the_head_weighs_counts_separately_for_multiple_choice_and_open_prompts():
    train, _ = mixed_battles(seed=0)
    test, strong_side = mixed_battles(n=400, seed=1)
    split = ClassifierRouter(epochs=20, tree_weight=0).fit(train)
    assert _auc(split.win_probability(test.embeddings, test.prompts), strong_side) > 0.9
    shared = ClassifierRouter(epochs=20, tree_weight=0, split_by_options=False).fit(train)
    assert _auc(shared.win_probability(test.embeddings, test.prompts), strong_side) < 0.75


def test_battles_of_one_prompt_give_the_axes_of_every_battle():
    """A large store repeats prompts (many battles each): the principal axes are taken over the distinct
    prompts, each weighing its battles' total, and are those of the full weighted matrix."""
    base, _ = mixed_battles(n=300, seed=2)
    reps = np.random.default_rng(0).integers(1, 5, size=300)  # 1-4 battles per prompt
    rows = np.repeat(np.arange(300), reps)
    sources = np.where(np.random.default_rng(1).random(len(rows)) < 0.2, "arena-vote", "import:test")
    texts = [f"{p} (#{i})" for i, p in enumerate(base.prompts)]  # one vector per text, as in a store
    x = base.embeddings[rows].astype(np.float64)
    for prompts in ([texts[i] for i in rows], [base.prompts[i] for i in rows]):  # the second: texts repeat
        # with different vectors (a row per battle then)
        battles = Battles(["strong", "weak"], base.a[rows], base.b[rows], base.outcome[rows],
                          base.embeddings[rows], prompts=prompts, sources=list(sources))
        router = ClassifierRouter(epochs=2, components=3).fit(battles)
        w = np.where(sources == "arena-vote", router.vote_weight, 1.0)
        mean = np.average(x, axis=0, weights=w)
        axes = np.linalg.svd((x - mean) * np.sqrt(w)[:, None], full_matrices=False)[2][:3]
        np.testing.assert_allclose(router.axes_mean_, mean, atol=1e-12)
        np.testing.assert_allclose(np.abs((router.axes_ * axes).sum(axis=1)), 1.0, atol=1e-9)  # same up to sign


def test_training_passes_are_capped_by_steps_on_a_large_store():
    router = ClassifierRouter()  # 60 epochs of 256, at most 20,000 steps
    assert router.epochs_for(11_665) == 60 and router.epochs_for(80_000) == 60
    assert router.epochs_for(1_000_000) == 5 and router.epochs_for(10**9) == 1
    assert ClassifierRouter(max_steps=10**9).epochs_for(1_000_000) == 60


def test_trees_need_the_prompts_and_round_trip(tmp_path):
    train, _ = choice_battles(n=300)
    router = ClassifierRouter(epochs=2, text_weight=0).fit(train)  # the trees alone read text here
    with pytest.raises(ValueError, match="pass the prompts"):
        router.win_probability(train.embeddings[:3])
    loaded = ClassifierRouter.load(router.save(tmp_path / "t.npz"))
    assert loaded.tree_weight == 0.5 and loaded.axes_.shape == (5, D) and loaded.split_by_options
    np.testing.assert_array_equal(loaded.win_probability(train.embeddings[:40], train.prompts[:40]),
                                  router.win_probability(train.embeddings[:40], train.prompts[:40]))


@pytest.mark.parametrize("params, message", [({"tree_weight": 1.5}, "tree_weight must be in"),
                                             ({"tree_weight": float("nan")}, "tree_weight must be in"),
                                             ({"components": 0}, "components must be at least 1")])
def test_bad_tree_settings_are_refused_before_any_training(params, message):
    train, _ = choice_battles(n=50)
    with pytest.raises(ValueError, match=message):
        ClassifierRouter(**params).fit(train)


def test_the_linear_schedule_lowers_the_learning_rate_to_zero_at_the_last_step():
    import torch

    from routellm_demo.routers.numeric import train_minibatches

    for schedule, last_lr in (("constant", 0.1), ("linear", 0.0)):
        w = torch.zeros(3, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)
        target = torch.tensor([1.0, -2.0, 0.5])
        train_minibatches(lambda idx: ((w - target) ** 2).sum(), 10, epochs=3, batch_size=4, optimizer=opt,
                          generator=torch.Generator().manual_seed(0), schedule=schedule)
        assert opt.param_groups[0]["lr"] == pytest.approx(last_lr, abs=1e-12)
    with pytest.raises(ValueError, match="schedule must be one of constant, linear"):
        train_minibatches(lambda idx: (w**2).sum(), 10, epochs=1, batch_size=4, optimizer=opt,
                          generator=torch.Generator(), schedule="cosine")


def test_a_refit_on_slightly_different_data_keeps_its_level_with_the_linear_schedule():
    """Why the classifier settles its learning rate: with a constant one the head ends wherever the last
    minibatches left it, so a refit after a few more (or fewer) battles moves every score; a background
    refit would change what a fixed threshold costs on every domain."""
    full = synthetic_battles(n=3000, seed=4, n_arena=0)
    probe, _ = _prompts(np.random.default_rng(9), 500)

    def level_moves(schedule: str) -> float:
        def fit(battles):
            router = ClassifierRouter(text_weight=0, tree_weight=0, epochs=5, lr=0.05, batch_size=64,
                                      lr_schedule=schedule)
            return router.fit(battles).win_probability(probe).mean()
        base = fit(full)
        kept = [np.flatnonzero(np.random.default_rng(s).random(len(full)) > 0.02) for s in range(3)]  # 2% out
        moves = [abs(fit(full.subset(rows)) - base) for rows in kept]
        return float(np.mean(moves))

    constant, linear = level_moves("constant"), level_moves("linear")
    assert linear < constant / 2, (constant, linear)


def test_a_bad_lr_schedule_is_refused_before_any_training():
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, linear"):
        ClassifierRouter(lr_schedule="step").fit(synthetic_battles(n=50, n_arena=0))
