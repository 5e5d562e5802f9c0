"""RouteLLM's classifier router, sized for a CPU.

RouteLLM's ``bert`` router fine-tunes BERT to predict, from the prompt alone, whether the strong model
wins. Here the sentence encoder stays frozen and only a small head is trained on its 384-d embedding:
logistic regression (``hidden=0``) or one hidden ReLU layer. Unlike MF it can only use battles between
the strong and the weak role (it has no notion of other players), with ties as soft 0.5 targets.

With ``text_weight > 0`` (the default) the head also reads a few counts from the prompt's text
(:mod:`routellm_demo.prompt_features`: numbers, arithmetic, length, negation), standardised on the
training set and multiplied by ``text_weight``; the default 1/sqrt(k) makes the k of them weigh as
much in total as the unit-norm embedding. It then needs the prompts' texts both to fit and to
predict. ``text_weight=0`` reads the embedding only (RouteLLM's setting).

The counts enter the head twice over, once for multiple-choice prompts and once for open ones
(``split_by_options``): the same count can mean opposite things in each, and training on both kinds
at once (``eval --train-dir``, or the shipped checkpoint) would otherwise average it away.

With ``tree_weight > 0`` (default 0.5) a multiple-choice prompt's probability is blended with
gradient-boosted trees' (:mod:`routellm_demo.routers.trees`) on the counts, the multiple-choice
structure (:func:`~routellm_demo.prompt_features.choice_features`) and the embedding's first
``components`` principal axes. The linear head reads topic finely but adds effects up; the trees find
interactions of how a question is built that carry over to subjects the router never saw. Open
prompts keep the head's probability (there the trees only add variance). Grouped 5-fold CV, mean of
5 fold draws (`eval --repeats 5`): MMLU APGR .578 -> .606 with the trees; GSM8K .649, and .648 when
trained beside MMLU (`--combine`; .579 without the split).

Arena votes can weigh more than imported battles (``vote_weight``, issue 18): a battle whose store source
is "arena-vote" then counts ``vote_weight`` times in everything the fit estimates from the data: the head's
loss, its starting base rate, the text counts' standardisation, the trees' squared error and their principal
axes, so a vote weighted w fits like w copies of it. The default is 1 (a vote is a battle like any other),
since weighting cannot teach a global fit a new domain's ranking from 200 votes among 11,000 battles (it
ranked moral_disputes at .44 before and after them, at weight 5) while it pulls every domain: the fit is
global (``benchmarks/vote_locality.py --router classifier`` measures the pull on a domain that got no vote).

What learns the new domain is ``vote_ridge`` (the default): a fit that holds at least ``MIN_VOTES`` voted
prompts also fits a ridge on the votes alone (on the vector and, for an open prompt, its text counts), put on
the classifier's scale at the votes, and a prompt's probability moves to the ridge's where the votes are and
the ridge can be trusted (:mod:`routellm_demo.routers.vote_ridge`): far from them, the classifier's own.
With it, weight 5 ranked the voted domains no better than 1 and moved a domain that got no vote further
(LEARNING.md, "The classifier's votes at weight 1").

The learning rate falls linearly to 0 over training (``lr_schedule="linear"``; "constant" was the rule
before issue 18). With a constant rate Adam's last minibatches leave the head wherever they happen to,
and that moves every score: a refit on the store with 2% of its battles left out shifted GSM8K's scores
by several hundredths, enough to send most of its prompts to the strong model at the old threshold. A
settled head keeps a background refit from changing what a threshold costs.

Training uses torch (imported only in ``fit``); prediction is plain numpy, so a loaded checkpoint
predicts exactly as the fitted router did, without torch.
"""

from __future__ import annotations

import numpy as np

from routellm_demo.battles import ARENA_SOURCE, Battles
from routellm_demo.prompt_features import (FEATURE_NAMES, choice_features, distinct_texts, has_options,
                                           prompt_features)
from routellm_demo.routers.base import Router
from routellm_demo.routers.checkpoint import load_checkpoint, save_checkpoint
from routellm_demo.routers.numeric import SCHEDULES, check_battles, check_embeddings, sigmoid, train_minibatches
from routellm_demo.routers.trees import TREE_ARRAYS, fit_trees, predict_trees
from routellm_demo.routers.vote_ridge import MIN_VOTES, VoteRidge

VOTE_RIDGE_PREFIX = "vote_ridge_"  # its arrays' names in a checkpoint
VOTE_WEIGHT = 1.0  # an arena vote counts as this many imported battles (see the module doc)

