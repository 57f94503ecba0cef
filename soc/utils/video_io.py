"""Reading videos (a file or a folder of frames) and writing overlays as mp4, gif and PNG masks."""
import os
from pathlib import Path
from typing import List, Sequence

import av
import numpy as np
from PIL import Image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


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
                    frames.append(np.asarray(im.convert("RGB")))
            except OSError as e:
                raise OSError(f"cannot read frame {f}: {e}") from e
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


def write_mp4(frames: Sequence[np.ndarray], path: str, fps: float = 6.0) -> None:
    """H.264 mp4 of RGB frames (sizes rounded down to even numbers, as yuv420p requires)."""
    h, w = (frames[0].shape[0] // 2) * 2, (frames[0].shape[1] // 2) * 2
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            packet = stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24"))
            container.mux(packet)
        container.mux(stream.encode())


def write_gif(frames: Sequence[np.ndarray], path: str, fps: float = 6.0) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def write_masks(masks: np.ndarray, folder: str, names: Sequence[str]) -> None:
    """One 0/255 greyscale PNG per frame: ``folder/<name>.png`` for masks ``(T, H, W)`` bool."""
    os.makedirs(folder, exist_ok=True)
    for mask, name in zip(masks, names):
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(os.path.join(folder, f"{name}.png"))
