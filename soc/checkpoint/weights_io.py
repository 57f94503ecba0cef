"""Reading weight files without running code they ask for, and writing checkpoints atomically.

A pickle can name any importable callable and have it called while it is read (``MODEL.WEIGHTS evil.pkl``
would run ``os.system``). :func:`load_weights_file` therefore reads every file through an unpickler that
admits only what tensors need: ``torch.load(..., weights_only=True)``, or, for detectron2 / Caffe2 ``.pkl``
model-zoo files (numpy arrays in dicts), a ``pickle.Unpickler`` whose ``find_class`` knows only numpy's array
and scalar constructors and a few builtin containers. Nothing is imported while a file is read.

:func:`atomic_write` writes a file through ``.<name>.tmp-<pid>`` beside it; :func:`remove_stale_temporaries`
removes such files left by a process that died mid-write (SIGKILL, power loss).
"""

import codecs
import collections
import logging
import os
import pickle
import re
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

__all__ = ["WeightsFileError", "atomic_write", "load_weights_file", "remove_stale_temporaries"]

logger = logging.getLogger(__name__)


class WeightsFileError(RuntimeError, ValueError):
    """A file given as weights that cannot be used: unreadable, not a checkpoint, or asking for code to run.

    A ``RuntimeError`` (the file cannot be read) and a ``ValueError`` (bad input, which SOC's command lines
    report without a traceback); the message names the file.
    """


# numpy's own reconstructors, taken from what numpy emits when it pickles (their module moved in numpy 2).
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # ndarray, protocols 0-4
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # contiguous ndarray, protocol 5
_SCALAR = np.float32(0).__reduce__()[0]  # numpy scalars

# (module, name) → object: everything a pickle of numpy arrays in builtin containers asks for. Python 2
# pickles (and Python 3 ones of protocol < 3) spell ``builtins`` as ``__builtin__``; ``_codecs.encode``
# rebuilds their bytes.
_PICKLE_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _SCALAR for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _FROMBUFFER for core in ("core", "_core")},
    **{
        (module, cls.__name__): cls
        for module in ("builtins", "__builtin__")
        for cls in (set, frozenset, bytearray, complex)
    },
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,
}


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _ArraysUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_PICKLE_GLOBALS` and imports nothing."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None


def _describe(e: Exception) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _load_arrays_pickle(path: str) -> Any:
    with open(path, "rb") as f:
        try:
            return _ArraysUnpickler(f, encoding="latin1").load()
        except OSError:
            raise
        except _RefusedGlobal as e:
            raise WeightsFileError(
                f"refusing to load {path}: it asks for {e}, which a weights file never needs"
            ) from None
        except Exception as e:  # a file that is not a pickle fails in many ways (KeyError, EOFError, ...)
            raise WeightsFileError(
                f"{path} is not a checkpoint: pickle cannot read it ({_describe(e)})"
            ) from e


def _load_torch_file(path: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as e:  # as above; weights-only refusals are UnpicklingErrors with a long advice text
        message = str(e)
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", message)
        if refused:
            raise WeightsFileError(
                f"refusing to load {path}: it asks for {refused.group(1)}, which "
                "torch.load(weights_only=True) does not admit"
            ) from None
        reason = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", message)
        detail = reason.group(1) if reason else _describe(e)
        raise WeightsFileError(
            f"{path} is not a checkpoint: torch.load(weights_only=True) cannot read it ({detail})"
        ) from e


def load_weights_file(path: str) -> Any:
    """
    The object stored in the local file ``path``, read without calling anything the file names beyond
    tensor and array constructors: ``.pkl`` files (detectron2 / Caffe2 model zoo: numpy arrays in dicts)
    with a restricted unpickler, every other file with ``torch.load(path, weights_only=True)`` (on the CPU).

    Raises:
        WeightsFileError: the file asks for another global (the message names it) or is not a pickle /
            torch file at all.
        OSError: the file cannot be opened.
    """
    return _load_arrays_pickle(path) if path.endswith(".pkl") else _load_torch_file(path)


_TEMPORARY = re.compile(r"^\..+\.tmp-(?P<pid>\d+)$")


def _temporary_path(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


def _os_error_behind(e: BaseException) -> Optional[OSError]:
    """``e`` if it is an ``OSError``, else the first one in its chain: a failed write inside ``torch.save``
    surfaces as a ``RuntimeError`` of its zip writer ("unexpected pos ...") raised while handling it."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """
    Write ``path`` by ``write(f)`` into ``.<name>.tmp-<pid>`` in the same folder, then rename it into place: a
    crash or a full disk leaves either the previous file or the complete new one. The file gets the mode of
    any new file (``0o666 & ~umask``). The temporary file is removed whatever goes wrong.

    Raises:
        OSError: writing failed (e.g. "No space left on device"), also when ``write`` reports it as another
            exception; the message names ``path``. Other exceptions (e.g. ``KeyboardInterrupt``) propagate.
    """
    tmp = _temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass  # never created, or the folder is gone: nothing to clean
        os_error = _os_error_behind(e) if isinstance(e, Exception) else None
        if os_error is None:
            raise
        raise OSError(os_error.errno, f"cannot write {path}: {os_error.strerror or os_error}") from e


def _process_runs(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":
        return True  # without POSIX signals, a process cannot be probed: keep its files
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temporaries(folder: str) -> List[str]:
    """
    Remove the temporary files of :func:`atomic_write` in ``folder`` whose writing process no longer runs
    (it was killed mid-write); files of running processes on this machine are kept.

    Returns:
        the removed paths.
    """
    removed = []
    for name in sorted(os.listdir(folder)):
        m = _TEMPORARY.match(name)
        if m and not _process_runs(int(m.group("pid"))):
            path = os.path.join(folder, name)
            try:
                os.remove(path)
            except FileNotFoundError:
                continue  # removed meanwhile by another process cleaning the same folder
            logger.warning(f"Removed {path}, left by process {m.group('pid')} that died while writing it")
            removed.append(path)
    return removed
