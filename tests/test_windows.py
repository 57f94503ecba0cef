"""soc.modeling.windows: window boundaries (static and streamed) and the association of queries across
windows, on hand-built cases."""

import pytest
import torch

from soc.modeling.postprocessing import select_query
from soc.modeling.windows import Track, associate, iter_windows, window_bounds


@pytest.mark.parametrize(
    "T, L, V, expected",
    [
        (10, 4, 0, [(0, 4), (4, 8), (8, 10)]),  # the authors' consecutive chunks
        (8, 4, 0, [(0, 4), (4, 8)]),
        (10, 4, 1, [(0, 4), (3, 7), (6, 10)]),  # the last window ends exactly at T
        (11, 4, 1, [(0, 4), (3, 7), (6, 10), (9, 11)]),  # a short last window: one shared + one new frame
        (9, 5, 3, [(0, 5), (2, 7), (4, 9)]),
        (3, 36, 8, [(0, 3)]),  # T < L: one short window
        (36, 36, 8, [(0, 36)]),  # T = L: one window, no empty second one
        (37, 36, 8, [(0, 36), (28, 37)]),
        (1, 4, 3, [(0, 1)]),
        (5, 1, 0, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
        (0, 4, 1, []),
    ],
)
def test_window_bounds(T, L, V, expected):
    assert window_bounds(T, L, V) == expected
    # every window holds a frame no earlier window holds, and together they cover [0, T) with steps L - V
    ends = [0] + [e for _, e in expected]
    assert all(b > a for a, b in zip(ends, ends[1:]))
    assert all(s == k * (L - V) for k, (s, _) in enumerate(expected))


@pytest.mark.parametrize(
    "L, V, message",
    [
        (4, 4, "overlap must be >= 0 and < the window length 4, got 4"),
        (4, 5, "< the window length 4, got 5"),
        (4, -1, "overlap must be >= 0"),
        (0, 0, "window length must be >= 1 frame, got 0"),
        (-3, 0, "window length must be >= 1 frame, got -3"),
    ],
)
def test_bad_windows_are_refused(L, V, message):
    with pytest.raises(ValueError, match=message):
        window_bounds(10, L, V)
    with pytest.raises(ValueError, match=message):
        next(iter_windows(iter(range(10)), L, V))


def test_negative_frame_count_is_refused():
    with pytest.raises(ValueError, match="num_frames must be >= 0, got -1"):
        window_bounds(-1, 4, 0)


def test_streamed_windows_read_lazily():
    """A window is handed out as soon as its last frame is read; items are the stream's own objects."""
    consumed = []

    def frames():
        for t in range(11):
            consumed.append(t)
            yield f"frame{t}"

    stream = iter_windows(frames(), 4, 1)
    start, items = next(stream)
    assert (start, items, consumed) == (0, ["frame0", "frame1", "frame2", "frame3"], [0, 1, 2, 3])
    start, items = next(stream)
    assert (start, items) == (3, ["frame3", "frame4", "frame5", "frame6"]) and len(consumed) == 7
    assert [(s, len(w)) for s, w in stream] == [(6, 4), (9, 2)]


def _box_masks(V, h, w, top, left, size=4):
    m = torch.zeros(V, h, w, dtype=torch.bool)
    m[:, top : top + size, left : left + size] = True
    return m


def test_association_keeps_the_object_where_the_score_switches_to_a_look_alike():
    """Two windows sharing V = 2 frames. Window 1 chose an object at the top left. In window 2 a look-alike
    query (bottom right, similar embedding) has the best expression score, so the per-window argmax switches
    to it; the association follows the object: its masks overlap and its embedding is the closest."""
    V, h, w, C = 2, 12, 12, 8
    g = torch.Generator().manual_seed(0)
    obj = torch.randn(C, generator=g)
    track = Track(masks=_box_masks(V, h, w, 1, 1), embedding=obj)
    look_alike = obj + 0.6 * torch.randn(C, generator=g)
    embeddings = torch.stack([look_alike, obj + 0.05 * torch.randn(C, generator=g), -obj])
    masks = torch.stack(
        [_box_masks(V, h, w, 7, 7), _box_masks(V, h, w, 2, 1), torch.zeros(V, h, w, dtype=torch.bool)], dim=1
    )  # (V, N, h, w)
    # class logits (T, N, K) of the new window: query 0 scores highest
    pred_cls = torch.logit(torch.tensor([[[0.9], [0.7], [0.1]]] * 5))
    _, argmax, mean_scores = select_query(pred_cls)
    assert argmax == 0
    assert associate(track, masks, embeddings, mean_scores) == 1
    # IoU alone decides when the embeddings say nothing: 12 shared pixels of 20 for query 1, none for query 0
    flat = torch.ones(3, C)
    assert associate(Track(track.masks, torch.ones(C)), masks, flat, mean_scores) == 1
    # and the embedding alone decides without shared frames (V = 0)
    no_overlap = Track(torch.zeros(0, h, w, dtype=torch.bool), obj)
    assert associate(no_overlap, masks[:0], embeddings, mean_scores) == 1


def test_association_affinity_is_iou_plus_cosine():
    """Query 0: IoU 1, cosine 0 (affinity 1); query 1: IoU 0, cosine 0.8 (affinity 0.8) → query 0. With
    query 1's cosine raised to 1 both reach 1: a tie, which the expression score breaks either way."""
    V, h, w = 1, 4, 4
    prev = _box_masks(V, h, w, 0, 0, size=2)
    track = Track(prev, torch.tensor([1.0, 0.0]))
    masks = torch.stack([prev, torch.zeros_like(prev)], dim=1)
    scores = torch.tensor([0.2, 0.9])
    assert associate(track, masks, torch.tensor([[0.0, 1.0], [0.8, 0.6]]), scores) == 0
    assert associate(track, masks, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), scores) == 1
    assert associate(track, masks, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0.9, 0.2])) == 0


