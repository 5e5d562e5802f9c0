"""Surface features of a prompt that a sentence embedding blurs: numbers, arithmetic, length, negation.

MiniLM embeds what a prompt is *about*; whether the weak model will slip often depends on how much
arithmetic or reading it takes (how many numbers, decimals, percentages, steps), which a
similarity-trained embedding mostly averages away. A handful of counts, chosen on general grounds
and computed from the text alone, gives the classifier that signal (grouped 5-fold CV: GSM8K APGR
.587 -> .646; MMLU, where the subject matters more, .583 either way).

Every feature is a plain function of the text (no fitting, no vocabulary), squashed with log or sqrt
so one very long prompt cannot dominate; the classifier standardises them on its training set.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

import numpy as np

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_OPERATOR = re.compile(r"[=+\-*/^<>%√∑∫×÷]")
_NEGATION_LOUD = re.compile(r"\b(?:NOT|EXCEPT|LEAST|FALSE|INCORRECT)\b")
_NEGATION = re.compile(r"\b(?:not|except|least|false|incorrect)\b", re.IGNORECASE)
_QUANTITY_WORDS = re.compile(
    r"\b(?:half|twice|double|triple|third|quarter|percent|fraction|ratio|average|total|remaining|left)\b",
    re.IGNORECASE,
)
_RATE_WORDS = re.compile(r"\b(?:each|per|every)\b", re.IGNORECASE)
_CURRENCY = re.compile(r"[$€£¥]")
_CODE = re.compile(r"[{}();\[\]]")

FEATURE_NAMES = (
    "log_chars", "log_words", "log_lines", "log_numbers", "log_digits", "log_longest_number",
    "sqrt_decimal_numbers", "sqrt_operators", "has_percent", "has_currency", "loud_negation", "negation",
    "question_marks", "sqrt_sentences", "quantity_words", "rate_words", "sqrt_code_chars",
)


def features_of(text: str) -> list[float]:
    """The features of one prompt, in :data:`FEATURE_NAMES` order."""
    numbers = _NUMBER.findall(text)
    return [
        math.log1p(len(text)),
        math.log1p(len(text.split())),
        math.log1p(text.count("\n")),
        math.log1p(len(numbers)),
        math.log1p(sum(map(str.isdigit, text))),
        math.log1p(max((len(n) for n in numbers), default=0)),
        math.sqrt(sum(1 for n in numbers if "." in n or "," in n)),
        math.sqrt(len(_OPERATOR.findall(text))),
        float("%" in text or "percent" in text.lower()),
        float(bool(_CURRENCY.search(text))),
        float(bool(_NEGATION_LOUD.search(text))),
        float(bool(_NEGATION.search(text))),
        float(min(text.count("?"), 5)),
        math.sqrt(text.count(". ") + text.count(".\n") + 1),
        float(len(_QUANTITY_WORDS.findall(text))),
        float(len(_RATE_WORDS.findall(text))),
        math.sqrt(len(_CODE.findall(text))),
    ]


def distinct_texts(prompts: Iterable[str]) -> tuple[list[str], np.ndarray]:
    """``(texts, inverse)``: the distinct prompts in first-seen order (a non-string counts as "") and,
    per prompt, its row among them. A store holds many battles per prompt (a million battles of a few
    thousand prompts): per-prompt work done once per distinct text, then spread with ``inverse``."""
    first: dict[str, int] = {}
    inverse = [first.setdefault(p if isinstance(p, str) else "", len(first)) for p in prompts]
    return list(first), np.asarray(inverse, dtype=np.int64)


def _per_distinct(of_one, prompts: Iterable[str], width: int) -> np.ndarray:
    texts, inverse = distinct_texts(prompts)
    rows = np.asarray([of_one(t) for t in texts], dtype=np.float64).reshape(len(texts), width)
    return rows[inverse]


def prompt_features(prompts: Iterable[str]) -> np.ndarray:
    """(n, len(FEATURE_NAMES)) float64 features of ``prompts`` (each distinct text read once)."""
    return _per_distinct(features_of, prompts, len(FEATURE_NAMES))


# Each feature's mean and standard deviation over the 11,665 prompts of the shipped seed (RouteLLM's public
# evaluation data: MMLU, GSM8K, MT-Bench), measured once: a router that takes votes one at a time (sw_ranking)
# cannot re-standardise as they arrive, so it uses these fixed values. They are model parameters, not a
# summary of data that may grow: tests/test_prompt_features.py checks them against the statistics the
# shipped classifier checkpoint recorded; regenerate them only together with the checkpoints and data/eval.
REFERENCE_MEAN = np.array((5.891, 4.148, 1.724, 0.7611, 1.055, 0.6818, 0.1744, 0.683, 0.0447, 0.0787, 0.0221,
                           0.3431, 0.642, 2.830, 0.1974, 0.1787, 0.4646))
REFERENCE_SCALE = np.array((0.787, 0.7543, 0.4577, 0.8882, 1.1939, 0.7482, 0.5507, 0.8805, 0.2066, 0.2693, 0.1471,
                            0.4747, 0.5505, 0.7064, 0.6546, 0.5888, 0.8929))


def text_vectors(embeddings: np.ndarray, prompts, weight: float) -> np.ndarray:
    """Unit vectors ``[embedding ; weight * features]`` (features standardised with the reference values
    and divided by sqrt(k), so ``weight = 1`` weighs the feature block like the unit-norm embedding):
    cosine similarity between them is "about the same thing *and* as numeric / as long"."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    prompts = list(prompts)
    if len(prompts) != len(x):
        raise ValueError(f"{len(prompts)} prompts for {len(x)} embeddings")
    z = (prompt_features(prompts) - REFERENCE_MEAN) / REFERENCE_SCALE / np.sqrt(len(FEATURE_NAMES))
    out = np.hstack([x, (float(weight) * z).astype(np.float32)])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


