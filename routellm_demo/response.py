"""What a streamed turn hands its caller: pieces as they are written, then one result.

A generator that yields text pieces and *returns* its result is the natural way to write a turn, but
a caller would have to catch ``StopIteration`` to read the result, or the producer would have to
yield mixed types that every caller sorts with ``isinstance``. :class:`Streamed` wraps the generator
instead, in the manner of simonw/llm's ``Response``: iterate it for the pieces, call :meth:`result`
to finish and get what the turn produced, :meth:`close` to stop early.

:class:`Response` is a routed chat turn (the decision known before any text), :class:`ArenaAnswers`
an arena round (pieces tagged with their side).
"""

from __future__ import annotations

from typing import Generator, Generic, Iterator, TypeVar

P = TypeVar("P")
R = TypeVar("R")


class Streamed(Generic[P, R]):
    """Pieces of type ``P`` as they arrive, then one result of type ``R``.

    Iterating continues where the last iteration stopped (a caller may take the first piece, then
    hand the rest to another loop); the pieces seen so far are kept in :attr:`pieces`. Errors the
    producer raises reach whoever is iterating, :meth:`start` or :meth:`result`.
    """

    def __init__(self, producer: Generator[P, None, R]):
        self._producer = producer
        self.pieces: list[P] = []
        self._unread: list[P] = []  # taken by start(), not yet yielded to an iteration
        self._done = False
        self._result: R | None = None

    def _next(self) -> bool:
        """Take one piece from the producer into ``_unread``; False at the end."""
        try:
            piece = next(self._producer)
        except StopIteration as stop:
            self._done = True
            self._result = stop.value
            return False
        self.pieces.append(piece)
        self._unread.append(piece)
        return True

    def start(self) -> "Streamed":
        """Run up to the first piece (or the end), so that what fails before any text is raised here;
        the next iteration still yields that piece."""
        if not self._unread and not self._done:
            self._next()
        return self

    def __iter__(self) -> Iterator[P]:
        while self._unread or (not self._done and self._next()):
            yield self._unread.pop(0)

    def result(self) -> R:
        """Read what is left and return the result; raises what the producer raised."""
        for _ in self:
            pass
        return self._result

    @property
    def done(self) -> bool:
        return self._done

    def close(self) -> None:
        """Stop early: the producer's ``finally`` blocks run (streams to the models are closed)."""
        self._producer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Response(Streamed):
    """One routed turn: ``decision`` up front, the answer's text pieces when iterated,
    :meth:`answer` for the finished, accounted and logged :class:`~routellm_demo.controller.Answer`."""

    def __init__(self, decision, producer):
        super().__init__(producer)
        self.decision = decision

    def answer(self):
        return self.result()

    def text(self) -> str:
        """The whole answer's text (finishes the turn)."""
        return self.answer().text

    @property
    def model(self) -> str:
        """The model writing the text: the decision's, or after a fallback (which happens only before
        the first piece) the other one. Known from the first piece on."""
        if self.done and self._result is not None:
            return self._result.model
        if self.pieces:
            return getattr(self.pieces[0], "model", self.decision.model)
        return self.decision.model


class ArenaAnswers(Streamed):
    """Both sides of an arena round: ``(side, piece)`` pairs when iterated, :meth:`round` for the
    finished :class:`~routellm_demo.arena.ArenaRound`."""

    def __init__(self, battle_id: str, producer):
        super().__init__(producer)
        self.battle_id = battle_id

    def round(self):
        return self.result()
