"""The YAML configs of ``projects/SOC/configs`` by name (``"ref_ytvos/soc_swin_t_joint"``, ".yaml" optional).

``projects/SOC/configs`` is the one copy of the files: ``setup.py`` links it into this package as
``soc/model_zoo/configs`` and ships it as package data, as detectron2 ships its ``configs/``. An installed
package reads its own copy, where ``_BASE_`` chains (relative to each file) resolve as in the repository; a
source checkout whose link was never made (no ``pip install`` since cloning) reads the repository's folder.
"""

import difflib
from pathlib import Path
from typing import List, Sequence

from detectron2.config import CfgNode

from ..config import setup_cfg

__all__ = ["get_config", "get_config_file", "list_configs"]

_PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"
_REPOSITORY_CONFIGS = Path(__file__).resolve().parents[2] / "projects" / "SOC" / "configs"


def _configs_root() -> Path:
    for root in (_PACKAGE_CONFIGS, _REPOSITORY_CONFIGS):
        if root.is_dir():
            return root
    raise FileNotFoundError(
        f"SOC's configs are missing: neither {_PACKAGE_CONFIGS} (installed package) nor "
        f"{_REPOSITORY_CONFIGS} (source checkout) exists; reinstall soc-detectron2"
    )


def list_configs() -> List[str]:
    """Every config name, sorted: paths under the config folder without ".yaml" (``"Base-SOC"``,
    ``"ref_ytvos/soc_swin_t_joint"``, ...)."""
    root = _configs_root()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def get_config_file(name: str) -> str:
    """
    The path of the config ``name``, e.g. ``"ref_ytvos/soc_swin_t_joint"`` or
    ``"ref_ytvos/soc_swin_t_joint.yaml"``.

    Raises:
        ValueError: no config has this name; the message lists the closest names.
    """
    key = name[: -len(".yaml")] if name.endswith(".yaml") else name
    names = list_configs()
    if key not in names:
        stem = key.rsplit("/", 1)[-1]
        same_stem = [n for n in names if n.rsplit("/", 1)[-1] == stem]
        close = list(dict.fromkeys(same_stem + difflib.get_close_matches(key, names, n=5, cutoff=0.6)))
        hint = f"close names: {', '.join(close)}" if close else f"names: {', '.join(names)}"
        raise ValueError(f"no SOC config named {name!r}; {hint} (soc.model_zoo.list_configs() lists all)")
    return str(_configs_root() / f"{key}.yaml")


def get_config(name: str, opts: Sequence[str] = ()) -> CfgNode:
    """The frozen, checked config ``name`` (see :func:`get_config_file`) with the ``KEY VALUE`` overrides
    ``opts``, as :func:`soc.config.setup_cfg` builds it."""
    return setup_cfg(get_config_file(name), opts)
