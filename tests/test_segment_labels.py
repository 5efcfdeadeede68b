"""LabelSegmenter: label maps and mask folders read back as Instances."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from person_erase.errors import InputError
from person_erase.instances import Instances
from person_erase.segmenters.labels import LabelSegmenter


def _scene(h: int = 60, w: int = 90) -> np.ndarray:
    """Label map with three people: label 7 on the right, 2 on the left, 300 in the middle."""
    labels = np.zeros((h, w), dtype=np.uint16)
    labels[10:50, 70:85] = 7
    labels[5:55, 3:20] = 2
    labels[20:40, 40:50] = 300
    return labels


def _photo(h: int = 60, w: int = 90) -> np.ndarray:
    return np.full((h, w, 3), 128, dtype=np.uint8)


def test_label_map_round_trip_8bit(tmp_path):
    labels = _scene().astype(np.uint8) % 200  # 7, 2, 100
    Image.fromarray(labels).save(tmp_path / "m.png")
    people = LabelSegmenter(tmp_path / "m.png").segment(_photo())
    assert len(people) == 3
    assert people.index.tolist() == [0, 1, 2]
    # numbered left to right, whatever the label values were
    assert people.boxes[:, 0].tolist() == [3, 40, 70]
    back = Instances.from_label_map(people.to_label_map())
    assert np.array_equal(back.masks, people.masks)
    assert people.info.engine == "labels"


def test_label_map_16bit_keeps_large_labels(tmp_path):
    Image.fromarray(_scene()).save(tmp_path / "m16.png")
    people = LabelSegmenter(str(tmp_path / "m16.png")).segment(_photo())
    assert len(people) == 3
    assert people.areas.tolist() == [50 * 17, 20 * 10, 40 * 15]


def test_rgb_label_map_uses_channel_0(tmp_path):
    labels = (_scene() % 200).astype(np.uint8)
    rgb = np.stack([labels, np.full_like(labels, 9), np.zeros_like(labels)], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    people = LabelSegmenter(tmp_path / "rgb.png").segment(_photo())
    assert len(people) == 3


def test_folder_of_masks(tmp_path):
    labels = _scene()
    folder = tmp_path / "masks"
    folder.mkdir()
    for k, value in enumerate([7, 2, 300]):
        Image.fromarray(((labels == value) * 255).astype(np.uint8)).save(folder / f"p{k}.png")
    (folder / "notes.txt").write_text("ignored")
    people = LabelSegmenter(folder).segment(_photo())
    assert len(people) == 3
    assert people.boxes[:, 0].tolist() == [3, 40, 70]
    assert not (people.masks.sum(axis=0) > 1).any()


def test_empty_label_map_gives_no_people(tmp_path):
    Image.fromarray(np.zeros((60, 90), np.uint8)).save(tmp_path / "none.png")
    assert len(LabelSegmenter(tmp_path / "none.png").segment(_photo())) == 0


@pytest.mark.parametrize("photo_shape", [(60, 91), (59, 90), (90, 60)])
def test_wrong_size_is_an_input_error(tmp_path, photo_shape):
    Image.fromarray(_scene().astype(np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(InputError, match=r"label map is 90x60 but the photo is \d+x\d+"):
        LabelSegmenter(tmp_path / "m.png").segment(_photo(*photo_shape))


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        LabelSegmenter(tmp_path / "nope.png")


def test_empty_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no mask PNGs"):
        LabelSegmenter(tmp_path).segment(_photo())


def test_not_a_png_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read mask"):
        LabelSegmenter(bad).segment(_photo())


def test_registry_builds_labels_segmenter(tmp_path):
    from person_erase.segmenters import get_segmenter

    Image.fromarray(_scene().astype(np.uint8)).save(tmp_path / "m.png")
    seg = get_segmenter(f"labels:{tmp_path / 'm.png'}")
    assert seg.name == "labels" and seg.needs_network is False
    assert len(seg.segment(_photo())) == 3


def test_folder_with_more_masks_than_max_instances_is_refused_before_reading(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    for k in range(4):
        Image.fromarray(np.zeros((60, 90), np.uint8)).save(folder / f"p{k}.png")
    with pytest.raises(InputError, match="holds 4 mask PNGs; at most max_instances=3"):
        LabelSegmenter(folder, max_instances=3).segment(_photo())


def test_label_map_bomb_is_refused_by_its_header(tmp_path):
    # 1-bit PNGs of 400 MP / 100 MP (a few KB each): refused from the header, before decoding
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    with pytest.raises(InputError, match="cannot read mask .*bomb.png: Image size .* decompression bomb"):
        LabelSegmenter(tmp_path / "bomb.png").segment(_photo())
    Image.new("1", (10000, 10000)).save(tmp_path / "big.png")
    with pytest.raises(InputError, match="label map is 10000x10000 but the photo is 90x60"):
        LabelSegmenter(tmp_path / "big.png").segment(_photo())


def test_fifo_label_map_is_refused(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(InputError, match="is not a regular file"):
        LabelSegmenter(tmp_path / "fifo.png")
