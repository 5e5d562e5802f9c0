"""The router registry: adding a router is one registration, and the package imports without a cycle."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from routellm_demo.routers import (
    ROUTER_NAMES,
    UnknownRouterError,
    check_router,
    make_router,
    parse_router_model,
    registry,
    router_help,
)
from routellm_demo.routers.base import Router
from routellm_demo.routers.checkpoint import load_checkpoint, save_checkpoint

PACKAGE = Path(__file__).resolve().parents[1] / "routellm_demo"
DOUBLE = "registry_test_double"


class RegistryTestDoubleRouter(Router):
    """A test double: a constant score, checkpointed and online, registered by these tests only."""

    name = DOUBLE

    def __init__(self, p: float = 0.25):
        self.p = p

    def get_params(self) -> dict:
        return {"p": self.p}

    def fit(self, battles) -> "RegistryTestDoubleRouter":
        self.n_battles_ = len(battles)
        return self

    def partial_fit(self, battles) -> "RegistryTestDoubleRouter":
        self.n_battles_ = getattr(self, "n_battles_", 0) + len(battles)
        return self

    def win_probability(self, embeddings, prompts=None) -> np.ndarray:
        return np.full(np.atleast_2d(embeddings).shape[0], self.p)

    def save(self, path):
        return save_checkpoint(path, self.name, self.get_params(), {"p": np.array(self.p)})

    @classmethod
    def load(cls, path) -> "RegistryTestDoubleRouter":
        meta, _ = load_checkpoint(path, cls.name)
        return cls(**meta["hyperparameters"])


DOUBLE_HELP = f"{DOUBLE}: a test double that always says 0.25"


@pytest.fixture
def double():
    spec = registry.register(registry.RouterSpec(DOUBLE, RegistryTestDoubleRouter, DOUBLE_HELP,
                                                 checkpointed=True, online=True))
    try:
        yield spec
    finally:
        registry.unregister(DOUBLE)


def test_adding_a_router_is_one_registration(double, tmp_path):
    from routellm_demo import router_set
    from routellm_demo.cli import build_parser
    from routellm_demo.evals.routers import EVAL_ROUTERS, fitter_for
    from routellm_demo.routers import checkpoint

    # names: the app's dropdown, the server and the CLI read ROUTER_NAMES; new routers come last
    assert ROUTER_NAMES[-1] == DOUBLE and DOUBLE in ROUTER_NAMES
    assert check_router(DOUBLE) == DOUBLE
    assert parse_router_model(f"router-{DOUBLE}-0.3").name == DOUBLE
    router = make_router(DOUBLE, p=0.75)
    assert isinstance(router, RegistryTestDoubleRouter) and router.p == 0.75
    # checkpointed: trained offline, loaded by kind, refitted by the refresher
    assert DOUBLE in router_set.CHECKPOINTED
    path = router.fit(router_set.empty_battles()).save(router_set.checkpoint_path(tmp_path, DOUBLE))
    assert checkpoint.load_router(path).p == 0.75
    assert router_set.load_router(DOUBLE, battles=None, checkpoint_dir=tmp_path).p == 0.75
    assert build_parser().parse_args(["train", "--router", DOUBLE]).router == DOUBLE
    assert build_parser().parse_args(["route", "hi", "--router", DOUBLE]).router == DOUBLE
    # eval scores it
    assert DOUBLE in EVAL_ROUTERS and fitter_for(DOUBLE).__name__ == f"fit_{DOUBLE}"
    # the app's help beside the router choice
    from routellm_demo.ui import chat

    assert DOUBLE in chat.ROUTER_NAMES and chat.router_help(DOUBLE) == DOUBLE_HELP


def test_a_removed_router_is_gone_everywhere(double):
    from routellm_demo import router_set

    registry.unregister(DOUBLE)
    try:
        assert DOUBLE not in ROUTER_NAMES and DOUBLE not in router_set.CHECKPOINTED
        with pytest.raises(UnknownRouterError, match="unknown router"):
            check_router(DOUBLE)
        assert router_help(DOUBLE) == ""
    finally:
        registry.register(double)  # the fixture removes it again


def test_builtin_routers_keep_their_names_order_and_flags():
    assert ROUTER_NAMES == ("random", "elo", "sw_ranking", "mf", "classifier")
    assert registry.CHECKPOINTED == ("mf", "classifier")
    assert registry.EVAL_ROUTERS == ("random", "elo", "sw_ranking", "mf", "classifier", "ensemble")
    for spec in registry.specs():
        cls = spec.cls
        assert issubclass(cls, Router) and cls.name == spec.name  # the name is also the checkpoint's kind
        assert spec.online == hasattr(cls, "partial_fit"), spec.name
        assert spec.checkpointed == (hasattr(cls, "save") and hasattr(cls, "load")), spec.name
        assert spec.help.startswith(f"{spec.name}: ")


def test_the_ensemble_is_evaluation_only():
    with pytest.raises(UnknownRouterError):
        check_router("ensemble")
    with pytest.raises(UnknownRouterError):
        make_router("ensemble")
    assert registry.get("ensemble").eval == registry.EVAL_GROUPS and not registry.get("ensemble").tunable


def test_register_refuses_a_name_taken_or_unspellable(double):
    with pytest.raises(ValueError, match="registered already"):
        registry.register(double)
    with pytest.raises(ValueError, match="lowercase"):
        registry.register(registry.RouterSpec("Bad-Name", RegistryTestDoubleRouter, "bad"))
    with pytest.raises(ValueError, match="eval must be"):
        registry.register(registry.RouterSpec("bad_eval", RegistryTestDoubleRouter, "bad", eval="sometimes"))
    assert "bad_eval" not in ROUTER_NAMES


def test_listing_the_routers_imports_no_router_module():
    code = ("import sys; from routellm_demo.routers import ROUTER_NAMES, make_router; list(ROUTER_NAMES); "
            "print(sorted(m for m in sys.modules if m.startswith('routellm_demo.routers.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "['routellm_demo.routers.registry']"


# -- no import cycle --------------------------------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_time_statements(body):
    """Statements that run when the module is imported: not function bodies, not ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_time_statements(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _import_time_statements(inner)


def import_graph() -> dict[str, set[str]]:
    """Package module -> the package modules it imports at import time."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _import_time_statements(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                edges.add(base)
                edges.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {e for e in edges if e in files and e != name}
    return graph


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "routellm_demo.routers.checkpoint" in graph["routellm_demo.routers.mf"]  # the graph sees imports
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def _import_error(module: str) -> str | None:
    """Why importing ``module`` first, in a fresh interpreter, fails (None: it does not)."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                          cwd=PACKAGE.parent)
    return None if done.returncode == 0 else done.stderr[-2000:]


def _import_alone(module: str) -> None:
    error = _import_error(module)
    assert error is None, f"importing {module} first fails:\n{error}"


@pytest.mark.parametrize("module", sorted(_module_name(p) for p in (PACKAGE / "routers").glob("*.py")))
def test_each_router_module_imports_first_in_a_fresh_interpreter(module):
    _import_alone(module)


@pytest.fixture(scope="module")
def fresh_import_errors(request) -> dict[str, str | None]:
    """Each selected module's :func:`_import_error`, as many interpreters at once as there are cores: an import
    is CPU-bound (gradio's alone takes seconds), and one at a time made this the suite's slowest unit test."""
    selected = [item.callspec.params["module"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_each_module_imports_first_in_a_fresh_interpreter"]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(selected, pool.map(_import_error, selected)))


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(_module_name(p) for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"))
def test_each_module_imports_first_in_a_fresh_interpreter(module, fresh_import_errors):  # __main__ runs the CLI
    error = fresh_import_errors[module]
    assert error is None, f"importing {module} first fails:\n{error}"


@pytest.mark.parametrize("name", [s.name for s in registry.specs()])
def test_get_params_reads_back_what_init_took(name):
    """scikit-learn's contract: the hyperparameters are ``__init__``'s keywords, and an unfitted copy
    made from them has the same ones (the refresher and the checkpoints rely on it)."""
    cls = registry.get(name).cls
    params = cls().get_params()
    assert set(params) == set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert type(cls())(**params).get_params() == params
