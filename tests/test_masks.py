import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from person_erase import Instances
from person_erase import masks as M
from person_erase.errors import InputError


def _disk_mask(h, w, cx, cy, r):
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (cx, cy), r, 1, -1)
    return m.astype(bool)


@st.composite
def people_and_choice(draw):
    h = draw(st.integers(16, 60))
    w = draw(st.integers(16, 60))
    n = draw(st.integers(0, 5))
    labels = np.zeros((h, w), np.uint8)
    for k in range(n):
        x0 = draw(st.integers(0, w - 2))
        y0 = draw(st.integers(0, h - 2))
        x1 = draw(st.integers(x0 + 1, w))
        y1 = draw(st.integers(y0 + 1, h))
        labels[y0:y1, x0:x1] = k + 1
    people = Instances.from_label_map(labels)
    chosen = (
        draw(st.lists(st.integers(0, max(0, len(people) - 1)), unique=True, max_size=len(people)))
        if len(people)
        else []
    )
    dil = draw(st.integers(0, 6))
    return people, chosen, dil


@settings(max_examples=150, deadline=None)
@given(people_and_choice())
def test_erase_and_keep_never_overlap_and_cover_the_chosen(case):
    people, chosen, dil = case
    pair = M.build_masks(people, chosen, dilate_px=dil)
    assert not (pair.erase & pair.keep).any()
    chosen_union = M.union(people.masks[chosen], shape=people.shape) if chosen else np.zeros(people.shape, bool)
    # every chosen pixel is erased unless a kept person claims it
    assert not (chosen_union & ~pair.erase & ~pair.keep).any()
    # erase never reaches beyond the dilation radius of the chosen people
    assert not (pair.erase & ~M.dilate(chosen_union, dil)).any()
    # the conflict count is exactly what keep took from the grown mask
    assert pair.overlap_resolved_px == int((M.dilate(chosen_union, dil) & pair.keep).sum())


@pytest.mark.parametrize("radius", [1, 3, 8, 24, 28])
def test_dilation_radius_is_euclidean(radius):
    m = np.zeros((61, 61), bool)
    m[30, 30] = True
    d = M.dilate(m, radius)
    ys, xs = np.nonzero(d)
    dist = np.hypot(ys - 30, xs - 30)
    assert dist.max() <= radius + 0.5
    assert d[30, 30 + radius] and d[30 - radius, 30] and not d[30, 30 + radius + 1]


def test_dilation_near_border_and_matches_full_frame_cv2():
    m = np.zeros((50, 70), bool)
    m[0:5, 60:70] = True
    m[30:35, 20:25] = True
    ref = cv2.dilate(m.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))).astype(bool)
    assert np.array_equal(M.dilate(m, 5), ref)


def test_large_radius_dilation_contains_the_disk_kernel():
    # from 24 px ``dilate`` thresholds a distance transform (linear time) instead of a disk kernel
    m = np.zeros((400, 300), bool)
    cv2.ellipse(m.view(np.uint8), (150, 220), (60, 150), 15, 0, 360, 1, -1)
    m[0:4, 290:300] = True  # near a corner: the window is clipped there
    for r in (24, 57):
        ref = cv2.dilate(
            m.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        ).astype(bool)
        d = M.dilate(m, r)
        assert not (ref & ~d).any()
        assert (d & ~ref).sum() < 0.002 * ref.sum()


def test_clean_removes_specks_and_fills_holes():
    m = _disk_mask(100, 100, 50, 50, 30)
    m[45:55, 45:55] = False        # a hole
    m[5, 5] = True                 # a speck
    m[90:92, 90:92] = True         # a small blob
    out = M.clean(m, open_radius=1, min_area=20)
    assert out[50, 50]                     # hole filled
    assert not out[5, 5] and not out[91, 91]  # specks gone
    assert out.sum() >= _disk_mask(100, 100, 50, 50, 30).sum() - 40


