"""Install llama-cpp-python built for a portable x86-64 level, never a native build from a cache.

Why: llama.cpp compiles for the build machine's CPU by default. A host that advertises a feature it
traps (AMX on some cloud VMs), or an image built on one machine and run on another, then kills the
model server with SIGILL on its first token. requirements.txt pins the build flags (x86-64-v3:
AVX2, FMA, F16C, BMI2; no native flags, no AVX-512, no AMX), but pip's wheel cache keys a built
wheel by the sdist alone, so a machine that once built natively would get that wheel back. So we
build with ``--no-cache-dir`` into a wheel folder of our own, keyed by the exact requirement line
(version and flags), the Python tag and the architecture: a second setup reuses it, a change of
flags or version builds anew. A marker in the venv says which build is installed.

Usage (stdlib only; run by scripts/setup.sh with the venv's Python): ``python portable_llama.py``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = Path(sys.prefix) / ".routellm_demo-llama-build"


def requirement_line(requirements: Path = REPO / "requirements.txt") -> str:
    """The llama-cpp-python line of requirements.txt, flags included: the one place they are written."""
    for line in requirements.read_text().splitlines():
        if line.strip().startswith("llama-cpp-python"):
            return line.strip()
    raise SystemExit(f"setup: no llama-cpp-python line in {requirements}")


def build_key(line: str) -> str:
    tag = f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}-{platform.machine()}"
    return hashlib.sha256(f"{line}\n{tag}".encode()).hexdigest()[:16]


def wheel_dir(key: str) -> Path:
    root = os.environ.get("ROUTELLM_DEMO_WHEELS") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "routellm_demo" / "wheels"
    return Path(root) / f"llama-cpp-python-{key}"


def pip(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, env=env)


def build_wheel(line: str, dest: Path) -> Path:
    """Compile the wheel (several minutes on 2 cores) into ``dest``, atomically."""
    print("setup: building llama-cpp-python for a portable x86-64 level (x86-64-v3: AVX2/FMA/F16C); "
          "this takes several minutes once per machine...", flush=True)
    env = dict(os.environ)
    # the flags come from requirements.txt alone; a stray CMAKE_ARGS (e.g. -DGGML_NATIVE=ON) must not win
    for name in ("CMAKE_ARGS", "FORCE_CMAKE", "SOURCE_DATE_EPOCH"):
        env.pop(name, None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".build-") as tmp:
        reqs = Path(tmp) / "llama.txt"
        reqs.write_text(line + "\n")
        out = Path(tmp) / "wheels"
        pip("wheel", "--quiet", "--no-cache-dir", "--no-deps", "--no-binary", "llama-cpp-python",
            "-w", str(out), "-r", str(reqs), env=env)
        wheels = list(out.glob("llama_cpp_python-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"setup: expected one llama-cpp-python wheel, found {[w.name for w in wheels]}")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(out, dest)
    return next(dest.glob("llama_cpp_python-*.whl"))


def main() -> int:
    line = requirement_line()
    key = build_key(line)
    if MARKER.is_file() and MARKER.read_text().strip() == key:
        return 0  # this venv already holds our portable build
    folder = wheel_dir(key)
    wheels = sorted(folder.glob("llama_cpp_python-*.whl")) if folder.is_dir() else []
    wheel = wheels[0] if wheels else build_wheel(line, folder)
    # --force-reinstall: replaces whatever build the venv had (a native one from pip's cache, say)
    pip("install", "--quiet", "--force-reinstall", "--no-deps", str(wheel))
    MARKER.write_text(key + "\n")
    print(f"setup: llama-cpp-python installed from {wheel}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
