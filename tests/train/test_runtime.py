"""The CPU allocator setting: applied once, opt-out honoured (in a fresh process each)."""

import subprocess
import sys

CODE = "from aegir.runtime import tune_cpu_allocator as t; a = t(); b = t(); assert a == b; print(a)"


def run(env_extra: dict[str, str]) -> str:
    import os

    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_applied_on_glibc_linux():
    if not sys.platform.startswith("linux"):
        return
    import platform

    if platform.libc_ver()[0] != "glibc":
        return
    assert run({}) == "True"


def test_opt_out():
    assert run({"AEGIR_MALLOC_TUNING": "0"}) == "False"
