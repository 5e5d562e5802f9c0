"""The arena: one prompt, both models side by side, a vote that teaches the router at once.

The vote path (DESIGN.md): ``vote(battle_id, outcome, session_id)`` -> one transaction writes the
battle row and marks the pending battle voted -> the online routers absorb the row
(``RouterSet.absorb``: sw_ranking appends it, elo refits) -> ratings are refit from pair counts ->
the before/after figures go back to the shell. "Before" is sw_ranking's score when both answers
came in (stored with the round): the prediction the visitor's round is judged against, and one
scoring less on the vote's path.

Integrity rules, all enforced here and in the store, never by the browser:

- the models and their positions are chosen and kept server-side (``arena_pending``); the shell
  only holds a random battle id (uuid4 hex) and sends back an outcome "A", "B", "tie" or "bothbad";
- a battle can be voted on once, only by the session that asked it, and only once both answers are
  in; anything else is a :class:`VoteError` and nothing is written;
- the battle row and the "voted" mark are written in ONE transaction (``Store.record_vote``), whose
  conditional update also settles two votes racing for the same battle.

Both answers are streamed *concurrently* (one thread per model, merged through a queue). Why not one
after the other: the two embedded models are separate llama.cpp processes, so on two cores they run
in parallel and the round takes max(A, B) instead of A + B; and both panes fill at once, so the
visitor never waits on an empty pane or learns anything from which side was answered first.

No Gradio here: the app only lays the results out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from routellm_demo import __version__
from routellm_demo.battles import STRONG, WEAK
from routellm_demo.errors import UserError
from routellm_demo.export import Exporter
from routellm_demo.hygiene import vote_flags
from routellm_demo.limits import check_prompt
from routellm_demo.llm.endpoints import Completion, EndpointError
from routellm_demo.ratings import LEADERBOARD_L2, PairTally, leaderboard, model_battles, win_rate_matrix
from routellm_demo.response import ArenaAnswers
from routellm_demo.store import ARENA_SOURCE, prompt_sha256

OUTCOMES = {"A": "model_a", "B": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}
OUTCOME_TEXT = {"A": "A is better", "B": "B is better", "tie": "Tie", "bothbad": "Both are bad"}
SW_ROUTER = "sw_ranking"
SIDES = ("a", "b")
logger = logging.getLogger(__name__)


class VoteError(UserError, ValueError):
    """A vote that cannot be counted; nothing was written. ``reason`` is one of "bad_outcome",
    "unknown", "other_session", "not_answered", "failed", "already_voted"."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class ArenaError(UserError, RuntimeError):
    """A battle could not be answered by both models; it cannot be voted on. ``public`` is what the
    visitor is shown (the message itself unless given: a model failure's detail stays in the log)."""

    status = 502  # the models failed, not the request

    def __init__(self, message: str, *, public: str | None = None):
        super().__init__(message)
        self._public = public or message

    @property
    def public(self) -> str:
        return self._public


class AdminError(UserError, PermissionError):
    """A destructive action without (or with a wrong) admin token."""

    status = 403