TEXT_WEIGHT = round(1 / np.sqrt(len(FEATURE_NAMES)), 4)  # the feature block's total variance = 1


class ClassifierRouter(Router):
    """Classifier on frozen prompt embeddings + text counts (RouteLLM "bert", CPU-sized): P(strong wins)."""

    name = "classifier"

    def __init__(
        self,
        hidden: int = 0,
        alpha: float = 1e-4,
        epochs: int = 60,
        lr: float = 1e-2,
        batch_size: int = 256,
        random_state: int = 0,
        text_weight: float = TEXT_WEIGHT,
        tree_weight: float = 0.5,
        components: int = 5,
        split_by_options: bool = True,
        vote_weight: float = VOTE_WEIGHT,
        max_steps: int = 20_000,
        lr_schedule: str = "linear",
        vote_ridge: bool = True,
    ):
        self.hidden = hidden
        self.alpha = alpha
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.random_state = random_state
        self.text_weight = text_weight
        self.tree_weight = tree_weight
        self.components = components
        self.split_by_options = split_by_options
        self.vote_weight = vote_weight
        self.max_steps = max_steps
        self.lr_schedule = lr_schedule  # "linear": settle at the end, so a refit's level does not jitter
        self.vote_ridge = vote_ridge  # a ridge on the votes alone, blended in where they are (vote_ridge.py)

    def _battle_weights(self, battles: Battles) -> np.ndarray:
        """Each battle's weight in the fit: ``vote_weight`` for this app's arena votes, 1 for any other
        source (and for battles that carry none: a bulk fit is the store's, as in sw_ranking's fit)."""
        if battles.sources is None:
            return np.ones(len(battles))
        return np.where(np.asarray(battles.sources, dtype=object) == ARENA_SOURCE, float(self.vote_weight), 1.0)

    def _text(self, prompts, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The prompts' text counts and multiple-choice features, read once per call; None when this
        router reads no text."""
        if not (self.text_weight or self.tree_weight):
            return None
        if prompts is None:
            raise ValueError("this classifier reads the prompts' text as well as their embeddings: pass "
                             "the prompts (or use text_weight=0 and tree_weight=0)")
        prompts = list(prompts)
        if len(prompts) != n:
            raise ValueError(f"{len(prompts)} prompts for {n} embeddings")
        return prompt_features(prompts), choice_features(prompts)

    def _inputs(self, x: np.ndarray, text) -> np.ndarray:
        """The head's input: the embedding, plus the scaled text counts when this router reads them.

        With ``split_by_options`` the counts go to one of two blocks, multiple-choice prompts and open
        ones: a count means different things in each (many numbers: a word problem the weak model
        fumbles, or a multiple-choice calculation; the public MMLU and GSM8K gains pull in opposite
        ways), and one shared weight would average them away when both kinds are in the training set."""
        if not self.text_weight:
            return x
        raw, choices = text
        t = ((raw - self.text_mean_) / self.text_scale_ * self.text_weight).astype(np.float32)
        if self.split_by_options:
            options = has_options(choices)[:, None]
            t = np.hstack([np.where(options, t, 0.0), np.where(options, 0.0, t)]).astype(np.float32)
        return np.hstack([x, t])

    def _tree_inputs(self, x: np.ndarray, text) -> np.ndarray:
        """The trees' input: the raw text counts, the multiple-choice features and the embedding's
        projection on its first principal axes (a few columns: trees split on single columns)."""
        raw, choices = text
        axes = (x.astype(np.float64) - self.axes_mean_) @ self.axes_.T
        return np.hstack([raw, choices, axes])

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, battles: Battles) -> "ClassifierRouter":
        """Fit on the strong-vs-weak battles only; loss = soft-target BCE (each battle weighted:
        :meth:`_battle_weights`) + alpha * squared weights."""
        import torch

        if not (np.isfinite(self.vote_weight) and self.vote_weight > 0):
            raise ValueError(f"vote_weight must be a positive number, got {self.vote_weight!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0.0 <= self.tree_weight <= 1.0:  # also refuses NaN
            raise ValueError(f"tree_weight must be in [0, 1] (a blend weight), got {self.tree_weight!r}")
        if self.tree_weight and int(self.components) < 1:
            raise ValueError(f"components must be at least 1 when the trees are used, got {self.components!r}")
        check_battles(battles)
        target = battles.strong_outcome()
        keep = ~np.isnan(target)
        if not keep.any():
            raise ValueError(
                "no strong-vs-weak battles to fit the classifier on "
                "(it needs battles where one side played the strong role and the other the weak role)"
            )
        battles, target = battles.subset(keep), target[keep]
        w = self._battle_weights(battles)
        weighted = bool((w != 1.0).any())  # no vote: the unweighted arithmetic, bit for bit
        if (self.text_weight or self.tree_weight) and battles.prompts is None:
            raise ValueError("these battles carry no prompt texts; the classifier reads them (text_weight "
                             "or tree_weight > 0): load them with their prompts or set both to 0")
        self.n_features_in_ = int(battles.embeddings.shape[1])
        x_emb = check_embeddings(battles.embeddings, self.n_features_in_)
        text = self._text(battles.prompts, len(x_emb))
        if self.text_weight:
            if weighted:
                mean = np.average(text[0], axis=0, weights=w)
                spread = np.sqrt(np.average((text[0] - mean) ** 2, axis=0, weights=w))
            else:
                mean, spread = text[0].mean(axis=0), text[0].std(axis=0)
            self.text_mean_, self.text_scale_ = mean, np.where(spread > 1e-9, spread, 1.0)
        x_all = self._inputs(x_emb, text)
        g = torch.Generator().manual_seed(int(self.random_state))
        x = torch.from_numpy(np.ascontiguousarray(x_all))
        y = torch.from_numpy(target.astype(np.float32))
        n, d = x.shape

        # Seeded init (not torch's global RNG): same seed, same router. Bias starts at the
        # base rate so early epochs learn the prompt dependence, not the average.
        base = float(np.clip(np.average(target, weights=w) if weighted else target.mean(), 1e-3, 1 - 1e-3))
        weights = []
        if self.hidden:
            weights.append((torch.randn(d, self.hidden, generator=g) * (2.0 / d) ** 0.5).requires_grad_())
            biases = [torch.zeros(self.hidden, requires_grad=True)]
            fan_in = self.hidden
        else:
            biases = []
            fan_in = d
        weights.append((torch.randn(fan_in, generator=g) * 0.01).requires_grad_())
        biases.append(torch.tensor(float(np.log(base / (1 - base))), requires_grad=True))
        params = weights + biases

        def logits(xb):
            h = xb
            if self.hidden:
                h = torch.relu(h @ weights[0] + biases[0])
            return h @ weights[-1] + biases[-1]

        # Weighted: sum(w * bce) / (batch size * mean weight), an unbiased estimate of the full data's
        # weighted mean loss (with one batch it is that mean: w copies of a battle give the same loss).
        w_t = torch.from_numpy((w / w.mean()).astype(np.float32)) if weighted else None

        def loss_of_batch(idx):
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logits(x[idx]), y[idx], weight=None if w_t is None else w_t[idx])
            return bce + self.alpha * sum((wt**2).sum() for wt in weights)

        opt = torch.optim.Adam(params, lr=self.lr)
        self.loss_history_ = train_minibatches(
            loss_of_batch, n, epochs=self.epochs_for(n), batch_size=self.batch_size, optimizer=opt, generator=g,
            schedule=self.lr_schedule)
        self.weights_ = [wt.detach().numpy().astype(np.float32) for wt in weights]
        self.biases_ = [np.asarray(bs.detach().numpy(), dtype=np.float32) for bs in biases]
        self.n_battles_ = int(n)
        # each battle's distinct prompt (and each prompt's first battle), grouped once for the trees' axes and
        # the votes' ridge
        grouped = None
        if battles.prompts is not None and (self.tree_weight or self.vote_ridge):
            texts, inverse = distinct_texts(battles.prompts)
            grouped = (texts, inverse, np.unique(inverse, return_index=True)[1])
        if self.tree_weight:
            self._fit_trees(x_emb, text, target, w if weighted else None, grouped)
        self.vote_ridge_ = None  # the classifier's own scores first: the ridge is put on their scale
        if self.vote_ridge and grouped is not None:
            self.vote_ridge_ = self._fit_vote_ridge(battles, x_emb, target, grouped)
        return self

    def _fit_vote_ridge(self, battles: Battles, x_emb: np.ndarray, target: np.ndarray,
                        grouped: tuple[list[str], np.ndarray, np.ndarray]) -> VoteRidge | None:
        """The votes' own ridge (:mod:`routellm_demo.routers.vote_ridge`), fitted on each voted prompt's mean
        outcome, against the store's other prompts; None with fewer than ``MIN_VOTES`` voted prompts.
        ``grouped``: :func:`distinct_texts` of the battles' prompts and each prompt's first battle."""
        if battles.sources is None:
            return None
        is_vote = np.asarray(battles.sources, dtype=object) == ARENA_SOURCE
        if not is_vote.any():
            return None
        texts, inverse, first = grouped  # first: each distinct prompt's first battle (its vector)
        voted = np.unique(inverse[is_vote])
        if len(voted) < MIN_VOTES:
            return None
        outcome = np.bincount(inverse[is_vote], weights=target[is_vote], minlength=len(texts))[voted]
        outcome /= np.bincount(inverse[is_vote], minlength=len(texts))[voted]
        others = np.setdiff1d(np.unique(inverse[~is_vote]), voted)
        at_votes, voted_texts = x_emb[first[voted]], [texts[i] for i in voted]
        own = self.win_probability(at_votes, voted_texts)
        return VoteRidge(random_state=int(self.random_state)).fit(at_votes, outcome, x_emb[first[others]], own,
                                                                 self.vote_ridge_inputs(at_votes, voted_texts))

    def vote_ridge_inputs(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        """What the votes' ridge reads for these prompts (for a benchmark that fits one as :meth:`fit` does)."""
        x = check_embeddings(embeddings, getattr(self, "n_features_in_", None))
        return self._vote_ridge_inputs(x, self._inputs(x, self._text(prompts, len(x))))

    def _vote_ridge_inputs(self, x: np.ndarray, head_input: np.ndarray) -> np.ndarray:
        """What the votes' ridge reads: the embedding, and an open prompt's text counts as the head scales them
        (a multiple-choice prompt's are zeros). The counts lift a ridge on word problems' votes and keep word
        problems off a subject's votes' span; a subject's own counts mislead it, as they pull MMLU's and
        GSM8K's gains opposite ways in the head (LEARNING.md, "The votes' ridge reads an open prompt's text
        counts"). Without split counts, the embedding alone. ``head_input``: :meth:`_inputs` of the prompts."""
        if not (self.text_weight and self.split_by_options):
            return x
        return np.hstack([x, head_input[:, -len(FEATURE_NAMES):]])  # the open prompts' block

    def epochs_for(self, n: int) -> int:
        """``epochs``, or fewer where that many passes would exceed ``max_steps`` minibatches: a store of a
        million battles (a few thousand prompts, each seen hundreds of times a pass) would otherwise
        train for minutes in a background refit; up to ~85,000 battles nothing changes."""
        steps_per_epoch = -(-int(n) // int(self.batch_size))
        return int(max(1, min(int(self.epochs), int(self.max_steps) // max(1, steps_per_epoch))))

    def _fit_trees(self, x_emb: np.ndarray, text, target: np.ndarray, w: np.ndarray | None = None,
                   grouped: tuple[list[str], np.ndarray, np.ndarray] | None = None) -> None:
        """Principal axes of the training embeddings, then boosted trees on the expected outcome
        (1 strong win, 0.5 tie, 0 weak win: squared loss fits P(strong wins) + P(tie)/2 directly).
        Leaves hold at least 1% of the battles (20 at least): each leaf is a mean over many prompts.
        ``w``: per-battle weights (arena votes), in the axes (weighted covariance) and the trees' loss.

        Where the battles of one prompt share its vector (a store's do: one cached embedding a prompt),
        the axes come from the distinct prompts, each weighing its battles' total (the same covariance),
        so a million battles of a few thousand prompts never copy a million vectors to float64 (3 GB)."""
        groups = _shared_vectors(grouped, x_emb)
        first, inverse = groups if groups is not None else (slice(None), None)  # else a row per battle
        x = x_emb[first].astype(np.float64)
        mass = w if inverse is None else np.bincount(inverse, weights=w, minlength=len(x))
        self.axes_mean_ = x.mean(axis=0) if mass is None else np.average(x, axis=0, weights=mass)
        centred = x - self.axes_mean_
        if mass is not None:
            centred *= np.sqrt(mass)[:, None]
        self.axes_ = np.linalg.svd(centred, full_matrices=False)[2][: self.components]
        raw, choices = text
        projected = self._tree_inputs(x, (raw[first], choices[first]))
        if inverse is not None:
            projected = projected[inverse]
        self.trees_ = fit_trees(projected, target, min_samples_leaf=max(20, round(len(target) / 100)),
                                random_state=int(self.random_state), sample_weight=w)

    # -- prediction --------------------------------------------------------------------------------
    def decision_function(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        """The linear head's logit of P(strong wins) per prompt (the trees join in win_probability)."""
        x = check_embeddings(embeddings, getattr(self, "n_features_in_", None))
        return self._logit(self._inputs(x, self._text(prompts, len(x)) if self.text_weight else None))

    def _logit(self, h: np.ndarray) -> np.ndarray:
        if len(self.weights_) == 2:
            h = np.maximum(h @ self.weights_[0] + self.biases_[0], 0.0)
        return h @ self.weights_[-1] + self.biases_[-1]

    def win_probability(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        """The linear head's probability, blended with the trees' (weight ``tree_weight``) on
        multiple-choice prompts."""
        x = check_embeddings(embeddings, getattr(self, "n_features_in_", None))
        text = self._text(prompts, len(x))
        head_input = self._inputs(x, text)
        p = sigmoid(self._logit(head_input)).astype(np.float64)
        # The trees' edge is the multiple-choice structure; on an open prompt they only add variance
        # (GSM8K trained beside MMLU, mean of 5 fold draws: head alone .648, blended everywhere .623),
        # so open prompts (every chat turn without lettered options) skip the trees' walk.
        options = has_options(text[1]) if self.tree_weight else np.zeros(len(x), dtype=bool)
        if options.any():
            raw, choices = text
            trees = predict_trees(self.trees_, self._tree_inputs(x[options], (raw[options], choices[options])))
            p[options] = (1.0 - self.tree_weight) * p[options] + self.tree_weight * np.clip(trees, 0.0, 1.0)
        ridge = getattr(self, "vote_ridge_", None)
        if ridge is not None:
            # a ridge saved before it read the counts reads the embedding alone
            inputs = x if ridge.n_inputs_ == x.shape[1] else self._vote_ridge_inputs(x, head_input)
            p = ridge.blend(p, x, inputs)
        return p

    def _text_columns(self) -> int:
        """How many of the head's input columns are text counts."""
        return len(FEATURE_NAMES) * (2 if self.split_by_options else 1) if self.text_weight else 0

    def info(self) -> dict:
        return {**super().info(), **self.get_params()}

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path):
        """One small .npz (weights + hyperparameters, no pickle); returns its path."""
        arrays = {f"weight{i}": wt for i, wt in enumerate(self.weights_)}
        arrays.update({f"bias{i}": bs for i, bs in enumerate(self.biases_)})
        if self.text_weight:
            arrays.update(text_mean=self.text_mean_, text_scale=self.text_scale_)
        if self.tree_weight:
            arrays.update(axes_mean=self.axes_mean_, axes=self.axes_, **self.trees_)
        if getattr(self, "vote_ridge_", None) is not None:
            arrays.update(self.vote_ridge_.to_arrays(VOTE_RIDGE_PREFIX))
        return save_checkpoint(path, self.name, self.get_params(), arrays, n_battles=self.n_battles_)

    @classmethod
    def load(cls, path) -> "ClassifierRouter":
        meta, arrays = load_checkpoint(path, cls.name)
        # checkpoints made before prompt features (or trees) existed read the embedding (head) only
        router = cls(**{"text_weight": 0.0, "tree_weight": 0.0, "split_by_options": False, **meta["hyperparameters"]})
        layers = 2 if router.hidden else 1
        router.weights_ = [arrays[f"weight{i}"] for i in range(layers)]
        router.biases_ = [arrays[f"bias{i}"] for i in range(layers)]
        if router.text_weight:
            router.text_mean_, router.text_scale_ = arrays["text_mean"], arrays["text_scale"]
        if router.tree_weight:
            router.axes_mean_, router.axes_ = arrays["axes_mean"], arrays["axes"]
            router.trees_ = {k: arrays[k] for k in TREE_ARRAYS}
        router.n_features_in_ = int(router.weights_[0].shape[0]) - router._text_columns()
        router.n_battles_ = int(meta["n_battles"])
        router.vote_ridge_ = VoteRidge.from_arrays(arrays, VOTE_RIDGE_PREFIX)
        return router


def _shared_vectors(grouped, x: np.ndarray, block: int = 65_536) -> tuple[np.ndarray, np.ndarray] | None:
    """``(first, inverse)``: each distinct prompt's first battle and each battle's distinct prompt, when
    prompts repeat and every battle of a prompt carries that prompt's vector; None otherwise (checked
    block by block: no copy of all the vectors). ``grouped``: :func:`distinct_texts` of the prompts and each
    distinct prompt's first battle."""
    if grouped is None:
        return None
    texts, inverse, first = grouped
    if len(texts) == len(inverse):
        return None
    for start in range(0, len(x), block):
        if not np.array_equal(x[start:start + block], x[first[inverse[start:start + block]]]):
            return None
    return first, inverse
