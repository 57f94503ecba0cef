"""soc.utils.allocator: the re-execution under tcmalloc, its opt-out and its bad-value error."""

import os
import subprocess
import sys

import pytest

from soc.utils.allocator import find_tcmalloc

# what a script's __main__ block does, then what the process ended up with
SCRIPT = """
import os, sys
from soc.utils.allocator import reexec_with_tcmalloc, tcmalloc_loaded
print("start", flush=True)
reexec_with_tcmalloc()
print(tcmalloc_loaded(), os.environ.get("LD_PRELOAD", ""), sys.argv[1:])
"""


def _run(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "_SOC_ALLOCATOR_REEXEC")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(find_tcmalloc() is None, reason="libtcmalloc is not installed on this machine")
def test_reexec_preloads_tcmalloc_once_and_keeps_the_arguments():
    done = _run({}, "--flag", "a b")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # the script started twice (before and after the exec), and the second process has tcmalloc mapped
    assert lines.count("start") == 2
    assert lines[-1] == f"True {find_tcmalloc()} ['--flag', 'a b']"


def test_system_choice_keeps_the_process():
    done = _run({"SOC_ALLOCATOR": "system"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["start", "False  []"]


def test_bad_choice_names_the_variable():
    done = _run({"SOC_ALLOCATOR": "jemalloc"})
    assert done.returncode != 0
    assert "SOC_ALLOCATOR='jemalloc'" in done.stderr and "['tcmalloc', 'system']" in done.stderr
