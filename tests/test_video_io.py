"""soc.utils.video_io: lazy reading of files and frame folders (16-bit, mixed sizes, corrupt frames), writers
that stream and report failures."""

import os

import av
import numpy as np
import pytest
from PIL import Image

from soc.utils.video_io import Mp4Writer, iter_video, write_gif, write_masks, write_mp4


def test_16_bit_frames_are_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (4, 1))  # (4, 256) full-range ramp
    for k in range(2):
        Image.fromarray(ramp).save(tmp_path / f"{k:05d}.png")
    assert Image.open(tmp_path / "00000.png").mode.startswith("I")
    frames = list(iter_video(str(tmp_path)))
    assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].shape == (4, 256, 3)
    grey = frames[0][..., 0].astype(int)
    np.testing.assert_array_equal(grey, np.round(ramp / 257.0))
    assert (grey == 255).mean() < 0.01  # PIL's convert("RGB") would make 99 % of the ramp white
    assert (np.diff(grey[0]) >= 0).all() and grey.min() == 0 and grey.max() == 255


def test_8_bit_frames_are_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(next(iter_video(str(tmp_path))), rgb)


def test_frames_of_different_sizes_name_the_file(tmp_path):
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "00000.png")
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(tmp_path / "00001.png")
    with pytest.raises(ValueError, match=r"00001\.png is 9x6 but .*00000\.png is 8x6"):
        list(iter_video(str(tmp_path)))


def test_write_masks_counts_the_files_on_disk(tmp_path):
    masks = np.zeros((3, 4, 5), bool)
    masks[1, 1:3, 2:4] = True
    assert write_masks(masks, str(tmp_path / "m"), ["a", "b", "c"]) == 3
    back = np.asarray(Image.open(tmp_path / "m" / "b.png"))
    np.testing.assert_array_equal(back, masks[1].astype(np.uint8) * 255)
    with pytest.raises(ValueError, match="3 masks but 2 frame names"):
        write_masks(masks, str(tmp_path / "m"), ["a", "b"])


def test_failed_writes_name_the_path(tmp_path):
    frames = [np.zeros((8, 8, 3), np.uint8)] * 2
    missing = tmp_path / "no" / "such" / "folder"
    for writer, name in ((write_mp4, "o.mp4"), (write_gif, "o.gif")):
        with pytest.raises(OSError, match=f"cannot write {missing / name}"):
            writer(frames, str(missing / name))
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "a.png").mkdir()  # a folder where the PNG should go
    with pytest.raises(OSError, match=r"cannot write .*blocked/a\.png"):
        write_masks(np.zeros((1, 4, 4), bool), str(tmp_path / "blocked"), ["a"])
    for writer in (write_mp4, write_gif):
        with pytest.raises(ValueError, match="fps must be > 0"):
            writer(frames, str(tmp_path / "x"), fps=0)
    assert not os.path.exists(tmp_path / "x")


def _frames(n, h=48, w=64):
    """Frames whose content encodes their index (a bright band of width 5 + t, grey level 10 t)."""
    out = []
    for t in range(n):
        frame = np.full((h, w, 3), 10 * t, np.uint8)
        frame[:, : 5 + t] = 255
        out.append(frame)
    return out


def test_folders_are_read_one_frame_at_a_time(tmp_path):
    """A corrupt image stops the stream at its index, after the frames before it; every keeps 1 of n."""
    for t, frame in enumerate(_frames(6)):
        Image.fromarray(frame).save(tmp_path / f"{t:05d}.png")
    (tmp_path / "00004.png").write_bytes(b"not a png")
    frames = iter_video(str(tmp_path))
    got = [next(frames) for _ in range(4)]
    for t in range(4):
        np.testing.assert_array_equal(got[t], _frames(6)[t])
    with pytest.raises(OSError, match=r"cannot read frame 4 \(.*00004\.png\)"):
        next(frames)
    every = iter_video(str(tmp_path), every=2)
    np.testing.assert_array_equal(next(every), _frames(6)[0])
    np.testing.assert_array_equal(next(every), _frames(6)[2])
    with pytest.raises(OSError, match="cannot read frame 2"):  # the third kept frame, 00004.png
        next(every)


def test_mp4_writer_streams_and_reads_back(tmp_path):
    """Odd sizes are cropped to even ones; the written file decodes to as many frames, in order."""
    path = str(tmp_path / "v.mp4")
    with Mp4Writer(path, fps=5) as writer:
        for frame in _frames(7, h=49, w=65):
            writer.write(frame)
    back = list(iter_video(path))
    assert len(back) == 7 and back[0].shape == (48, 64, 3) and writer.frames == 7
    # lossy, but the bright band's width (5 + t) survives
    widths = [int((f[24, :, 0] > 200).sum()) for f in back]
    assert all(abs(w - (5 + t)) <= 1 for t, w in enumerate(widths))
    assert len(list(iter_video(path, every=3))) == 3  # frames 0, 3, 6


def test_a_video_corrupt_mid_stream_names_the_frame(tmp_path):
    """An MJPEG AVI cut short: the frames before the cut come out, then an error naming the frame."""
    path = tmp_path / "v.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=6)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for frame in _frames(20):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    good = []
    with pytest.raises(OSError, match=r"cannot decode video .*v\.avi at frame (\d+)") as info:
        for frame in iter_video(str(path)):
            good.append(frame)
    assert 0 < len(good) < 20
    assert f"at frame {len(good)} " in str(info.value)


def test_empty_inputs_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no frames"):
        iter_video(str(tmp_path))  # an empty folder fails before iterating
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        iter_video(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(OSError, match=r"cannot decode video .*empty\.mp4"):
        list(iter_video(str(tmp_path / "empty.mp4")))
    path = str(tmp_path / "no_frames.mkv")  # a video stream without a frame
    with av.open(path, "w") as container:
        stream = container.add_stream("ffv1", rate=6)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(OSError, match=r"video .*no_frames\.mkv has no frames"):
        list(iter_video(path))
    with pytest.raises(ValueError, match="every must be >= 1"):
        iter_video(str(tmp_path), every=0)
