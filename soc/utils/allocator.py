"""tcmalloc for CPU runs: the entry points re-execute themselves with it preloaded.

A Swin-T clip allocates and frees activations of hundreds of MB (the encoder's FFN hidden tensor alone is
(tokens, 2048)). glibc serves every block above 32 MB with a fresh ``mmap`` and unmaps it when freed, so each
such tensor is paid again in page faults the first time it is written: about a fifth of the inference time
on a 2-core CPU. tcmalloc keeps freed memory for reuse (``benchmarks/bench_inference.py``: Swin-T,
8 frames, fp32 4.9 s → 4.0 s, bf16 2.3 s → 1.75 s). The allocator of a process is chosen when it starts,
so :func:`reexec_with_tcmalloc` (called first by ``train_net.py``, the ``tools/`` scripts that run the model
and the speed benchmarks) re-executes the same command line once with the library in ``LD_PRELOAD``.

``SOC_ALLOCATOR=system`` keeps the system allocator; without ``libtcmalloc`` (Debian/Ubuntu:
``libtcmalloc-minimal4``, installed by ``scripts/setup.sh`` when it runs as root) nothing changes. For your
own Python process: ``LD_PRELOAD=$(python -m soc.utils.allocator) python my_script.py``.
"""

import ctypes.util
import os
import sys
from typing import Optional

__all__ = ["find_tcmalloc", "reexec_with_tcmalloc", "tcmalloc_loaded"]

ENV_CHOICE = "SOC_ALLOCATOR"
CHOICES = ("tcmalloc", "system")
_ENV_DONE = "_SOC_ALLOCATOR_REEXEC"  # set in the re-executed process: never re-execute twice
_LIBRARIES = ("tcmalloc_minimal", "tcmalloc")


def find_tcmalloc() -> Optional[str]:
    """The tcmalloc shared library's name as the dynamic loader finds it (e.g. ``libtcmalloc_minimal.so.4``),
    or None."""
    for name in _LIBRARIES:
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def tcmalloc_loaded() -> bool:
    """Whether tcmalloc is mapped into this process (Linux; False where ``/proc`` is absent)."""
    try:
        with open("/proc/self/maps") as f:
            return "tcmalloc" in f.read()
    except OSError:
        return False


def reexec_with_tcmalloc() -> None:
    """
    Replace this process by the same command line with tcmalloc preloaded, unless ``SOC_ALLOCATOR=system``,
    tcmalloc is already loaded, it cannot be found, or this process is already the re-executed one. Call it
    first thing in a script's ``__main__`` block (never from library code: it does not return when it
    re-executes).

    Raises:
        ValueError: ``SOC_ALLOCATOR`` is set to something other than ``tcmalloc`` or ``system``.
    """
    choice = os.environ.get(ENV_CHOICE, "tcmalloc")
    if choice not in CHOICES:
        raise ValueError(f"environment variable {ENV_CHOICE}={choice!r}: expected one of {list(CHOICES)}")
    if choice == "system" or os.environ.get(_ENV_DONE) or tcmalloc_loaded():
        return
    library = find_tcmalloc()
    if library is None:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    env[_ENV_DONE] = "1"
    # tcmalloc reports every allocation above 1 GB on stderr by default; a long clip makes such tensors
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


if __name__ == "__main__":
    path = find_tcmalloc()
    if path is None:
        sys.exit("libtcmalloc not found (Debian/Ubuntu: apt-get install libtcmalloc-minimal4)")
    print(path)
