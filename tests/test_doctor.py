"""The set-up check of the embedded pair: the installed llama.cpp build is the portable one, and a
model that dies on its first token is reported with its cause and the fix."""

import os
import stat
import sys

import pytest

from routellm_demo.llm.doctor import DoctorError, check_portable, enabled_features, probe, system_info


def test_the_installed_build_is_portable():
    info = system_info()
    assert {"AVX2", "FMA", "F16C"} <= enabled_features(info)
    check_portable(info)  # nothing beyond x86-64-v3


@pytest.mark.parametrize("feature", ["AMX_INT8", "AVX512", "AVX512_VNNI", "AVX_VNNI"])
def test_a_native_build_is_refused_with_the_fix(feature):
    with pytest.raises(DoctorError, match=f"{feature}.*rebuild it"):
        check_portable(f"CPU : SSE3 = 1 | AVX2 = 1 | {feature} = 1 | AMX_BF16 = 0 |")


def test_a_probe_killed_by_sigill_says_so_and_how_to_rebuild(tmp_path):
    """A real SIGILL, raised by the probe's own interpreter: what a build for the wrong CPU does."""
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import os, signal; os.kill(os.getpid(), signal.SIGILL)'\n")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(DoctorError) as caught:
        probe(tmp_path / "model.gguf", python=str(python))
    message = str(caught.value)
    assert "killed by SIGILL" in message and "CPU features" in message and "setup.sh" in message
    assert os.linesep not in message.strip()
