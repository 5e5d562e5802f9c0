"""Prompt features (hand-counted cases), battles carrying their prompts, and the shipped classifier
reading the text through the same path as the app (real MiniLM, real checkpoint, real SQLite)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.config import load_config
from routellm_demo.controller import Controller
from routellm_demo.embeddings import Embedder
from routellm_demo.prompt_features import (
    CHOICE_FEATURE_NAMES, FEATURE_NAMES, REFERENCE_MEAN, REFERENCE_SCALE, choice_features, choice_features_of,
    choices_of, distinct_texts, features_of, prompt_features, text_vectors,
)
from routellm_demo.store import Store
from routellm_demo.router_set import RouterSet

REPO = Path(__file__).resolve().parents[1]

CHECKPOINTS = Path(__file__).resolve().parents[1] / "data" / "checkpoints"


def named(text: str) -> dict:
    return dict(zip(FEATURE_NAMES, features_of(text)))


def test_word_problem_counts():
    f = named("Tom buys 3 apples at $1.50 each and sells half. What is 20% of the total?")
    assert f["log_numbers"] == pytest.approx(math.log1p(3))  # 3, 1.50, 20
    assert f["log_digits"] == pytest.approx(math.log1p(6))
    assert f["log_longest_number"] == pytest.approx(math.log1p(4))  # "1.50"
    assert f["sqrt_decimal_numbers"] == pytest.approx(1.0)
    assert f["has_percent"] == 1.0 and f["has_currency"] == 1.0
    assert f["quantity_words"] == 2.0  # half, total
    assert f["rate_words"] == 1.0  # each
    assert f["question_marks"] == 1.0
    assert f["sqrt_operators"] == pytest.approx(1.0)  # the % sign
    assert f["negation"] == 0.0 and f["loud_negation"] == 0.0


def test_plain_question_and_negations():
    f = named("Which of these is NOT a mammal?\nA. Cat\nB. Shark")
    assert f["log_numbers"] == 0.0 and f["has_percent"] == 0.0 and f["has_currency"] == 0.0
    assert f["loud_negation"] == 1.0 and f["negation"] == 1.0
    assert f["log_lines"] == pytest.approx(math.log1p(2))
    assert named("This is not it.")["loud_negation"] == 0.0 and named("This is not it.")["negation"] == 1.0
    assert named("def f(x): return [x]")["sqrt_code_chars"] == pytest.approx(2.0)


def test_matrix_shape_and_odd_inputs():
    m = prompt_features(["", "1+1", None])
    assert m.shape == (3, len(FEATURE_NAMES)) and m.dtype == np.float64 and np.isfinite(m).all()
    np.testing.assert_array_equal(m[0], m[2])  # a missing text counts as empty
    assert prompt_features([]).shape == (0, len(FEATURE_NAMES))


def test_each_distinct_text_is_read_once_and_spread_to_its_rows(monkeypatch):
    import routellm_demo.prompt_features as pf

    texts, inverse = distinct_texts(["b", "a", "b", None, ""])
    assert texts == ["b", "a", ""] and inverse.tolist() == [0, 1, 0, 2, 2]
    prompts = ["Add 2 and 3.", "Why?\nA. x\nB. y\nAnswer:", "Add 2 and 3.", None]
    read = []
    monkeypatch.setattr(pf, "features_of", lambda t: read.append(t) or [float(len(t))] * len(FEATURE_NAMES))
    m = pf.prompt_features(prompts)
    assert read == ["Add 2 and 3.", "Why?\nA. x\nB. y\nAnswer:", ""]  # once each, first-seen order
    assert m[:, 0].tolist() == [12.0, 22.0, 12.0, 0.0]
    monkeypatch.undo()
    np.testing.assert_array_equal(choice_features(prompts), [choice_features([p])[0] for p in prompts])


def test_multiple_choice_structure():
    text = ("Scenario 1 | I took it. Scenario 2 | I gave it back.\nA. Wrong, Wrong\nB. Wrong, Not wrong\n"
            "C. Not wrong, Wrong\nD. Not wrong, Not wrong\nAnswer:")
    stem, options = choices_of(text)
    assert stem == "Scenario 1 | I took it. Scenario 2 | I gave it back.\n" and len(options) == 4
    f = dict(zip(CHOICE_FEATURE_NAMES, choice_features_of(text)))
    # word sets {wrong}, {wrong, not} x2, {not, wrong}: Jaccard 1/2 for the 3 pairs with A, 1 for the other 3
    assert f["choice_overlap"] == pytest.approx(0.75)
    assert f["log_stem_chars"] == pytest.approx(math.log1p(len(stem)))
    assert f["log_choice_chars"] == pytest.approx(math.log1p((12 + 16 + 16 + 20) / 4))
    assert f["numeric_choices"] == 0.0 and f["statement_pair"] == 0.0 and f["roman_options"] == 0.0

    numbers = dict(zip(CHOICE_FEATURE_NAMES, choice_features_of(
        "Statement 1 | Every group is abelian. Statement 2 | I and II hold.\nA) 4 m\nB) 12\nC) 3.5%\nD) seven")))
    assert numbers["numeric_choices"] == 0.75 and numbers["choice_overlap"] == 0.0
    assert numbers["statement_pair"] == 1.0 and numbers["roman_options"] == 1.0


def test_a_prompt_without_options_is_all_stem():
    for text in ("Write a haiku about rain.", "Pick one:\nA. only one option", ""):
        f = choice_features_of(text)
        assert f[CHOICE_FEATURE_NAMES.index("log_stem_chars")] == pytest.approx(math.log1p(len(text)))
        assert all(v == 0.0 for i, v in enumerate(f) if CHOICE_FEATURE_NAMES[i] != "log_stem_chars")
    m = choice_features(["x", None])
    assert m.shape == (2, len(CHOICE_FEATURE_NAMES)) and np.isfinite(m).all()


def test_reference_statistics_are_those_the_shipped_classifier_was_trained_with():
    """REFERENCE_MEAN/SCALE are frozen model parameters (a Space has no ../shared, and sw_ranking cannot
    re-standardise vote by vote), not a summary of data that moves: they must agree with the statistics
    the shipped classifier checkpoint recorded from the same public prompts."""
    arrays = np.load(REPO / "data" / "checkpoints" / "classifier.npz", allow_pickle=False)
    np.testing.assert_allclose(REFERENCE_MEAN, arrays["text_mean"], rtol=5e-3, atol=1e-3)
    np.testing.assert_allclose(REFERENCE_SCALE, arrays["text_scale"], rtol=5e-3, atol=1e-3)
    assert (REFERENCE_SCALE > 0).all() and np.isfinite(REFERENCE_MEAN).all()


def test_text_vectors_are_unit_and_reduce_to_the_embedding_at_weight_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    prompts = ["What is 12% of $250?", "Write a haiku about rain.", "Sum 1, 2 and 3."]
    v = text_vectors(x, prompts, 0.5)
    assert v.shape == (3, 8 + len(FEATURE_NAMES)) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(text_vectors(x, prompts, 0.0)[:, :8], x, rtol=1e-6)
    # same embedding for all three: only the text separates them, and the two numeric prompts are closer
    same = text_vectors(np.repeat(x[:1], 3, axis=0), prompts, 0.5)
    assert same[0] @ same[2] > same[0] @ same[1]
    with pytest.raises(ValueError, match="2 prompts for 3 embeddings"):
        text_vectors(x, prompts[:2], 0.5)


def test_battles_keep_their_prompts_through_records_and_subsets():
    rows = [{"model_a": "x", "model_b": "y", "winner": w, "strong_side": "a", "id": i, "prompt": f"p{i}"}
            for i, w in enumerate(["model_a", "model_b", "tie"])]
    b = Battles.from_records(rows, embeddings=np.eye(3, 4, dtype=np.float32))
    assert b.prompts == ["p0", "p1", "p2"]
    sub = b.subset(np.array([True, False, True]))
    assert sub.prompts == ["p0", "p2"] and list(sub.ids) == [0, 2] and sub.embeddings.shape == (2, 4)
    assert Battles.from_records([{k: v for k, v in r.items() if k != "prompt"} for r in rows]).prompts is None
    with pytest.raises(ValueError, match="2 prompts for 3 battles"):
        Battles(["strong", "weak"], [0, 0, 0], [1, 1, 1], [1.0, 0.0, 0.5], prompts=["a", "b"])


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def test_the_app_path_scores_the_classifier_with_the_prompt_text(tmp_path, embedder):
    """decide() (what the chat, the server and the CLI call) passes the text: its score is the shipped
    classifier's score of embedding + text, and the text alone moves it."""
    config = replace(load_config(environ={}), db_path=tmp_path / "c.db", checkpoint_dir=CHECKPOINTS)
    with Store(config.db_path) as store:
        emb = Embedder(store)
        routers = RouterSet(store, emb, checkpoint_dir=CHECKPOINTS)
        controller = Controller(config, store, emb, routers)
        prompt = "A baker sells 240 rolls at $0.75 each and 15% more on Sundays. How much per week?"
        decision = controller.decide(prompt, router="classifier", threshold=0.5)
        classifier = routers.get("classifier")
        assert classifier.text_weight > 0  # the shipped checkpoint reads text
        vector = emb.embed([prompt])
        assert decision.score == pytest.approx(float(classifier.win_probability(vector, [prompt])[0]))
        plain = "A baker sells rolls and more on Sundays. How much per week?"
        assert classifier.win_probability(vector, [plain])[0] != pytest.approx(decision.score, abs=1e-3)
