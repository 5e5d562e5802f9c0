"""The Gradio app: chat through the router and see why each answer went where it went; vote in the
arena and watch the router learn; the leaderboard; the data.

A thin shell over the library: routing, calling, accounting and logging happen in
``routellm_demo.controller``; pairing, voting, ratings and export in ``routellm_demo.arena``; limits
in ``routellm_demo.limits``. This package lays the page out (:mod:`~routellm_demo.ui.page`, one module
per tab) and formats what comes back (:mod:`~routellm_demo.ui.format`, :mod:`~routellm_demo.ui.plots`).
Everything shown that a visitor or a model wrote is HTML-escaped; the Chatbots keep ``sanitize_html`` on.

Run: ``python app.py`` (no configuration: the embedded local model pair, no key, no network), which
calls :func:`main`.
"""

from __future__ import annotations

import logging
import os

# Before Gradio is imported: no analytics calls home, and the hub is read from the local cache.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from routellm_demo.errors import UserError  # noqa: E402
from routellm_demo.runtime import build_runtime  # noqa: E402
from routellm_demo.seed import start_update as start_seed_update  # noqa: E402
from routellm_demo.ui.chat import last_answer  # noqa: E402
from routellm_demo.ui.layout import launch_options  # noqa: E402
from routellm_demo.ui.page import build_demo  # noqa: E402

__all__ = ["build_demo", "last_answer", "launch_options", "main"]


def main() -> None:
    import signal
    import sys

    # Model failures are logged here in detail (the page shows one sentence): to stderr, unless the
    # host configured logging itself.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("routellm_demo.seed").setLevel(logging.INFO)  # what the first start loaded and fetched
    try:
        runtime = build_runtime()
    except UserError as e:  # one line that says what to fix, no traceback
        print(f"routellm_demo: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    runtime.follow_store()  # other processes' battles and deletes, within a few seconds
    demo = build_demo(runtime)
    demo.queue(default_concurrency_limit=4)
    # SIGTERM (kill, systemd, docker stop) as a normal exit, so atexit stops the embedded model
    # servers; Python's default action would end this process alone and leave them running.
    # A second SIGTERM (a supervisor repeating itself) must not interrupt that clean-up.
    def exit_on_sigterm(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    # Host and port: Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (127.0.0.1:7860 by default;
    # a Hugging Face Space sets 0.0.0.0 itself). The page is served before the background work starts:
    # Gradio's launch gives up when its one 3-second check of the new page times out, which loading
    # the models beside it on a small machine can cause.
    demo.launch(prevent_thread_lock=True, **launch_options())
    runtime.warm_up()
    start_seed_update(runtime)  # a seeded store: RouteLLM's full public set, in the background when online
    demo.block_thread()
