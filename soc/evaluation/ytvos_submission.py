"""Files the benchmarks' servers and tools read: the Ref-YouTube-VOS submission and DAVIS palette PNGs.

Ref-YouTube-VOS (``docs/formats_and_metrics.md`` §1.5): ``Annotations/<video_id>/<exp_id>/<frame>.png``, one
single-channel 8-bit ``L`` PNG per listed frame at the original size, 0 = background and 255 = foreground,
zipped with ``Annotations/`` as the top folder of the archive. Ref-DAVIS17 (§2.3): indexed palette PNGs
``anno_<a>/<seq>/%05d.png``.
"""

from __future__ import annotations

import os
import zipfile
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image

from soc.utils.paths import safe_join

__all__ = ["write_expression_masks", "zip_submission", "write_index_png"]


def write_expression_masks(
    root: str, video_id: str, exp_id: str, frame_names: Sequence[str], masks: np.ndarray
) -> List[str]:
    """Write one expression's masks as ``<root>/Annotations/<video_id>/<exp_id>/<frame>.png``.

    Args:
        root: submission folder (the parent of ``Annotations``).
        frame_names: frame stems, one per mask (the video's ``frames`` list, never synthesised from indices).
        masks: bool ``(T, H, W)`` at the original frame size.

    Returns:
        the written paths. Every path is built with :func:`~soc.utils.paths.safe_join`: an id or frame name
        that is not one safe path component raises ``ValueError`` before anything is written.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] != len(frame_names):
        raise ValueError(
            f"{video_id}/{exp_id}: {len(frame_names)} frame names for masks of shape {masks.shape}"
        )
    paths = [safe_join(root, "Annotations", str(video_id), str(exp_id), f"{n}.png") for n in frame_names]
    for path, mask in zip(paths, masks):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(mask.astype(bool).astype(np.uint8) * 255).save(path)
    return paths


def zip_submission(root: str, zip_path: Optional[str] = None, *, top_folder: bool = True) -> str:
    """Zip ``<root>/Annotations`` into ``zip_path`` (default ``<root>/submission.zip``) with ``Annotations/``
    as the archive's top folder (Ref-YouTube-VOS), or with the video folders at the archive's root when
    ``top_folder`` is False (MeViS), files in sorted order (a deterministic archive for the same masks).

    Members are named by their path components under ``root``, each checked with
    :func:`~soc.utils.paths.safe_join`: an unsafe name, or a file linking outside ``root``, raises
    ``ValueError`` and no archive is written.

    Returns:
        the path of the zip file.
    """
    ann_dir = os.path.join(root, "Annotations")
    if not os.path.isdir(ann_dir):
        raise FileNotFoundError(f"no submission tree to zip: {ann_dir}")
    entries = []  # archive members as lists of path components: folders too, as `zip -r` writes them
    for dirpath, dirnames, filenames in os.walk(ann_dir):  # links to folders are not followed
        dirnames.sort()
        parts = os.path.relpath(dirpath, root).split(os.sep)
        entries += [parts] + [parts + [name] for name in sorted(filenames)]
    paths = [safe_join(root, *names) for names in entries]  # all checked before the archive is opened
    zip_path = zip_path or os.path.join(root, "submission.zip")
    tmp = zip_path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, names in zip(paths, entries):
            names = names if top_folder else names[1:]
            if names:
                zf.write(path, "/".join(names))
    os.replace(tmp, zip_path)
    return zip_path


def write_index_png(path: str, index_map: np.ndarray, palette: Optional[Sequence[int]] = None) -> None:
    """Write an indexed map ``(H, W)`` (value k = object k) as a palette (``P``) PNG.

    Args:
        palette: flat RGB list of up to 768 ints; default the DAVIS colour map.
    """
    if palette is None:
        from soc.data.io import davis_palette

        palette = davis_palette()
    img = Image.fromarray(np.asarray(index_map, dtype=np.uint8))  # "L"; putpalette makes it "P"
    img.putpalette(list(palette))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    img.save(path)