def test_association_score_weight_trades_continuity_for_the_expression_score():
    """Query 0 continues the object (IoU 1, cosine 1: 2) with score 0.1; query 1 (IoU 0, cosine 0: 0) scores
    0.9. Affinities with weight w: 2 + 0.1 w against 0.9 w, equal at w = 2.5: below it the object is
    followed, above it the score wins (w = 0 is the pure continuity rule); a negative weight is refused."""
    V, h, w = 1, 4, 4
    prev = _box_masks(V, h, w, 0, 0, size=2)
    track = Track(prev, torch.tensor([1.0, 0.0]))
    masks = torch.stack([prev, torch.zeros_like(prev)], dim=1)
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scores = torch.tensor([0.1, 0.9])
    chosen = [associate(track, masks, embeddings, scores, weight) for weight in (0, 2.4, 2.6, 10)]
    assert chosen == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="score_weight must be >= 0"):
        associate(track, masks, embeddings, scores, -1.0)


def test_association_ties_go_to_the_expression_score():
    """Identical candidates (same masks, same embedding): the higher expression score wins; an empty union
    counts as IoU 0, not as a perfect match."""
    V, h, w, C = 3, 6, 6, 4
    empty = torch.zeros(V, h, w, dtype=torch.bool)
    track = Track(empty, torch.ones(C))
    masks = torch.stack([empty, empty, _box_masks(V, h, w, 0, 0, 2)], dim=1)
    embeddings = torch.ones(3, C)
    assert associate(track, masks, embeddings, torch.tensor([0.3, 0.6, 0.1])) == 1
    assert associate(track, masks, embeddings, torch.tensor([0.3, 0.1, 0.6])) == 2


def test_association_needs_the_same_shared_frames():
    track = Track(torch.zeros(2, 4, 4, dtype=torch.bool), torch.ones(3))
    with pytest.raises(ValueError, match="holds 2 shared frames but the new window's masks cover 3"):
        associate(track, torch.zeros(3, 5, 4, 4, dtype=torch.bool), torch.ones(5, 3), torch.ones(5))
