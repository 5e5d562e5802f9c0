"""The one error type a user sees (modelled on Simon Willison's ``llm``, whose shells catch one
exception class and print its message).

Every error whose message is meant for a person (a bad input, a bad configuration or data file, a
store that cannot be used, a limit, a refused vote) is a :class:`UserError`. The shells catch this one
type: the CLI prints ``routellm-demo: error: <message>`` and exits 2, the server answers with
``status`` in OpenAI's error shape, the app shows ``public`` in the page. Anything else is a bug or an
internal failure and keeps its traceback. Subclasses keep their older bases too (``ValueError``,
``RuntimeError``, ``OSError``...) so code that catches those still works.
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message says what to change; shown to the user as is, never as a traceback.

    ``status`` is the HTTP status a server answers with (400 unless a subclass says otherwise: the
    request is what must change). ``public`` is what a visitor or an API caller is shown: the message
    itself, unless a subclass keeps operator detail out of it."""

    status: int = 400

    @property
    def public(self) -> str:
        return str(self)
