import numpy as np
import pytest

import person_erase as pe
from person_erase import Instances
from person_erase.engineinfo import SegmentInfo
from person_erase.errors import InputError, SelectionError


def _people() -> Instances:
    masks = np.zeros((3, 20, 30), bool)
    masks[0, 2:10, 20:25] = True   # right
    masks[1, 5:15, 2:6] = True     # left
    masks[2, 1:4, 10:14] = True    # middle
    return Instances.from_engine(masks, scores=[0.9, 0.8, 0.7])


def test_numbered_left_to_right_by_box_centre():
    p = _people()
    assert p.index.tolist() == [0, 1, 2]
    cx = (p.boxes[:, 0] + p.boxes[:, 2]) / 2
    assert list(cx) == sorted(cx)
    assert p.scores.tolist() == pytest.approx([0.8, 0.7, 0.9])


def test_ties_broken_top_to_bottom():
    masks = np.zeros((2, 20, 10), bool)
    masks[0, 12:18, 3:7] = True
    masks[1, 1:6, 3:7] = True
    p = Instances.from_engine(masks)
    assert p.boxes[0, 1] < p.boxes[1, 1]


@pytest.mark.parametrize(
    "key, expected", [(1, [1]), ([0, 2], [0, 2]), (np.array([True, False, True]), [0, 2]), (slice(1, None), [1, 2])]
)
def test_indexing_returns_new_instances_keeping_numbers(key, expected):
    p = _people()
    sub = p[key]
    assert isinstance(sub, Instances) and sub is not p
    assert sub.index.tolist() == expected
    assert sub[[1]].index.tolist() == [expected[1]] if len(expected) > 1 else True


def test_by_index_after_filtering_keeps_meaning():
    p = _people()[[0, 2]]
    assert p.by_index([2]).boxes.tolist() == _people()[2].boxes.tolist()
    with pytest.raises(SelectionError, match="no person 1 in this photo; valid person numbers are 0, 2"):
        p.by_index([1])


def test_arrays_are_read_only():
    p = _people()
    with pytest.raises(ValueError):
        p.masks[0, 0, 0] = True


def test_label_map_round_trip():
    p = _people()
    lm = p.to_label_map()
    assert lm.dtype == np.uint8 and set(np.unique(lm)) == {0, 1, 2, 3}
    q = Instances.from_label_map(lm)
    assert np.array_equal(q.masks, p.masks)
    assert q.index.tolist() == p.index.tolist()


def test_label_map_uint16_when_many_people():
    masks = np.zeros((300, 4, 300), bool)
    for k in range(300):
        masks[k, :, k] = True
    p = Instances.from_engine(masks)
    lm = p.to_label_map()
    assert lm.dtype == np.uint16 and lm.max() == 300
    assert len(Instances.from_label_map(lm)) == 300


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(masks=np.zeros((2, 3), bool)), "must be \\(N, H, W\\) bool, got shape \\(2, 3\\)"),
        (dict(masks=np.zeros((1, 3, 3), np.uint8)), "must have dtype bool, got uint8"),
        (dict(boxes=np.zeros((2, 4))), "boxes must be \\(1, 4\\)"),
        (dict(index=np.array([0, 0][:1]) + 5, scores=np.zeros(2)), "scores must be \\(1,\\)"),
    ],
)
def test_validation_messages_name_shape_and_dtype(kwargs, message):
    base = dict(masks=np.zeros((1, 3, 3), bool), boxes=np.zeros((1, 4)), scores=np.ones(1), index=np.zeros(1))
    base.update(kwargs)
    with pytest.raises(InputError, match=message):
        Instances(**base)


def test_empty_and_out_of_range():
    e = Instances.empty(10, 20)
    assert len(e) == 0 and e.shape == (10, 20) and e.union().shape == (10, 20)
    with pytest.raises(SelectionError, match="no people were found"):
        e.by_index([0])
    with pytest.raises(SelectionError, match="out of range"):
        _people()[[5]]


