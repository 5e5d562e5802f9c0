"""Run llama.cpp's OpenAI server as a child that ends when the process that started it ends.

``python -m routellm_demo.llm.child PARENT_PID [llama_cpp.server flags...]``

Why: a normal stop of the app stops its model servers (atexit), but a ``kill -9`` or a crash of the
app runs no code at all, and the servers would live on as orphans holding memory and ports. Linux's
PR_SET_PDEATHSIG is no remedy here: it fires when the *thread* that started the child exits, and the
app starts its servers from short-lived threads (warm-up, request workers). So the child watches
instead: once a second it checks that its parent is still ``PARENT_PID`` (an orphan is re-parented
to init or a subreaper), and exits when it is not.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time

CHECK_EVERY_S = 1.0


def watch_parent(parent_pid: int, interval: float = CHECK_EVERY_S) -> None:
    """Exit this process (no cleanup: there is nothing to save) once ``parent_pid`` is gone."""
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(0)


def main(argv: list[str]) -> None:
    if not argv or not argv[0].isdigit():
        sys.exit("usage: python -m routellm_demo.llm.child PARENT_PID [llama_cpp.server flags...]")
    parent_pid = int(argv[0])
    if os.getppid() != parent_pid:
        sys.exit(f"parent {parent_pid} is already gone")
    threading.Thread(target=watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()
    sys.argv = ["llama_cpp.server", *argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
