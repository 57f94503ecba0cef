"""soc.utils.video_io: reading frame folders (16-bit, mixed sizes) and writers that report failures."""

import os

import numpy as np
import pytest
from PIL import Image

from soc.utils.video_io import read_video, write_gif, write_masks, write_mp4


def test_16_bit_frames_are_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (4, 1))  # (4, 256) full-range ramp
    for k in range(2):
        Image.fromarray(ramp).save(tmp_path / f"{k:05d}.png")
    assert Image.open(tmp_path / "00000.png").mode.startswith("I")
    frames = read_video(str(tmp_path))
    assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].shape == (4, 256, 3)
    grey = frames[0][..., 0].astype(int)
    np.testing.assert_array_equal(grey, np.round(ramp / 257.0))
    assert (grey == 255).mean() < 0.01  # PIL's convert("RGB") would make 99 % of the ramp white
    assert (np.diff(grey[0]) >= 0).all() and grey.min() == 0 and grey.max() == 255


def test_8_bit_frames_are_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_video(str(tmp_path))[0], rgb)


def test_frames_of_different_sizes_name_the_file(tmp_path):
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "00000.png")
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(tmp_path / "00001.png")
    with pytest.raises(ValueError, match=r"00001\.png is 9x6 but .*00000\.png is 8x6"):
        read_video(str(tmp_path))


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
