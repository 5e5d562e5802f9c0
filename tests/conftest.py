"""Shared test set-up: offline hub, the repo root on sys.path, and where the CEO's data lies."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


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
    import app

    return app.last_answer(history)