@dataclass
class SideStats:
    """What the visitor may see of one side before the vote: text and numbers, no model name."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None


@dataclass
class ArenaRound:
    """Both answers of one battle, finished and stored; the battle can now be voted on."""

    battle_id: str
    a: SideStats
    b: SideStats


@dataclass
class VoteResult:
    """What one vote changed. Names are revealed here, after the vote, and only here."""

    battle_id: str
    outcome: str
    winner: str  # the stored winner: model_a, model_b, tie, tie (bothbad)
    model_a: str
    model_b: str
    strong_side: str
    battle_row_id: int
    sw_before: float  # sw_ranking's P(strong wins) for this prompt when the answers were in, and after the vote
    sw_after: float
    ratings_before: dict[str, float] = field(default_factory=dict)  # arena-vote Elo of each model
    ratings_after: dict[str, float] = field(default_factory=dict)
    absorb_ms: float = 0.0
    flags: list[str] = field(default_factory=list)  # routellm_demo.hygiene's flags (empty: a clean vote)
    counted: bool = True  # False: stored, but it taught no router and moved no rating (a flagged vote)

    @property
    def strong_model(self) -> str:
        return self.model_a if self.strong_side == "a" else self.model_b

    @property
    def weak_model(self) -> str:
        return self.model_b if self.strong_side == "a" else self.model_a

    @property
    def winner_model(self) -> str | None:
        return {"model_a": self.model_a, "model_b": self.model_b}.get(self.winner)

    @property
    def winner_role(self) -> str | None:
        """"strong", "weak", or None for a tie: the direction the sw score should move."""
        if self.winner == "model_a":
            return STRONG if self.strong_side == "a" else WEAK
        if self.winner == "model_b":
            return STRONG if self.strong_side == "b" else WEAK
        return None

    def rating_change(self, model: str) -> float:
        return self.ratings_after.get(model, 1000.0) - self.ratings_before.get(model, 1000.0)


def check_admin(given: str | None, expected: str | None) -> None:
    """Raise AdminError unless an admin token is configured and ``given`` matches it."""
    if not expected:
        raise AdminError("Destructive actions are disabled on this server: set ROUTELLM_DEMO_ADMIN_TOKEN to enable them.")
    if not isinstance(given, str) or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AdminError("Wrong admin token: nothing was deleted.")


class Arena:
    """Pairs the configured strong and weak models on a prompt, and counts votes."""

    def __init__(self, config, store, embedder, routers, controller, *, rng: random.Random | None = None):
        self.config = config
        self.store = store
        self.embedder = embedder
        self.routers = routers
        self.controller = controller
        self._rng = rng or random.SystemRandom()
        self._vote_lock = threading.Lock()  # votes in this process one at a time: before/after are exact
        self._cache_lock = threading.Lock()
        self._leaderboards: dict = {}
        self._version = 0  # bumped by every vote or deletion made here
        self._listeners: list = []  # called with each VoteResult (add_vote_listener)
        self._tally = PairTally()  # arena votes as pair counts, for the ratings shown with a vote
        self.listener_error: str | None = None  # the last listener failure, for the status page
        self._exporter = Exporter()
        self._purged_at = 0.0  # monotonic time of the last purge of expired visitor keys
        self._votes_since_check = 0  # counted votes since the last anomalous-voter check was started
        self._checking = threading.Lock()  # held while a check runs: never two at once
        self.check_error: str | None = None  # the last background check's failure
        self.pool = None  # the prompts a team wants labelled (config arena.prompt_pool): see suggest()
        if getattr(config, "prompt_pool", None):
            from routellm_demo.prompt_pool import PromptPool

            self.pool = PromptPool(config.prompt_pool, store, embedder, max_chars=config.max_prompt_chars)

    @classmethod
    def from_runtime(cls, runtime, **kwargs) -> "Arena":
        return cls(runtime.config, runtime.store, runtime.embedder, runtime.routers, runtime.controller, **kwargs)

    # -- asking -----------------------------------------------------------------------------------
    def suggest(self, k: int = 1) -> list[str]:
        """Prompts of the configured pool whose votes would teach the routers most (never one voted on);
        raises a UserError without a pool or when none is left (:mod:`routellm_demo.prompt_pool`)."""
        if self.pool is None:
            raise ArenaError("This arena has no prompt pool; type your own question.")
        return self.pool.suggest(k)

    def new_battle(self, prompt: str, session_id: str, *, params: dict | None = None) -> str:
        """Create a pending battle with random positions; returns its id (uuid4 hex). ``params``: the
        generation settings :meth:`stream_answers` will be given (recorded with the vote).

        Only the id should reach the browser: which model sits on which side stays in the store.
        """
        return self._add_pending(prompt, session_id, "a" if self._rng.random() < 0.5 else "b", params=params)

    def record_round(self, prompt: str, session_id: str, *, answers: tuple[str, str], strong_side: str,
                     trusted: str | None = "replay") -> str:
        """Register a battle whose two answers already exist (``answers`` = (side a, side b)); returns its id.

        It leaves the store exactly as :meth:`new_battle` followed by a finished
        :meth:`stream_answers` would (status "answered", votable once by ``session_id``), so that
        replayed or imported rounds are counted by the unchanged :meth:`vote`, the app's own path,
        without calling the models. ``strong_side`` ("a"/"b") says where the strong model sits.
        ``trusted`` names the trusted source the round comes from (default "replay": gold labels
        replayed or imported), whose vote is never flagged; None makes it an ordinary round.
        """
        if strong_side not in SIDES:
            raise ValueError(f"strong_side must be 'a' or 'b', got {strong_side!r}")
        if len(answers) != 2 or not all(isinstance(t, str) and t.strip() for t in answers):
            raise ValueError("answers must be two non-empty strings: (side a, side b)")
        battle_id = self._add_pending(prompt, session_id, strong_side, trusted=trusted)
        if not self.store.finish_pending(battle_id, answer_a=answers[0], answer_b=answers[1],
                                         sw_score=self._sw_score(prompt)):
            raise ArenaError("the battle could not be marked answered")  # only if deleted meanwhile
        return battle_id

    def _add_pending(self, prompt: str, session_id: str, strong_side: str, *, trusted: str | None = None,
                     params: dict | None = None) -> str:
        check_prompt(prompt, self.config.max_prompt_chars)
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string")
        strong, weak = self.config.strong.name, self.config.weak.name
        model_a, model_b = (strong, weak) if strong_side == "a" else (weak, strong)
        battle_id = uuid.uuid4().hex
        self.store.add_pending(battle_id=battle_id, session_id=session_id, prompt=prompt, model_a=model_a,
                               model_b=model_b, strong_side=strong_side, trusted=trusted,
                               params=self._generation(params))
        return battle_id

    def _generation(self, params: dict | None) -> dict:
        """The generation settings of a round, per role: the endpoint's, overridden by ``params``."""
        out = {}
        for role in (STRONG, WEAK):
            e = self.config.endpoint(role)
            out[role] = {"model": e.model, "max_tokens": e.max_tokens, "temperature": e.temperature,
                         "api": e.api, **{k: v for k, v in (params or {}).items() if isinstance(v, (int, float, str))}}
        return out

    def stream_answers(self, battle_id: str, session_id: str, **params) -> ArenaAnswers:
        """Answer both sides at once: iterating the result yields ``(side, text_piece)`` with side
        "a"/"b" as pieces arrive; its ``.round()`` gives the :class:`ArenaRound`. Raises ArenaError
        (at once for a battle that cannot be answered; while iterating, battle marked failed, when
        either model fails). Closing it early stops both streams; the battle then stays unvotable.
        """
        pending = self.store.pending(battle_id)
        if pending is None or pending["session_id"] != session_id:
            raise ArenaError("no such battle in this session; ask a new question")
        if pending["status"] != "asked":
            raise ArenaError("this battle was already answered; ask a new question")
        return ArenaAnswers(battle_id, self._answer_both(battle_id, pending, params))

    def _answer_both(self, battle_id: str, pending: dict, params: dict) -> Iterator[tuple[str, str]]:
        """Yields ``(side, piece)``; returns the ArenaRound."""
        messages = [{"role": "user", "content": pending["prompt"]}]
        role_of = {side: (STRONG if pending["strong_side"] == side else WEAK) for side in SIDES}
        # Embed the prompt (into the cache) while the models answer: the vote then finds it cached
        # instead of encoding it (~15 ms) on the visitor's click.
        threading.Thread(target=self._embed_quietly, args=(pending["prompt"],), daemon=True, name="arena-embed").start()
        events: queue.Queue = queue.Queue()
        stop = threading.Event()
        done = object()

        def pump(side: str) -> None:
            try:
                for piece in self.controller.endpoint(role_of[side]).stream(messages, **params):
                    if stop.is_set():
                        break  # closing the stream frees the model for the next visitor
                    events.put((side, piece))
            except Exception as e:  # noqa: BLE001 (reported to the visitor, never swallowed)
                events.put((side, e))
            finally:
                events.put((side, done))

        threads = [threading.Thread(target=pump, args=(s,), daemon=True, name=f"arena-{s}") for s in SIDES]
        for t in threads:
            t.start()
        texts = {s: [] for s in SIDES}
        finals: dict[str, Completion] = {}
        errors: dict[str, Exception] = {}
        running = set(SIDES)
        try:
            while running:
                side, item = events.get()
                if item is done:
                    running.discard(side)
                elif isinstance(item, Completion):
                    finals[side] = item
                elif isinstance(item, Exception):
                    errors[side] = item
                else:
                    texts[side].append(item)
                    yield side, item
        finally:
            stop.set()  # a consumer that stopped early (closed tab) ends both streams

        for side in SIDES:
            if side not in finals and side not in errors:
                errors[side] = EndpointError("?", "bad_response", "the stream ended without finishing")
        if errors:
            for side, e in sorted(errors.items()):
                logger.warning("arena battle %s: model %s (%s) failed: %s", battle_id, side.upper(), role_of[side], e)
            message = "; ".join(f"Model {s.upper()} failed: {self._describe(e)}" for s, e in sorted(errors.items()))
            self.store.finish_pending(battle_id, answer_a="".join(texts["a"]) or None,
                                      answer_b="".join(texts["b"]) or None, error=message)
            raise ArenaError(message, public=self._public(errors))
        self.store.finish_pending(battle_id, answer_a=finals["a"].text, answer_b=finals["b"].text,
                                  sw_score=self._sw_score(pending["prompt"]))
        return ArenaRound(battle_id, *(self._stats(finals[s]) for s in SIDES))

    def _sw_score(self, prompt: str) -> float | None:
        """sw_ranking's score for ``prompt`` now (the prediction the voter's round is judged against),
        or None when it cannot be computed: the vote then scores the prompt itself."""
        return self._score_quietly(SW_ROUTER, prompt)

    def _score_quietly(self, router: str, prompt: str, vector=None) -> float | None:
        """``router``'s score for the prompt (embedded here unless ``vector`` is given), or None if it
        cannot score now (no checkpoint, a failed load): a missing score never costs the visitor the
        round or the vote; that router's prequential record just skips it."""
        try:
            vector = self.embedder.embed([prompt]) if vector is None else vector
            return float(self.routers.score(router, vector, [prompt])[0])
        except Exception:  # noqa: BLE001
            logger.warning("arena: no %s score for the prompt", router, exc_info=True)
            return None

    def _embed_quietly(self, prompt: str) -> None:
        try:
            self.embedder.embed([prompt])
        except Exception:  # noqa: BLE001 (only a head start: the vote embeds again and reports any failure)
            logger.debug("arena: embedding ahead of the vote failed", exc_info=True)

    def _describe(self, e: Exception) -> str:
        """An error message with the model's name removed: names stay hidden until the vote."""
        text = str(e)
        for name in (self.config.strong.name, self.config.weak.name):
            text = text.replace(name, "the model")
        return text

    @staticmethod
    def _public(errors: dict[str, Exception]) -> str:
        """One sentence for the visitor, with no model name (names stay hidden until the vote)."""
        if len(errors) == len(SIDES):
            return "Neither model could answer right now."
        side, e = next(iter(errors.items()))
        what = {"timeout": "did not answer in time", "too_long": "cannot hold a question this long"}.get(
            getattr(e, "kind", None), "could not answer right now")
        return f"Model {side.upper()} {what}."

    @staticmethod
    def _stats(c: Completion) -> SideStats:
        return SideStats(c.text, c.usage.prompt_tokens, c.usage.completion_tokens, c.latency_ms, c.ttft_ms)

    def ask(self, prompt: str, session_id: str, **params) -> ArenaRound:
        """new_battle + stream_answers, not streamed (for scripts and tests)."""
        battle_id = self.new_battle(prompt, session_id, params=params)
        return self.stream_answers(battle_id, session_id, **params).round()

    # -- voting -----------------------------------------------------------------------------------
    def vote(self, battle_id: str, outcome: str, session_id: str, *, visitor=None) -> VoteResult:
        """Store one vote with its flags and provenance; when it counts (no flag, or flagged votes are
        counted by configuration), teach the routers and refit the ratings; see module doc.
        ``visitor``: a :class:`~routellm_demo.visitors.Visitor` (None: the session stands for it)."""
        if outcome not in OUTCOMES:
            raise VoteError("bad_outcome", f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        if not isinstance(battle_id, str) or not battle_id:
            raise VoteError("unknown", "There is no battle to vote on: ask a question first.")
        with self._vote_lock:
            pending = self._votable(battle_id, session_id)
            vector = self.embedder.embed([pending["prompt"]])
            # The router's prediction when the answers were shown (scored then, so the vote pays for one
            # scoring, not two); rounds answered before that column existed are scored now.
            sw_before = pending.get("sw_score")
            if sw_before is None:
                sw_before = float(self.routers.score(SW_ROUTER, vector, [pending["prompt"]])[0])
            scores_before = {SW_ROUTER: sw_before}
            if self.config.router != SW_ROUTER:
                scores_before[self.config.router] = self._score_quietly(self.config.router, pending["prompt"], vector)
            ratings_before = self._arena_ratings()
            voter = visitor.key if visitor is not None else "session:" + hashlib.sha256(session_id.encode()).hexdigest()[:32]
            trusted = pending.get("trusted") or (visitor.trusted if visitor is not None else None)
            voted_at = datetime.now(timezone.utc)
            flags = [] if trusted else vote_flags(
                prompt=pending["prompt"], answers=(pending["answer_a"], pending["answer_b"]),
                model_names=(self.config.strong.name, self.config.weak.name), answered_at=pending.get("answered_at"),
                voted_at=voted_at, min_seconds=self.config.min_vote_seconds,
                voted_before=self.store.visitor_voted(voter, prompt_sha256(pending["prompt"])))
            counted = not flags or self.store.count_flagged
            # The routers' scores before learning the vote are kept so the prequential accuracy (was the
            # router right before it learnt this vote?) can be computed from the store alone
            # (routellm_demo.learning): sw_ranking's, and the app's router's (the one visitors are routed by).
            meta = {"arena_battle_id": battle_id, "outcome": outcome, "sw_before": sw_before,
                    "scores_before": scores_before,
                    "answer_a": pending["answer_a"], "answer_b": pending["answer_b"],
                    "provenance": self._provenance(pending, flags, trusted, voted_at)}
            row_id = self.store.record_vote(battle_id=battle_id, session_id=session_id, outcome=outcome, battle=dict(
                prompt=pending["prompt"], model_a=pending["model_a"], model_b=pending["model_b"],
                winner=OUTCOMES[outcome], source=ARENA_SOURCE, strong_side=pending["strong_side"],
                uid="arena:" + battle_id, session_id=session_id, meta=meta, flags=",".join(flags) or None),
                visitor=voter)
            if row_id is None:  # lost a race (another process voted meanwhile): say why, nothing written
                self._votable(battle_id, session_id)
                raise VoteError("already_voted", "This battle was already voted on.")
            if self.pool is not None:
                self.pool.mark_voted(pending["prompt"])
            sw_after, ratings_after, absorb_ms = sw_before, ratings_before, 0.0
            if counted:
                started = time.perf_counter()
                self.routers.absorb([self.store.battle(row_id)])
                absorb_ms = (time.perf_counter() - started) * 1000
                sw_after = float(self.routers.score(SW_ROUTER, vector, [pending["prompt"]])[0])
                ratings_after = self._arena_ratings()
            self._changed()
        result = VoteResult(battle_id, outcome, OUTCOMES[outcome], pending["model_a"], pending["model_b"],
                            pending["strong_side"], row_id, sw_before, sw_after, ratings_before, ratings_after,
                            absorb_ms, flags, counted)
        if counted:  # a vote that counts nowhere must not count towards a refit either
            self._notify(result)
            self._maybe_check_voters()
        self._purge_visitors()
        return result

    # -- the anomalous-voter check (routellm_demo.anomaly) -------------------------------------------
    def check_voters(self) -> dict[str, int]:
        """Flag "anomalous" the clean votes of every visitor who disagrees with the others on similar
        prompts far beyond chance (never a trusted source's), and make the routers and ratings forget
        them as after a delete. Returns how many visitors and votes were flagged."""
        from routellm_demo.anomaly import ANOMALOUS, anomalous_voters, score_voters

        with self._checking:
            rows = self.store.voter_votes()
            if not rows:
                return {"voters": 0, "votes": 0}
            scores = score_voters(rows, self.embedder.embed([r["prompt"] for r in rows]))
            trusted = {r["visitor"] for r in rows if r["trusted"]}
            bad = set(anomalous_voters(scores)) - trusted
            ids = [r["id"] for r in rows if r["visitor"] in bad]
            if not ids:
                return {"voters": 0, "votes": 0}
            with self._vote_lock:
                flagged = self.store.flag_votes(ids, ANOMALOUS)
                if flagged and not self.store.count_flagged:
                    self._tally = PairTally()
                    self._reload_online_routers()
                self._changed()
            logger.warning("arena: %d visitor(s) flagged anomalous; %d of their votes no longer count", len(bad), flagged)
            return {"voters": len(bad), "votes": flagged}

    def _maybe_check_voters(self) -> None:
        """Every ``arena.anomaly_check_every`` counted votes, run :meth:`check_voters` in the background."""
        every = self.config.anomaly_check_every
        if not every:
            return
        with self._cache_lock:
            self._votes_since_check += 1
            if self._votes_since_check < every or self._checking.locked():
                return
            self._votes_since_check = 0
        threading.Thread(target=self._check_quietly, daemon=True, name="anomaly-check").start()

    def _check_quietly(self) -> None:
        try:
            self.check_voters()
            self.check_error = None
        except Exception as e:  # noqa: BLE001 (a background thread has no caller: keep going, say why)
            logger.exception("arena: the anomalous-voter check failed")
            self.check_error = f"{type(e).__name__}: {e}"

    def _purge_visitors(self) -> None:
        """At most hourly: forget which visitor cast votes older than ``limits.visitor_retention_days``."""
        if time.monotonic() - self._purged_at < 3600 and self._purged_at:
            return
        self._purged_at = time.monotonic()
        from routellm_demo.visitors import purge_visitors

        try:
            purge_visitors(self.store, self.config.visitor_retention_days)
        except UserError:  # noqa: PERF203 (a locked store: the next vote's purge tries again)
            self._purged_at = 0.0
            logger.warning("arena: purging expired visitor keys failed; will retry", exc_info=True)

    def _provenance(self, pending: dict, flags: list[str], trusted: str | None, voted_at: datetime) -> dict:
        """Where a vote came from, stored with it and exported: the app's version, the models and their
        sides, the generation settings, the flags, the times (no visitor or session key)."""
        role = {side: (STRONG if pending["strong_side"] == side else WEAK) for side in SIDES}
        params = json.loads(pending["params"]) if pending.get("params") else {}
        answered = pending.get("answered_at")
        return {
            "app_version": __version__,
            "sides_shown": {side: {"model": pending[f"model_{side}"], "role": role[side],
                                   "model_id": params.get(role[side], {}).get("model")} for side in SIDES},
            "generation": params,
            "flags": flags,
            "trusted": trusted,
            "asked_at": pending.get("created_at"),
            "answered_at": answered,
            "voted_at": voted_at.isoformat(timespec="milliseconds"),
            "seconds_to_vote": round((voted_at - datetime.fromisoformat(answered)).total_seconds(), 3) if answered else None,
        }

    def _arena_ratings(self) -> dict[str, float]:
        """Arena ratings from the running tally, after reading only the arena votes stored since the
        last call (votes made by other processes included; a deletion made by another process resets
        the tally through :meth:`notify_changes`). Called under the vote lock."""
        self._tally.add(self.store.battles(source=ARENA_SOURCE, since_id=self._tally.last_id))
        return self._tally.ratings()

    def add_vote_listener(self, listener) -> None:
        """Call ``listener(vote_result)`` after every counted vote (e.g. ``Refresher.notify_vote``,
        which refits the trained routers every N votes). Called outside the vote lock, so a slow
        listener never holds up the next vote."""
        self._listeners.append(listener)

    def _notify(self, result: VoteResult) -> None:
        for listener in list(self._listeners):
            try:
                listener(result)
            except Exception as e:  # noqa: BLE001 (the vote is stored and learnt: a failing observer must not undo that for the visitor)
                logger.exception("arena: vote listener %r failed", listener)
                self.listener_error = f"{type(e).__name__}: {e}"

    def _votable(self, battle_id: str, session_id: str) -> dict:
        pending = self.store.pending(battle_id)
        if pending is None:
            raise VoteError("unknown", "Unknown battle: it may have been deleted. Ask a new question.")
        if pending["session_id"] != session_id:
            raise VoteError("other_session", "This battle was asked in another session; only its asker can vote.")
        status = pending["status"]
        if status == "voted":
            raise VoteError("already_voted", "This battle was already voted on: one vote per battle.")
        if status == "asked":
            raise VoteError("not_answered", "Wait until both answers are complete, then vote.")
        if status == "failed":
            raise VoteError("failed", "A model failed on this battle, so it cannot be voted on. Ask again.")
        return pending

    # -- ratings ----------------------------------------------------------------------------------
    def leaderboard(self, scope: str = "all", *, n_boot: int = 100) -> dict:
        """Bradley-Terry ratings of the models with 95% bootstrap CIs, plus the win-rate matrix.

        ``scope`` "all" uses every stored battle, "arena" only arena votes. Cached until the next
        vote or deletion here, or until the store's battle counts change (an import elsewhere).
        """
        if scope not in ("all", "arena"):
            raise ValueError(f"scope must be 'all' or 'arena', got {scope!r}")
        counts = self.store.count_battles()
        key = (scope, n_boot, self._version, tuple(sorted(counts.items())))
        with self._cache_lock:
            if key in self._leaderboards:
                return self._leaderboards[key]
        rows = self.store.battles(source=ARENA_SOURCE) if scope == "arena" else self.store.battles()
        battles = model_battles(rows)
        players, rate, games = win_rate_matrix(battles)
        result = {
            "scope": scope,
            "n_battles": len(rows),
            "rows": leaderboard(battles, l2=LEADERBOARD_L2, n_boot=n_boot) if rows else [],
            "players": players,
            "win_rate": rate,
            "games": games,
            # the stored votes this board leaves out, and why (routellm_demo.hygiene); empty when counted
            "excluded": {} if self.store.count_flagged else self.excluded_votes(),
        }
        with self._cache_lock:
            self._leaderboards = {key: result, **{k: v for k, v in self._leaderboards.items() if k[2:] == key[2:]}}
        return result

    def _changed(self) -> None:
        with self._cache_lock:
            self._version += 1
            self._leaderboards = {}

    # -- data -------------------------------------------------------------------------------------
    def excluded_votes(self) -> dict[str, int]:
        """Flagged arena votes by flag, with "votes" their total (a vote with two flags counts under both)."""
        counts = self.store.count_flags(ARENA_SOURCE)
        return {"votes": counts["flagged"], **{k: v for k, v in counts.items()
                                                if k not in ("votes", "clean", "flagged", "trusted")}}

    def recent_votes(self, limit: int = 20) -> list[dict]:
        """The latest arena votes, newest first, flagged ones included (with their flags)."""
        rows = self.store.battles(source=ARENA_SOURCE, include_flagged=True)
        return list(reversed(rows[-limit:])) if limit else []

    def export(self, fmt: str, directory: str | Path) -> Path:
        """Every stored battle, flagged votes included with their flags, as CSV, JSONL or Parquet in
        ``directory``, with its datasheet beside it (:class:`~routellm_demo.export.Exporter`: unique
        names, the newest few kept, a few a minute); returns the file's path."""
        return self._exporter.export(self.store.battles(include_flagged=True), fmt, directory)

    def delete_votes(self, admin_token: str | None) -> dict[str, int]:
        """Delete every arena vote and arena battle (admin only), and forget them in the routers."""
        check_admin(admin_token, self.config.admin_token())
        with self._vote_lock:
            deleted = self.store.delete_arena_votes()
            self._reload_online_routers()
            self._after_deletion()
        return deleted

    def notify_changes(self, changes) -> None:
        """A change-feed listener: battles deleted by another process make the running arena tally
        stale, so it is rebuilt from the store (inserts need nothing: the tally reads them itself)."""
        if changes.deleted:
            with self._vote_lock:
                self._after_deletion()

    def _after_deletion(self) -> None:
        """Battles were deleted, here or by another process (callers hold the vote lock): the arena tally
        and the prompt pool's voted prompts are read from the store anew (those prompts may be asked again)."""
        self._tally = PairTally()
        if self.pool is not None:
            self.pool.forget_votes()
        self._changed()

    def _reload_online_routers(self) -> None:
        """The store-fitted routers (elo, sw_ranking) refit from the store after battles were deleted."""
        self.routers.reload()
