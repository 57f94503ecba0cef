"""Reading videos (a file or a folder of frames) and writing overlays as mp4, gif and PNG masks."""

import logging
import os
from pathlib import Path
from typing import List, Sequence

import av
import numpy as np
from PIL import Image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# PIL modes of single-channel frames with more than 8 bits (16-bit PNGs open as "I;16*" or "I")
WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

logger = logging.getLogger(__name__)


def image_to_rgb(im: Image.Image) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` of a PIL image; 16-bit grey levels are scaled to 8 bits (``round(v / 257)``),
    not clipped at 255 as PIL's ``convert("RGB")`` does."""
    if im.mode in WIDE_GREY_MODES:
        grey = np.asarray(im).astype(np.float64)
        if grey.min() < 0 or grey.max() > 65535:
            raise ValueError(f"grey levels {grey.min():.0f}..{grey.max():.0f} are outside the 16-bit range")
        grey = np.round(grey / 257.0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def read_video(path: str, every: int = 1) -> List[np.ndarray]:
    """Frames of a video file or of a folder of images (sorted by name), as RGB uint8 ``(H, W, 3)`` arrays.

    Args:
        path: a video file any FFmpeg build decodes (mp4, avi, webm, ...) or a folder of frames.
        every: keep one frame out of ``every``.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no frames ({', '.join(FRAME_SUFFIXES)}) in folder {path}")
        frames = []
        for f in files[::every]:
            try:
                with Image.open(f) as im:
                    if im.mode in WIDE_GREY_MODES and not frames:
                        logger.info("%s: 16-bit frames, scaled to 8 bits", path)
                    frames.append(image_to_rgb(im))
            except (OSError, ValueError) as e:
                raise OSError(f"cannot read frame {f}: {e}") from e
            if frames[-1].shape != frames[0].shape:
                raise ValueError(
                    f"frame {f} is {frames[-1].shape[1]}x{frames[-1].shape[0]} but the folder's first frame "
                    f"{files[0]} is {frames[0].shape[1]}x{frames[0].shape[0]}: all frames of a video must "
                    "have one size"
                )
        return frames
    if not p.is_file():
        raise FileNotFoundError(f"video input {path} is neither a file nor a folder")
    try:
        with av.open(str(p)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, ValueError) as e:
        raise OSError(f"cannot decode video {path}: {e}") from e
    if not frames:
        raise OSError(f"video {path} has no frames")
    return frames[::every]


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")


def write_mp4(frames: Sequence[np.ndarray], path: str, fps: float = 6.0) -> None:
    """H.264 mp4 of RGB frames (sizes rounded down to even numbers, as yuv420p requires).

    Raises ``OSError`` naming ``path`` when the file cannot be written (full disk, missing folder, ...).
    """
    _check_fps(fps)
    h, w = (frames[0].shape[0] // 2) * 2, (frames[0].shape[1] // 2) * 2
    try:
        with av.open(path, mode="w") as container:
            stream = container.add_stream("libx264", rate=int(round(fps)))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            for frame in frames:
                image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
                container.mux(stream.encode(image))
            container.mux(stream.encode())
    except (OSError, av.error.FFmpegError) as e:
        raise OSError(f"cannot write {path}: {e}") from e


def write_gif(frames: Sequence[np.ndarray], path: str, fps: float = 6.0) -> None:
    """Looping GIF of RGB frames; ``OSError`` naming ``path`` when it cannot be written."""
    _check_fps(fps)
    images = [Image.fromarray(f) for f in frames]
    try:
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    except OSError as e:
        raise OSError(f"cannot write {path}: {e}") from e


def write_masks(masks: np.ndarray, folder: str, names: Sequence[str]) -> int:
    """One 0/255 greyscale PNG per frame: ``folder/<name>.png`` for masks ``(T, H, W)`` bool.

    Returns the number of PNGs on disk afterwards; ``OSError`` naming the file when one cannot be written.
    """
    if len(masks) != len(names):
        raise ValueError(f"{len(masks)} masks but {len(names)} frame names")
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"{name}.png") for name in names]
    for mask, path in zip(masks, paths):
        try:
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)
        except OSError as e:
            raise OSError(f"cannot write {path}: {e}") from e
    return sum(os.path.isfile(p) for p in paths)
