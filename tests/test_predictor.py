"""SOCPredictor: streamed windows against the model's own windowed inference, every input kind, bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from PIL import Image

from soc.config import setup_cfg
from soc.engine.predictor import DEFAULT_WINDOW, SOCPredictor, to_instances
from soc.utils.video_io import write_mp4

from helpers import perturb_parameters

CONFIG = Path(__file__).resolve().parents[1] / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml"
WINDOWS = ["MODEL.SOC.TEST.CLIP_LENGTH", "3", "MODEL.SOC.TEST.WINDOW_OVERLAP", "1"]
EXPRESSIONS = ["a dog", "the red car on the left"]


def tiny_cfg(*opts):
    return setup_cfg(str(CONFIG), ["MODEL.DEVICE", "cpu", *opts])


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    p = SOCPredictor(
        tiny_cfg(*WINDOWS, "MODEL.SOC.TEST.ASSOCIATION", "iou_embedding"), allow_random_weights=True
    )
    perturb_parameters(p.model)  # away from the initialisation, whose zeros make every query alike
    return p


def video(n=8, h=40, w=60, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def assert_same_results(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert set(x) == set(y) == {"pred_masks", "mask_probs", "pred_boxes", "scores", "score"}
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_empty_weights_are_refused():
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty: the predictor needs trained weights"):
        SOCPredictor(tiny_cfg())


def test_window_comes_from_the_config():
    p = SOCPredictor(tiny_cfg(), allow_random_weights=True)
    assert (p.window, p.overlap) == (DEFAULT_WINDOW, 0)  # CLIP_LENGTH 0: the stream's default
    with pytest.raises(ValueError, match="overlap must be >= 0 and < the window length 36, got 36"):
        SOCPredictor(tiny_cfg("MODEL.SOC.TEST.WINDOW_OVERLAP", "36"), allow_random_weights=True)


def test_call_equals_the_models_windowed_inference(predictor):
    """The streamed windows (frames read one by one) against SOC.inference slicing the whole resized clip
    into the same windows (CLIP_LENGTH 3, overlap 1, iou_embedding association)."""
    frames = video()
    out = predictor(frames, EXPRESSIONS)
    resize = T.ResizeShortestEdge(64, 96).get_transform(frames[0])
    clip = torch.from_numpy(np.stack([resize.apply_image(f) for f in frames])).permute(0, 3, 1, 2)
    model = predictor.model
    assert (model.test_clip_length, model.window_overlap, model.association) == (3, 1, "iou_embedding")
    ref = model([{"frames": clip, "expressions": EXPRESSIONS, "height": 40, "width": 60}])[0]
    assert len(out) == 2
    for o, r in zip(out, ref):
        assert o["pred_masks"].shape == (8, 40, 60) and o["pred_masks"].dtype == bool
        np.testing.assert_array_equal(o["pred_masks"], r["pred_masks"].numpy())
        assert o["mask_probs"].dtype == np.float16
        np.testing.assert_allclose(o["mask_probs"], r["mask_probs"].numpy(), atol=5e-4)
        np.testing.assert_array_equal(o["pred_boxes"], r["pred_boxes"].numpy())
        scores = r["query_scores"][torch.arange(8), r["query_index"]]
        np.testing.assert_array_equal(o["scores"], scores.numpy())
        assert o["score"] == pytest.approx(float(scores.mean()), rel=1e-6)


def test_every_kind_of_video_input(predictor, tmp_path):
    frames = video(5, seed=1)
    expected = predictor(frames, "a dog")
    assert len(expected) == 1  # a single string gives a list of one
    for t, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{t:05d}.png")  # lossless
    assert_same_results(predictor(str(tmp_path), ["a dog"]), expected)
    assert_same_results(predictor(tmp_path, "a dog"), expected)
    assert_same_results(predictor((f for f in frames), "a dog"), expected)
    assert_same_results(predictor(list(frames), "a dog"), expected)
    write_mp4(frames, str(tmp_path / "v.mp4"))  # lossy: shapes only
    (out,) = predictor(str(tmp_path / "v.mp4"), "a dog")
    assert out["pred_masks"].shape == (5, 40, 60) and out["scores"].shape == (5,)


def test_stream_hands_out_each_window_as_soon_as_it_is_read(predictor):
    """8 frames, L = 3, V = 1: windows [0, 3), [2, 5), [4, 7), [6, 8) own frames 0-2, 3-4, 5-6, 7; the first
    window is out after 3 frames were read."""
    frames = list(video())
    read = []

    def source():
        for t, f in enumerate(frames):
            read.append(t)
            yield f

    stream = predictor.stream(source(), EXPRESSIONS)
    first = next(stream)
    assert read == [0, 1, 2] and first.start == 0 and len(first.frames) == 3
    windows = [first, *stream]
    assert [(w.start, len(w.frames)) for w in windows] == [(0, 3), (3, 2), (5, 2), (7, 1)]
    for w in windows:
        for k, f in enumerate(w.frames):
            assert f is frames[w.start + k]
        assert all(r["pred_masks"].shape == (len(w.frames), 40, 60) for r in w.results)
    whole = predictor(frames, EXPRESSIONS)
    for e in range(2):
        np.testing.assert_array_equal(
            np.concatenate([w.results[e]["pred_masks"] for w in windows]), whole[e]["pred_masks"]
        )


def test_one_frame_and_no_frame(predictor):
    (out,) = predictor(video(1), "a dog")
    assert out["pred_masks"].shape == (1, 40, 60) and out["pred_boxes"].shape == (1, 4)
    with pytest.raises(ValueError, match="the video has no frames"):
        predictor(video(0), "a dog")
    with pytest.raises(ValueError, match="the video has no frames"):
        predictor(iter([]), "a dog")


def test_a_source_failing_mid_stream_stops_after_the_windows_before(predictor):
    frames = video()

    def source():
        for t, f in enumerate(frames):
            if t == 5:
                raise OSError("cannot decode video v.mp4 at frame 5")
            yield f

    done = []
    with pytest.raises(OSError, match="at frame 5"):
        for w in predictor.stream(source(), "a dog"):
            done.append((w.start, len(w.frames)))
    assert done == [(0, 3), (3, 2)]  # the window [4, 7) needed frame 5


@pytest.mark.parametrize(
    "frames, message",
    [
        (
            [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)],
            r"frame 1 is \(8, 9, 3\) but frame 0",
        ),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)], "frame 1: expected RGB uint8"),
        ([np.zeros((8, 8), np.uint8)], r"frame 0: expected RGB uint8 \(H, W, 3\), got uint8 \(8, 8\)"),
        (np.zeros((8, 8, 3), np.uint8), r"a video array must be \(T, H, W, 3\)"),
    ],
)
def test_bad_frames_are_named(predictor, frames, message):
    with pytest.raises(ValueError, match=message):
        predictor(frames, "a dog")


@pytest.mark.parametrize(
    "expressions, message", [([], "no expressions given"), (["a dog", " "], "expression 1")]
)
def test_bad_expressions(predictor, expressions, message):
    with pytest.raises(ValueError, match=message):
        predictor(video(2), expressions)


def test_to_instances_feeds_detectron2s_visualizer(predictor):
    from detectron2.data import MetadataCatalog
    from detectron2.utils.visualizer import Visualizer

    frames = video(4)
    out = predictor(frames, EXPRESSIONS)
    inst = to_instances(out, 2)
    assert inst.image_size == (40, 60) and len(inst) == 2
    for e in range(2):
        assert torch.equal(inst.pred_masks[e], torch.from_numpy(out[e]["pred_masks"][2]))
        np.testing.assert_array_equal(inst.pred_boxes.tensor[e].numpy(), out[e]["pred_boxes"][2])
        assert inst.scores[e].item() == pytest.approx(float(out[e]["scores"][2]))
    assert inst.pred_classes.tolist() == [0, 1]
    assert len(to_instances(out[1], 0)) == 1
    meta = MetadataCatalog.get("soc_test_expressions")
    meta.thing_classes = EXPRESSIONS
    drawn = Visualizer(frames[2], meta).draw_instance_predictions(inst).get_image()
    assert drawn.shape == (40, 60, 3)
    with pytest.raises(IndexError, match="frame 4 is outside the 4 predicted frames"):
        to_instances(out, 4)
