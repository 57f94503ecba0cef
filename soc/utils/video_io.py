"""Reading videos (a file or a folder of frames) frame by frame, and writing overlays as mp4, gif and PNG
masks."""

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Union

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


def iter_video(path: str, every: int = 1) -> Iterator[np.ndarray]:
    """Frames of a video file or of a folder of images (sorted by name), as RGB uint8 ``(H, W, 3)`` arrays,
    decoded one at a time: memory does not grow with the length of the video.

    Args:
        path: a video file any FFmpeg build decodes (mp4, avi, webm, ...) or a folder of frames.
        every: keep one frame out of ``every``.

    A missing path or an empty folder fails at once; decoding errors, frames of a size other than the
    first's and a video without frames fail while iterating, naming the frame.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    p = Path(path)
    if p.is_dir():
        return _iter_folder(frame_files(path)[::every], path)
    if not p.is_file():
        raise FileNotFoundError(f"video input {path} is neither a file nor a folder")
    return _iter_file(str(p), every)


def frame_files(folder: str) -> List[Path]:
    """The frame images of a folder, sorted by name (``FileNotFoundError`` when there are none)."""
    files = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no frames ({', '.join(FRAME_SUFFIXES)}) in folder {folder}")
    return files


def video_rate(path: str) -> Optional[Fraction]:
    """The frame rate of a video file as an exact fraction (29.97 fps is 30000/1001), or None for a folder
    of frames or a file whose container does not say."""
    if Path(path).is_dir():
        return None
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
    except (av.error.FFmpegError, IndexError, ValueError) as e:
        raise OSError(f"cannot read the frame rate of {path}: {e}") from e
    return Fraction(rate) if rate else None


def _iter_folder(files: Sequence[Path], folder: str) -> Iterator[np.ndarray]:
    first = None
    for index, f in enumerate(files):
        try:
            with Image.open(f) as im:
                if im.mode in WIDE_GREY_MODES and first is None:
                    logger.info("%s: 16-bit frames, scaled to 8 bits", folder)
                frame = image_to_rgb(im)
        except (OSError, ValueError) as e:
            raise OSError(f"cannot read frame {index} ({f}): {e}") from e
        if first is None:
            first = frame
        elif frame.shape != first.shape:
            raise ValueError(
                f"frame {f} is {frame.shape[1]}x{frame.shape[0]} but the folder's first frame "
                f"{files[0]} is {first.shape[1]}x{first.shape[0]}: all frames of a video must have one size"
            )
        yield frame


def _iter_file(path: str, every: int) -> Iterator[np.ndarray]:
    decoded = 0
    try:
        with av.open(path) as container:
            for frame in container.decode(video=0):
                if decoded % every == 0:
                    yield frame.to_ndarray(format="rgb24")
                decoded += 1
    except av.error.EOFError:  # some demuxers report the end of a stream (or an empty one) this way
        pass
    except (av.error.FFmpegError, ValueError) as e:
        raise OSError(f"cannot decode video {path} at frame {decoded} (of the file): {e}") from e
    if decoded == 0:
        raise OSError(f"video {path} has no frames")


def _rate(fps: Union[float, Fraction]) -> Fraction:
    """A frame rate as the exact fraction the mp4 stores (floats to the nearest n/1001)."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)


class Mp4Writer:
    """An H.264 mp4 written one RGB frame at a time (sizes rounded down to even numbers, as yuv420p requires);
    the first frame sets the size. Use as a context manager: leaving it flushes and closes the file, also
    after an error, so the frames written so far stay playable.

    Raises ``OSError`` naming ``path`` when the file cannot be written (full disk, missing folder, ...).
    """

    def __init__(self, path: str, fps: Union[float, Fraction] = 6.0):
        rate = _rate(fps)
        self.path = path
        self.frames = 0
        try:
            self._container = av.open(path, mode="w")
        except (OSError, av.error.FFmpegError) as e:
            raise OSError(f"cannot write {path}: {e}") from e
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.pix_fmt = "yuv420p"

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 ``(H, W, 3)`` frame."""
        if self.frames == 0:
            self._stream.height, self._stream.width = (frame.shape[0] // 2) * 2, (frame.shape[1] // 2) * 2
        h, w = self._stream.height, self._stream.width
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
        try:
            self._container.mux(self._stream.encode(image))
        except (OSError, av.error.FFmpegError) as e:
            raise OSError(f"cannot write {self.path}: {e}") from e
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file (once)."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if self.frames:
                container.mux(self._stream.encode())
        except (OSError, av.error.FFmpegError) as e:
            raise OSError(f"cannot write {self.path}: {e}") from e
        finally:
            container.close()


def write_mp4(frames: Iterable[np.ndarray], path: str, fps: Union[float, Fraction] = 6.0) -> None:
    """H.264 mp4 of RGB frames (see :class:`Mp4Writer`)."""
    with Mp4Writer(path, fps) as writer:
        for frame in frames:
            writer.write(frame)


def write_gif(frames: Sequence[np.ndarray], path: str, fps: Union[float, Fraction] = 6.0) -> None:
    """Looping GIF of RGB frames; ``OSError`` naming ``path`` when it cannot be written."""
    fps = _rate(fps)
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