# -- multiple-choice structure ------------------------------------------------------------------
# A second, separate block (the classifier's trees read it; sw_ranking's similarity does not): how a
# multiple-choice question is built. Options that differ in a word or two ("Wrong, Not wrong" /
# "Not wrong, Wrong"; "I and II only" / "II and III only"; "True, False"), two statements to judge,
# or a long stem with short numeric answers ask for careful step-by-step reading, which is where a
# strong model pulls away from a weak one in *every* subject, so it carries over to subjects the
# router never saw (MMLU grouped by subject: these 7 + trees lift APGR .58 -> .61).

_CHOICE = re.compile(r"^\s*\(?([A-J])[.)]\s+(.*\S)\s*$", re.MULTILINE)
_NUMERIC_CHOICE = re.compile(r"^[\s$€£\-−+~≈]*\d[\d.,/:%^×x\s]*[^\W\d_]{0,12}[.%°]?$")
_ROMAN_OPTIONS = re.compile(r"\bI{1,3}V?\.|\b(?:I|II|III|IV) (?:and|or) (?:II|III|IV)\b|\bI, II\b")

CHOICE_FEATURE_NAMES = (
    "statement_pair", "roman_options", "log_stem_chars", "log_choice_chars", "choice_length_spread",
    "numeric_choices", "choice_overlap",
)


def choices_of(text: str) -> tuple[str, list[str]]:
    """``(stem, options)`` of a lettered multiple-choice prompt ("A. ..." or "A) ..." lines); a prompt
    without at least two such lines is all stem."""
    options = list(_CHOICE.finditer(text))
    if len(options) < 2:
        return text, []
    return text[:options[0].start()], [m.group(2) for m in options]


def _overlap(options: list[str]) -> float:
    """Mean pairwise Jaccard similarity of the options' word sets: near 1 when they are permutations
    of the same words."""
    words = [set(o.lower().replace(",", " ").split()) for o in options]
    pairs = [(a, b) for i, a in enumerate(words) for b in words[i + 1:]]
    return float(np.mean([len(a & b) / max(len(a | b), 1) for a, b in pairs]))


def choice_features_of(text: str) -> list[float]:
    """The multiple-choice features of one prompt, in :data:`CHOICE_FEATURE_NAMES` order (all zero but
    the stem length for a prompt without options)."""
    stem, options = choices_of(text)
    lengths = np.array([len(o) for o in options], dtype=np.float64)
    return [
        float("Statement 1" in text),
        float(bool(_ROMAN_OPTIONS.search(text))),
        math.log1p(len(stem)),
        math.log1p(lengths.mean()) if options else 0.0,
        float(lengths.std() / (lengths.mean() + 1)) if options else 0.0,
        float(np.mean([bool(_NUMERIC_CHOICE.match(o)) for o in options])) if options else 0.0,
        _overlap(options) if options else 0.0,
    ]


def choice_features(prompts: Iterable[str]) -> np.ndarray:
    """(n, len(CHOICE_FEATURE_NAMES)) float64 multiple-choice features of ``prompts`` (each distinct text
    read once)."""
    return _per_distinct(choice_features_of, prompts, len(CHOICE_FEATURE_NAMES))


def has_options(choices: np.ndarray) -> np.ndarray:
    """Which rows of a :func:`choice_features` matrix are multiple-choice prompts (lettered options)."""
    return np.asarray(choices)[:, CHOICE_FEATURE_NAMES.index("log_choice_chars")] > 0
