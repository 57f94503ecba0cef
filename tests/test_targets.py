"""soc/modeling/targets.py: a clip's target dict read as trajectories; masks padded to the batch size."""

import pytest
import torch

from soc.modeling.targets import as_trajectories, batch_mask_size, pad_masks


def test_as_trajectories_defaults():
    masks = torch.zeros(2, 3, 3, dtype=torch.bool)
    masks[1, 0, 0] = True
    traj = as_trajectories({"masks": masks, "boxes": torch.zeros(2, 4)})
    assert traj.masks.shape == (1, 2, 3, 3) and traj.boxes.shape == (1, 2, 4)
    assert traj.visible.tolist() == [[False, True]]  # from the masks when is_visible is missing
    assert traj.labels.tolist() == [[0, 0]] and traj.referred == 0
    with pytest.raises(RuntimeError):
        as_trajectories({"masks": masks, "boxes": torch.zeros(3, 4)})  # frame count mismatch


def test_instance_axis_goes_first():
    T, I = 3, 2
    masks = torch.zeros(T, I, 4, 5, dtype=torch.bool)
    masks[:, 1, 0, 0] = True
    boxes = torch.arange(T * I * 4, dtype=torch.float32).view(T, I, 4)
    labels = torch.tensor([[1, 2], [1, 2], [1, 2]])
    traj = as_trajectories(
        {
            "masks": masks,
            "boxes": boxes,
            "is_visible": masks.flatten(2).any(-1),
            "labels": labels,
            "referred_idx": 1,
        }
    )
    assert traj.num == I and traj.masks.shape == (I, T, 4, 5)
    assert torch.equal(traj.boxes[1, 2], boxes[2, 1])
    assert traj.visible.tolist() == [[False] * T, [True] * T]
    assert traj.labels.tolist() == [[1] * T, [2] * T] and traj.referred == 1
    empty = as_trajectories(
        {"masks": torch.zeros(T, 0, 4, 5, dtype=torch.bool), "boxes": torch.zeros(T, 0, 4)}
    )
    assert empty.num == 0 and empty.referred == -1


def test_pad_masks_and_batch_size():
    masks = torch.ones(2, 3, 4, dtype=torch.bool)
    padded = pad_masks(masks, (5, 6))
    assert padded.shape == (2, 5, 6) and padded.sum() == 2 * 3 * 4 and padded[:, :3, :4].all()
    assert pad_masks(masks, (3, 4)) is masks
    small = as_trajectories({"masks": torch.zeros(1, 3, 8, dtype=torch.bool), "boxes": torch.zeros(1, 4)})
    tall = as_trajectories({"masks": torch.zeros(1, 7, 2, dtype=torch.bool), "boxes": torch.zeros(1, 4)})
    assert batch_mask_size([small, tall]) == (7, 8)