def test_fill_holes_leaves_open_bays_alone():
    m = np.zeros((40, 40), bool)
    m[5:35, 5:10] = True
    m[5:35, 30:35] = True
    m[5:10, 5:35] = True  # a U shape: the inside is open at the bottom
    assert np.array_equal(M.fill_holes(m), m)


def test_keep_wins_and_conflict_is_counted():
    labels = np.zeros((40, 60), np.uint8)
    labels[10:30, 10:25] = 1
    labels[10:30, 27:45] = 2   # 2 px gap between the two people
    people = Instances.from_label_map(labels)
    pair = M.build_masks(people, [0], dilate_px=5)
    assert pair.overlap_resolved_px > 0
    assert not pair.erase[10:30, 27:45].any()
    assert pair.keep[10:30, 27:45].all()


def test_default_dilate_scales_with_resolution():
    assert M.default_dilate(1000, 1000) == 9
    assert M.default_dilate(2000, 2000) == 18
    assert M.default_dilate(100, 100) == 3


def test_inputs_not_modified_and_type_errors():
    m = _disk_mask(30, 30, 15, 15, 5)
    before = m.copy()
    M.dilate(m, 3)
    M.clean(m)
    assert np.array_equal(m, before)
    with pytest.raises(InputError, match=r"must be \(H, W\) bool, got shape \(30, 30\) dtype uint8"):
        M.dilate(m.astype(np.uint8), 2)
    with pytest.raises(InputError, match="radius must be >= 0"):
        M.dilate(m, -1)


def _people_of(sizes: list[tuple[int, int, int, int]], shape: tuple[int, int] = (400, 600)) -> Instances:
    """Elliptic people, one per (cx, cy, half-width, half-height)."""
    masks = np.zeros((len(sizes), *shape), dtype=bool)
    for k, (cx, cy, ax, ay) in enumerate(sizes):
        m = np.zeros(shape, np.uint8)
        cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 1, -1)
        masks[k] = m > 0
    return Instances.from_engine(masks)


def test_privacy_margin_grows_with_each_person_and_small_people_get_their_box():
    people = _people_of([(150, 200, 60, 150), (420, 300, 10, 20)])  # 301 px tall and 41 px tall
    tall, tiny = people.boxes[0], people.boxes[1]
    plain = M.build_masks(people, [0, 1], dilate_px=3).erase
    pair = M.build_masks(people, [0, 1], dilate_px=3, privacy_margin=0.1, box_below_px=64)
    assert (pair.erase >= plain).all()
    # the tall person grows by ~0.1 x 301 px = 30 px, not by 3
    row = pair.erase[200]
    assert abs(int(np.flatnonzero(row[:300])[0]) - (150 - 60 - 30)) <= 1
    # the tiny one is covered by its whole box (plus the 3 px dilation), corners included
    x0, y0, x1, y1 = (int(v) for v in tiny)
    assert pair.erase[y0 - 3 : y1 + 3, x0 - 3 : x1 + 3].all() and not plain[y0, x0]
    assert not pair.erase[y0 - 5, x0 - 5]
    # without the options it is exactly the plain algebra
    assert np.array_equal(M.build_masks(people, [0, 1], dilate_px=3, privacy_margin=0, box_below_px=0).erase, plain)
    assert int(tall[3] - tall[1]) == 301


def test_privacy_margin_still_yields_to_kept_people():
    people = _people_of([(200, 200, 50, 150), (330, 200, 50, 150)])  # side by side, 30 px apart
    pair = M.build_masks(people, [0], dilate_px=3, privacy_margin=0.15)
    assert not (pair.erase & pair.keep).any() and pair.overlap_resolved_px > 0
    assert pair.keep[200, 300] and not pair.erase[200, 300]
    with pytest.raises(InputError, match=">= 0"):
        M.build_masks(people, [0], privacy_margin=-0.1)