def test_overlay_draws_every_person(astronaut):
    masks = np.zeros((2, *astronaut.shape[:2]), bool)
    masks[0, 100:300, 50:150] = True
    masks[1, 100:300, 300:400] = True
    p = Instances.from_engine(masks)
    before = astronaut.copy()
    ov = p.overlay(astronaut)
    assert ov.shape == astronaut.shape and ov.dtype == np.uint8
    changed = np.any(ov != astronaut, axis=2)
    assert changed[masks[0]].mean() > 0.9 and changed[masks[1]].mean() > 0.9
    assert not np.shares_memory(ov, astronaut) and np.array_equal(astronaut, before)  # a new picture; input intact


def test_public_api_is_small_and_sorted():
    assert pe.__all__ == sorted(pe.__all__)
    for name in ("load_image", "segment", "erase", "redact", "Instances", "Result", "Image"):
        assert name in pe.__all__


# --- bounds and compact storage (issue 18 item 1) ------------------------------------------------


def test_label_map_of_noise_is_refused_before_allocating():
    # small enough to be harmless where it is not refused (the CLI test runs a full-size one)
    noise = np.random.default_rng(0).integers(0, 65536, (60, 70)).astype(np.uint16)
    with pytest.raises(InputError, match=r"label map has 4,\d{3} labels; at most max_instances=1,000"):
        Instances.from_label_map(noise)


def test_labels_spread_over_the_photo_are_bounded_by_mask_pixels():
    noise = np.random.default_rng(0).integers(0, 50, (100, 120)).astype(np.uint8)  # 49 labels, each everywhere
    with pytest.raises(InputError, match=r"would need 5\d\d,\d{3} mask pixels, over max_mask_pixels=100,000"):
        Instances.from_label_map(noise, max_mask_pixels=100_000)
    assert len(Instances.from_label_map(noise)) == 49


def test_many_people_in_a_large_photo_are_stored_by_their_boxes():
    import tracemalloc

    h, w = 2000, 3000
    lm = np.zeros((h, w), np.uint16)
    for k in range(200):
        y, x = (k // 20) * 200 + 20, (k % 20) * 150 + 20
        lm[y:y + 150, x:x + 80] = k + 1
    tracemalloc.start()
    people = Instances.from_label_map(lm)
    sub = people[[5, 150]]
    union = people.union()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(people) == 200 and sub.index.tolist() == [5, 150]
    assert peak < 100e6, peak  # the dense stack alone would be 200·6 MP = 1.2 GB
    assert np.array_equal(union, lm > 0)
    assert people.areas.tolist() == [150 * 80] * 200
    assert np.array_equal(people.to_label_map() > 0, lm > 0)


def test_dense_masks_over_the_limit_are_refused(monkeypatch):
    import person_erase.instances as I

    p = _people()
    monkeypatch.setattr(I, "MAX_MASK_PIXELS", 3 * 20 * 30 - 1)
    with pytest.raises(InputError, match=r"dense \(3, 20, 30\) mask stack would need 1,800 mask pixels"):
        _ = p.masks
    assert p.mask(0).shape == (20, 30)


def test_mask_crop_and_window_agree_with_the_dense_stack():
    p = _people()
    for k in range(len(p)):
        assert np.array_equal(p.mask(k), p.masks[k])
        (x0, y0, x1, y1), c = p.crop(k)
        assert c.sum() == p.masks[k].sum() == p.masks[k, y0:y1, x0:x1].sum()
        assert np.array_equal(p.mask(k, window=(-3, 2, 26, 40)), p.masks[k, 2:, 0:26])
    assert np.array_equal(p.union([0, 2]), p.masks[0] | p.masks[2])
    with pytest.raises(SelectionError, match="out of range"):
        p.mask(3)


def test_instances_are_immutable_and_pickle():
    import pickle

    p = _people()
    with pytest.raises(AttributeError, match="immutable"):
        p.boxes = np.zeros((3, 4))  # type: ignore[misc]
    with pytest.raises(ValueError):
        p.boxes[0, 0] = 1
    q = pickle.loads(pickle.dumps(p))
    assert np.array_equal(q.masks, p.masks) and q.index.tolist() == p.index.tolist()
    assert q.with_info(SegmentInfo(engine="x")).info == SegmentInfo(engine="x")


def test_engine_output_is_bounded_too():
    masks = np.zeros((5, 10, 10), bool)
    for k in range(5):
        masks[k, k, k] = True
    with pytest.raises(InputError, match="segmentation has 5 people; at most max_instances=4"):
        Instances.from_engine(masks, max_instances=4)
