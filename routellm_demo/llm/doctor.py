"""Check that the embedded pair can run on this machine: the portable llama.cpp build, one token each.

Why: a llama.cpp library compiled for another CPU (or natively, on a host that traps a feature it
advertises, such as AMX on some VMs) loads fine and dies with SIGILL on its first token. Setup runs
this after installing, so the failure is found there, with its cause and the fix, instead of by the
first visitor. Each model runs in a subprocess: a signal kills the probe, not the check.

Run: ``python -m routellm_demo.llm.doctor`` (exit 0 when both models answer).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from routellm_demo.llm.local import crash_cause, describe_exit

# What the build may use: x86-64-v3 (AVX2, FMA, F16C, BMI2) and below. A feature beyond it in the
# library means a native or non-portable build, which may run here and die elsewhere.
NOT_PORTABLE = ("AMX", "AVX512", "AVX_VNNI", "AVX512_BF16")
FLOOR = "x86-64-v3 (AVX2, FMA, F16C)"
REBUILD = ("rebuild it: rm -rf ~/.cache/routellm_demo/wheels .venv/.routellm_demo-llama-build "
           "&& bash scripts/setup.sh")

_PROBE = """
import sys
from llama_cpp import Llama
model = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, n_batch=32, verbose=False)
out = model("Hello", max_tokens=1, temperature=0)
print(repr(out["choices"][0]["text"]))
"""


class DoctorError(RuntimeError):
    """The embedded pair cannot run here; the message says why and what to do."""


def system_info(python: str = sys.executable) -> str:
    """llama.cpp's own list of the CPU features its library was compiled with."""
    done = subprocess.run([python, "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise DoctorError(f"llama_cpp does not import: it {describe_exit(done.returncode)}; "
                          f"{(done.stderr.strip().splitlines() or [''])[-1]}")
    return done.stdout.strip()


def enabled_features(info: str) -> set[str]:
    """``"AVX2 = 1 | AMX_INT8 = 0 | ..."`` -> {"AVX2"}."""
    return {name for name, value in re.findall(r"([A-Z0-9_]+) = (\d+)", info) if value != "0"}


def check_portable(info: str) -> None:
    beyond = sorted(f for f in enabled_features(info) if f.startswith(NOT_PORTABLE))
    if beyond:
        raise DoctorError(f"llama.cpp was built with {', '.join(beyond)}, beyond the portable {FLOOR}: "
                          f"a native build that may die on other machines; {REBUILD}")


def probe(model: Path, python: str = sys.executable, timeout: float = 300) -> str:
    """One token from ``model`` in a subprocess; the token, or DoctorError saying how the probe died."""
    try:
        done = subprocess.run([python, "-c", _PROBE, str(model)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DoctorError(f"{model.name}: no token within {timeout:.0f}s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1][:300]
        raise DoctorError(f"{model.name}: the model {crash_cause(done.returncode, 'on its first token')}"
                          + ("" if done.returncode < 0 else f"; {last}")
                          + ("" if done.returncode != -signal.SIGILL else f"; or {REBUILD}"))
    return done.stdout.strip()


def main() -> int:
    from routellm_demo.config import LOCAL_MODELS, ConfigError, default_cache_dir, load_config
    from routellm_demo.llm.local import LocalModelError, model_path

    try:
        cache_dir = load_config().model_cache_dir
    except ConfigError:
        cache_dir = default_cache_dir()

    try:
        info = system_info()
        check_portable(info)
        features = " ".join(sorted(enabled_features(info) & {"AVX", "AVX2", "FMA", "F16C", "BMI2", "SSE3", "SSSE3"}))
        print(f"doctor: llama.cpp built for: {features or 'no SIMD'} (portable)", flush=True)
        for local in ("smollm2", "gemma3"):
            path = model_path(LOCAL_MODELS[local], cache_dir)
            token = probe(path)
            print(f"doctor: {local} answered one token ({token})", flush=True)
    except (DoctorError, LocalModelError) as e:
        print(f"doctor: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
