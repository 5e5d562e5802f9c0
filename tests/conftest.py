"""Shared test set-up: offline hub, no seeding, and where the shared evaluation data lies."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Tests count rows: a fresh store stays empty (no shipped seed, no download), here and in every app or
# CLI they start as a subprocess (which inherits the variable). Seed tests turn it on explicitly;
# tests that build a config with load_config(environ={}) say seed=False themselves.
os.environ.setdefault("ROUTELLM_DEMO_SEED", "0")

REPO = Path(__file__).resolve().parents[1]

# The app tests run many sessions from one loopback address and vote at script speed, to test the app
# and the vote path: to them the per-visitor limits and hygiene's flags are noise (flags are still
# recorded, and counted). test_hygiene.py and test_attack.py test those with the defaults.
OPEN_ARENA = dict(visitor_requests_per_minute=1_000_000, visitor_votes_per_hour=1_000_000, min_vote_seconds=0.0,
                  count_flagged_votes=True, anomaly_check_every=0)


def find_shared_routellm() -> Path | None:
    """RouteLLM's public evaluation data beside the checkout (``../shared``), as in CI."""
    for candidate in (REPO.parent / "shared" / "data" / "routellm", Path("/work/shared/data/routellm")):
        if (candidate / "mmlu").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_routellm() -> Path:
    path = find_shared_routellm()
    if path is None:
        pytest.skip("RouteLLM eval data not found at ../shared/data/routellm")
    return path


def assistant_text(history) -> str:
    """The last real answer in a Gradio Chatbot value, read as the app itself reads its history."""
    from routellm_demo.ui import last_answer

    return last_answer(history)


def launch_local(demo, *, concurrency: int | None = 4) -> str:
    """Queue and launch a built app on a free 127.0.0.1 port as ``routellm_demo.ui.main`` does; its URL.

    Gradio's launch gives up when one 3-second HEAD of the new page times out ("When localhost is not
    accessible, a shareable link must be created"), which a busy two-core CI machine can cause: such a
    launch is closed and tried again on another port."""
    from routellm_demo.llm.local import free_port
    from routellm_demo.ui import launch_options

    if concurrency is not None:
        demo.queue(default_concurrency_limit=concurrency)
    for attempt in range(3):
        port = free_port()
        try:
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        **launch_options())
            return f"http://127.0.0.1:{port}/"
        except ValueError as e:
            if "localhost is not accessible" not in str(e) or attempt == 2:
                raise
            demo.close()
    raise AssertionError("unreachable")


PUBLIC_LEAKS = ("127.0.0.1", "http", "INFO", "Uvicorn", "server output", "Traceback")


def leaked_detail(text: str) -> list[str]:
    """What a visitor or an API caller must never see in a model failure's message (addresses,
    ports, URLs, server log lines); searched in the visible text (HTML tags removed)."""
    import re

    visible = re.sub(r"<[^>]+>", " ", text)
    return [w for w in PUBLIC_LEAKS if w in visible] + re.findall(r":\d+", visible)


# The fast loop (`pytest -m "not slow"`) checks the math, the store and the routers in a minute or two.
# Every test that runs the real embedded model pair (or a browser) is slow, whether its module says so
# or not: these modules start the pair in their fixtures or tests.
MODEL_MODULES = {"test_endpoints", "test_llm_local", "test_controller", "test_server", "test_model_failures"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if module in MODEL_MODULES or item.get_closest_marker("llm") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
