"""The sentences a visitor or an API caller sees when a model fails (one each, no address, port, URL
or log line, no model name), and the words the operator's log gives a server's exit. Pure: no model
runs here (the real crashes: test_model_failures.py)."""

from __future__ import annotations

import signal

from conftest import leaked_detail
from routellm_demo.controller import NO_ANSWER, AnswerError
from routellm_demo.llm.endpoints import ERROR_KINDS, PUBLIC_MESSAGES, EndpointError
from routellm_demo.llm.local import SIGILL_HINT, crash_cause, describe_exit

# What the detailed messages really hold (the server's log tail, its URL): none of it may get out.
DETAIL = ("Gemma 3 270M base (local): local model server died again after a restart: it was killed by SIGILL: "
          f"{SIGILL_HINT}; server output: INFO:     Uvicorn running on http://127.0.0.1:38379 (Press CTRL+C to quit)"
          " | INFO:     127.0.0.1:51234 - \"POST /v1/completions HTTP/1.1\" 200 OK")


def test_every_endpoint_error_kind_has_one_short_public_sentence():
    assert set(PUBLIC_MESSAGES) == set(ERROR_KINDS)
    for kind in ERROR_KINDS:
        e = EndpointError("Gemma 3 270M base (local)", kind, DETAIL, 500)
        assert e.public == PUBLIC_MESSAGES[kind] and str(e) == DETAIL  # the detail stays for the log
        assert e.public.endswith(".") and ". " not in e.public and len(e.public) <= 100, e.public
        assert leaked_detail(e.public) == [] and "Gemma" not in e.public  # no name: the arena hides it
    assert "start a new chat" in EndpointError("m", "too_long", DETAIL).public


def test_answer_error_public_says_what_the_caller_can_do():
    def failed(*kinds):
        return AnswerError("no answer: " + DETAIL, errors=[EndpointError("m", k, DETAIL) for k in kinds])

    assert NO_ANSWER == "No model could answer right now; see the server log."
    assert failed("connection", "connection").public == NO_ANSWER
    assert failed("http").public == failed("auth", "bad_response").public == NO_ANSWER
    assert failed("too_long", "too_long").public == PUBLIC_MESSAGES["too_long"]
    assert failed("connection", "timeout").public == "The model did not answer in time; try again."
    assert AnswerError("the model ended without an answer").public == NO_ANSWER
    for e in (failed("connection"), failed("too_long"), failed("timeout")):
        assert leaked_detail(e.public) == [] and DETAIL in str(e)


def test_exit_codes_in_words():
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-200) == "was killed by signal 200"
    assert crash_cause(-signal.SIGKILL, "while starting") == "was killed by SIGKILL while starting"
    assert crash_cause(-signal.SIGILL) == f"was killed by SIGILL: {SIGILL_HINT}"
    assert SIGILL_HINT == ("llama.cpp was built for CPU features this machine cannot run; "
                           "rerun setup (bash scripts/setup.sh)")
