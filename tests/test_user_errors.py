"""One error type a user sees (issue 15): every error meant for a person is a ``UserError``; the CLI
prints it as one line (exit 2), the server answers with its ``status`` in OpenAI's error shape."""

import ast
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from routellm_demo import importers, server
from routellm_demo.arena import AdminError, ArenaError, VoteError
from routellm_demo.export import ExportError, ExportLimitError
from routellm_demo.cli import CLIError, main
from routellm_demo.config import ConfigError
from routellm_demo.controller import AnswerError, BadRequestError
from routellm_demo.errors import UserError
from routellm_demo.evals.benchmarks import EvalError
from routellm_demo.evals.protocol import LeakageError
from routellm_demo.importers import DataFormatError, DownloadError
from routellm_demo.limits import LimitError
from routellm_demo.prompt_pool import PoolError
from routellm_demo.llm.endpoints import EndpointError
from routellm_demo.replay import ReplayError
from routellm_demo.budget import BudgetError
from routellm_demo.routers import UnknownRouterError
from routellm_demo.seed import SeedError
from routellm_demo.store import Store, StoreError
from routellm_demo.router_set import NoCheckpointError, TrainingError
from routellm_demo.whatif import WhatIfError

PACKAGE = Path(server.__file__).parent

# every error class a user can meet, and the HTTP status a server answers it with
USER_ERRORS = {
    AdminError: 403, AnswerError: 502, ArenaError: 502, BadRequestError: 400, BudgetError: 400, CLIError: 400,
    ConfigError: 500,
    DataFormatError: 400, DownloadError: 502, EvalError: 400, ExportError: 400, ExportLimitError: 429,
    LeakageError: 400, LimitError: 400, NoCheckpointError: 503, PoolError: 400, ReplayError: 400, SeedError: 400, StoreError: 503,
    TrainingError: 400, UnknownRouterError: 400, VoteError: 400, WhatIfError: 400, server.APIError: 400,
}
# internal: wrapped into a UserError before a user sees them (EndpointError, LocalModelError -> AnswerError)
# or reported by the doctor command itself (DoctorError)
INTERNAL = {"EndpointError", "LocalModelError", "DoctorError"}


def make(cls):
    if cls is LimitError:
        return LimitError("prompt_too_long", "too long")
    if cls is VoteError:
        return VoteError("unknown", "no such battle")
    if cls is server.APIError:
        return server.APIError(400, "bad body")
    return cls("what to change")


def test_every_error_class_of_the_package_is_a_user_error_or_named_internal():
    defined = {node.name for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef) and node.name.endswith("Error")}
    assert defined == {c.__name__ for c in USER_ERRORS} | INTERNAL | {"UserError"}
    for cls, status in USER_ERRORS.items():
        assert issubclass(cls, UserError), cls
        assert make(cls).status == status, cls
    assert not issubclass(EndpointError, UserError)


def test_old_bases_still_catch():
    assert issubclass(ConfigError, ValueError) and issubclass(StoreError, RuntimeError)
    assert issubclass(DownloadError, OSError) and issubclass(AdminError, PermissionError)
    assert issubclass(TrainingError, ValueError) and issubclass(ExportLimitError, ValueError)


def test_status_and_public_that_vary():
    assert LimitError("rate_limited", "slow down", retry_after=3).status == 429
    assert ArenaError("model x died: detail", public="A model failed.").public == "A model failed."
    assert StoreError("the store is locked").public == "the store is locked"
    assert AnswerError("detail for the log").status == 502


def test_a_failed_download_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    def unreachable(*a, **k):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(importers.urllib.request, "urlopen", unreachable)
    assert main(["download", "routellm", str(tmp_path / "evals")]) == 2
    err = capsys.readouterr().err.strip()  # a progress bar first, then one line and no traceback
    assert err.splitlines()[-1].startswith("routellm-demo: error: cannot download") and "Traceback" not in err


def test_train_with_no_battles_is_one_line_not_a_traceback(tmp_path, capsys):
    db = tmp_path / "empty.db"
    Store(db).close()
    assert main(["--db", str(db), "train", "--router", "mf", "--sources", "nothing-here",
                 "--out", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("routellm-demo: error: the store holds no battles to train on; "
                   "run `python -m routellm_demo import ...` first")


def fake_runtime(error):
    spec = SimpleNamespace(name="strong-model", model="strong-id")

    def respond(*a, **k):  # a fake controller (named so): whatever the turn raises, at the call
        raise error

    config = SimpleNamespace(endpoint=lambda role: spec, strong=spec, weak=spec, router="random", threshold=0.5)
    return SimpleNamespace(config=config, controller=SimpleNamespace(respond=respond))


@pytest.mark.parametrize("cls", list(USER_ERRORS), ids=lambda c: c.__name__)
def test_the_server_answers_each_user_error_with_its_status(cls):
    error = make(cls)
    client = TestClient(server.create_app(fake_runtime(error)))
    r = client.post("/v1/chat/completions", json={"model": "router-random-0.5",
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == error.status
    body = r.json()["error"]
    assert body["message"] == error.public and set(body) == {"message", "type", "param", "code"}


def test_the_server_keeps_openais_codes():
    cases = [(StoreError("locked"), 503, "server_error", None, "store_unavailable"),
             (BadRequestError("empty"), 400, "invalid_request_error", "messages", None),
             (UnknownRouterError("no such router"), 400, "invalid_request_error", "model", None),
             (AnswerError("detail"), 502, "upstream_error", None, "upstream_failed")]
    for error, status, type_, param, code in cases:
        r = TestClient(server.create_app(fake_runtime(error))).post(
            "/v1/chat/completions", json={"model": "router-random-0.5", "messages": [{"role": "user", "content": "x"}]})
        assert (r.status_code, r.json()["error"]["type"], r.json()["error"]["param"], r.json()["error"]["code"]) == (
            status, type_, param, code), error
    assert r.json()["error"]["message"] == AnswerError("detail").public != "detail"  # operator detail stays in the log
