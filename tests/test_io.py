"""person_erase.io: loading (formats, modes, orientation, bad inputs), metadata policies, atomic save."""

from __future__ import annotations

import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, ImageFile
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).parent))
import _imagefactory as fac  # noqa: E402

from person_erase.errors import InputError  # noqa: E402
from person_erase.io import (  # noqa: E402
    DEFAULT_MAX_PIXELS,
    METADATA_POLICIES,
    Image,
    ImageMetadata,
    check_output_path,
    load_image,
    save_image,
    strip_xmp_gps,
)

SUPPORTED = "JPEG, PNG, BMP, WEBP or TIFF"
DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-persons-dev" / "images"


def _exif_of(path: Path) -> PILImage.Exif:
    # opened from memory so that sub-IFDs can still be read after this returns (TIFF reads them lazily)
    return PILImage.open(io.BytesIO(path.read_bytes())).getexif()


def _has_gps_ifd(path: Path) -> bool:
    ex = _exif_of(path)
    return 0x8825 in ex and bool(ex.get_ifd(0x8825))


# ----------------------------------------------------------------------------------- bad inputs

def _jpeg() -> bytes:
    return fac.encode(fac.asymmetric_rgb(64, 96), "JPEG", quality=90)


def _png() -> bytes:
    rng = np.random.default_rng(0)
    return fac.encode(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8), "PNG")


def _webp_animated() -> bytes:
    ims = [PILImage.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 120)]
    return fac.encode(ims[0], "WEBP", save_all=True, append_images=ims[1:])


def _tiff_pages() -> bytes:
    ims = [PILImage.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 120)]
    return fac.encode(ims[0], "TIFF", save_all=True, append_images=ims[1:])


def _ico() -> bytes:
    return fac.encode(PILImage.fromarray(np.zeros((16, 16, 3), np.uint8)), "ICO")


def _pdf() -> bytes:
    return fac.encode(PILImage.fromarray(np.zeros((16, 16, 3), np.uint8)), "PDF")


BAD_FILES = [
    # (id, file name, bytes builder, expected fragment)
    ("empty", "empty.jpg", lambda: b"", "empty (0 bytes)"),
    ("jpeg-cut-half", "half.jpg", lambda: _jpeg()[: len(_jpeg()) // 2], "truncated"),
    ("jpeg-no-eoi", "noeoi.jpg", lambda: _jpeg()[:-2], "truncated"),
    ("jpeg-header-only", "head.jpg", lambda: _jpeg()[:300], "truncated"),
    ("png-no-iend", "noiend.png", lambda: _png()[:-12], "truncated"),
    ("png-cut-idat", "cut.png", lambda: _png()[: len(_png()) // 2], "truncated"),
    ("webp-cut", "cut.webp", lambda: (lambda b: b[: len(b) * 2 // 3])(fac.encode(fac.asymmetric_rgb(), "WEBP")),
     "truncated"),
    ("text-as-jpg", "notes.jpg", lambda: b"these are my holiday notes\nnot a photo\n", "it is text"),
    ("html-as-jpg", "dl.jpg", lambda: b"<!DOCTYPE html><html><body>403</body></html>", "HTML page"),
    ("gif", "a.gif", lambda: fac.gif_bytes(1), "it is a GIF"),
    ("gif-animated", "anim.gif", lambda: fac.gif_bytes(3), "it is a GIF"),
    ("ico", "favicon.ico", _ico, "ICO icon"),
    ("pdf", "scan.pdf", _pdf, "PDF document"),
    ("random-binary", "noise.jpg", lambda: bytes(range(7, 256)) * 3, "not a supported image"),
    ("webp-animated", "anim.webp", _webp_animated, "frames (animated)"),
    ("tiff-multipage", "pages.tif", _tiff_pages, "2 pages"),
]


@pytest.mark.parametrize(("name", "builder", "fragment"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_files_raise_one_clear_line(tmp_path, name, builder, fragment):
    path = fac.write(tmp_path / name, builder())
    with pytest.raises(InputError) as info:
        load_image(path)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg
    assert str(path) in msg
    if "supported image" in msg:
        assert SUPPORTED in msg


@pytest.mark.parametrize(("kind", "fragment"), [("missing", "no such file"), ("folder", "is a folder"),
                                                ("missing-folder", "does not exist either")])
def test_path_problems(tmp_path, kind, fragment):
    target = {"missing": tmp_path / "nope.jpg", "folder": tmp_path,
              "missing-folder": tmp_path / "no" / "where.jpg"}[kind]
    with pytest.raises(InputError, match=fragment):
        load_image(target)


def test_truncation_detected_even_when_pil_is_told_to_allow_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    path = fac.write(tmp_path / "half.jpg", _jpeg()[: len(_jpeg()) // 2])
    with pytest.raises(InputError, match="truncated"):
        load_image(path)


def test_jpeg_with_trailer_after_eoi_is_fine(tmp_path):
    # motion photos and some cameras append data after the end-of-image marker
    path = fac.write(tmp_path / "motion.jpg", _jpeg() + b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    assert load_image(path).pixels.shape == (64, 96, 3)


def test_exif_thumbnail_with_its_own_eoi_does_not_hide_truncation(tmp_path):
    thumb = fac.encode(np.zeros((8, 8, 3), np.uint8), "JPEG")
    data = fac.encode(fac.asymmetric_rgb(64, 96), "JPEG", exif=fac.exif_with_thumbnail(thumb))
    path = fac.write(tmp_path / "t.jpg", data[:-2])
    with pytest.raises(InputError, match="truncated"):
        load_image(path)


# ----------------------------------------------------------------------------------- pixel limit

def test_pixel_limit_checked_from_header(tmp_path):
    path = fac.write(tmp_path / "big.jpg", _jpeg())  # 96 x 64 = 6144 px
    assert load_image(path, max_pixels=6144).width == 96
    with pytest.raises(InputError, match=r"96x64 is 0\.0 MP, over the 0\.0 MP limit; downscale"):
        load_image(path, max_pixels=6143)


def test_pixel_limit_before_decoding_on_a_bomb_header(tmp_path):
    # header says 12000 x 9000 (108 MP) but there are only a few bytes of data: if we decoded first we
    # would get "truncated"; the limit must answer from the header alone.
    path = fac.write(tmp_path / "bomb.png", fac.png_with_header_only(12_000, 9_000))
    with pytest.raises(InputError, match="over the 100.0 MP limit"):
        load_image(path)
    assert DEFAULT_MAX_PIXELS == 100_000_000


def test_pil_bomb_error_becomes_input_error(tmp_path):
    path = fac.write(tmp_path / "bomb.png", fac.png_with_header_only(20_000, 20_000))  # 400 MP > PIL's 179 MP
    with pytest.raises(InputError, match="downscale"):
        load_image(path, max_pixels=10**10)


def test_no_pil_bomb_warning_escapes(tmp_path):
    path = fac.write(tmp_path / "b.png", fac.png_with_header_only(10_000, 9_500))  # 95 MP: PIL warns, we allow
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="truncated"):
            load_image(path)


def test_array_over_limit():
    with pytest.raises(InputError, match="over the"):
        load_image(np.zeros((10, 10, 3), np.uint8), max_pixels=99)


# ----------------------------------------------------------------------------------- orientation

@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_reset(tmp_path, orientation, fmt):
    upright = fac.asymmetric_rgb(24, 36)
    stored = fac.stored_for_orientation(upright, orientation)
    ext = ".png" if fmt == "PNG" else ".jpg"
    extra = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}
    src = fac.write(tmp_path / f"o{orientation}{ext}",
                    fac.encode(stored, fmt, exif=fac.exif_bytes(orientation=orientation,
                                                              pixel_size=stored.shape[1::-1]), **extra))
    img = load_image(src)
    assert img.metadata.orientation == orientation
    assert img.pixels.shape == upright.shape
    diff = np.abs(img.pixels.astype(int) - upright).max()
    assert diff == 0 if fmt == "PNG" else diff <= 8
    # saved with the rotation baked in and the tag reset: a viewer shows it upright, once
    out = save_image(img.pixels, tmp_path / f"out{ext}", like=img)
    ex = _exif_of(out)
    assert ex.get(0x0112) == 1
    assert ex.get_ifd(0x8769)[0xA002] == 36 and ex.get_ifd(0x8769)[0xA003] == 24  # upright size
    again = load_image(out)
    assert again.metadata.orientation == 1
    assert np.abs(again.pixels.astype(int) - img.pixels).max() <= (0 if fmt == "PNG" else 16)


def test_xmp_orientation_reset(tmp_path):
    src = fac.write(tmp_path / "x.jpg", fac.encode(fac.asymmetric_rgb(), "JPEG", exif=fac.exif_bytes(orientation=6),
                                                   xmp=fac.xmp_packet(orientation=6)))
    img = load_image(src)
    assert b'tiff:Orientation="1"' in img.metadata.xmp
    out = save_image(img, tmp_path / "o.jpg")
    with PILImage.open(out) as im:
        assert b'tiff:Orientation="1"' in im.info["xmp"]


@pytest.mark.parametrize("value", [0, 9, 255])
def test_invalid_orientation_treated_as_upright(tmp_path, value):
    up = fac.asymmetric_rgb()
    src = fac.write(tmp_path / "x.png", fac.encode(up, "PNG", exif=fac.exif_bytes(orientation=value)))
    img = load_image(src)
    assert img.metadata.orientation == 1
    assert np.array_equal(img.pixels, up)


# ----------------------------------------------------------------------------------- modes & formats

def _rgb16_tiff() -> bytes:
    tifffile = pytest.importorskip("tifffile")
    arr = (fac.asymmetric_rgb().astype(np.uint16) * 257)
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, photometric="rgb")
    return buf.getvalue()


def _expect(img: Image, expected: np.ndarray, tol: int = 0) -> None:
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == expected.shape
    assert np.abs(img.pixels.astype(int) - expected.astype(int)).max() <= tol


def test_gray_png(tmp_path):
    g = np.tile(np.arange(0, 240, 10, dtype=np.uint8), (10, 1))
    img = load_image(fac.write(tmp_path / "g.png", fac.encode(g, "PNG")))
    _expect(img, np.repeat(g[:, :, None], 3, 2))
    assert img.alpha is None and img.metadata.source_mode == "L"


def test_bilevel_png(tmp_path):
    b = np.zeros((8, 8), bool)
    b[:4] = True
    img = load_image(fac.write(tmp_path / "b.png", fac.encode(PILImage.fromarray(b), "PNG")))
    _expect(img, np.repeat((b * 255).astype(np.uint8)[:, :, None], 3, 2))


@pytest.mark.parametrize("path_name", ["g16.png", "g16.tif"])
def test_16bit_gray(tmp_path, path_name):
    a16 = np.array([[0, 257, 65535], [32896, 514, 1000]], np.uint16)
    fmt = "PNG" if path_name.endswith("png") else "TIFF"
    img = load_image(fac.write(tmp_path / path_name, fac.encode(PILImage.fromarray(a16), fmt)))
    assert img.metadata.source_mode.startswith("I;16")
    expected = np.round(a16 / 257).astype(np.uint8)
    _expect(img, np.repeat(expected[:, :, None], 3, 2))


def test_16bit_rgb_tiff(tmp_path):
    img = load_image(fac.write(tmp_path / "rgb16.tif", _rgb16_tiff()))
    _expect(img, fac.asymmetric_rgb(), tol=1)


def test_cmyk_jpeg(tmp_path):
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[:, :8, 0] = 255  # cyan on the left, paper white on the right
    data = fac.encode(PILImage.fromarray(cmyk, mode="CMYK"), "JPEG", quality=100)
    img = load_image(fac.write(tmp_path / "c.jpg", data))
    assert img.metadata.source_mode == "CMYK"
    assert img.pixels[:, :8].mean(axis=(0, 1))[0] < 30 and img.pixels[:, :8, 1:].mean() > 220
    assert img.pixels[:, 8:].min() > 220


def test_cmyk_profile_is_not_carried_to_rgb_output(tmp_path):
    cmyk = np.full((16, 16, 4), 40, np.uint8)
    data = fac.encode(PILImage.fromarray(cmyk, mode="CMYK"), "JPEG", icc_profile=fac.fake_icc(b"CMYK"))
    img = load_image(fac.write(tmp_path / "c.jpg", data))
    assert img.metadata.icc_profile is None
    out = save_image(img, tmp_path / "o.jpg", metadata="keep")
    with PILImage.open(out) as im:
        assert "icc_profile" not in im.info or not im.info["icc_profile"]


def test_palette_without_and_with_transparency(tmp_path):
    rgb = fac.asymmetric_rgb()
    p = PILImage.fromarray(rgb).quantize(4)
    img = load_image(fac.write(tmp_path / "p.png", fac.encode(p, "PNG")))
    _expect(img, rgb, tol=2)
    assert img.alpha is None
    pal_index = np.asarray(p)[0, 0]
    img_t = load_image(fac.write(tmp_path / "pt.png", fac.encode(p, "PNG", transparency=int(pal_index))))
    assert img_t.alpha is not None
    expected_alpha = np.where(np.asarray(p) == pal_index, 0, 255)
    assert np.array_equal(img_t.alpha, expected_alpha)


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha_inputs(tmp_path, mode):
    rgb = fac.asymmetric_rgb()
    a = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    if mode == "LA":
        gray = rgb[:, :, 1]
        im = PILImage.fromarray(np.dstack([gray, a]), mode="LA")
        expected = np.repeat(gray[:, :, None], 3, 2)
    else:
        im = PILImage.fromarray(np.dstack([rgb, a]), mode="RGBA")
        expected = rgb
    img = load_image(fac.write(tmp_path / "a.png", fac.encode(im, "PNG")))
    _expect(img, expected)
    assert np.array_equal(img.alpha, a)
    assert not img.alpha.flags.writeable


@pytest.mark.parametrize("ext", [".png", ".webp", ".tif"])
def test_alpha_round_trip(tmp_path, ext):
    rgb = fac.asymmetric_rgb()
    a = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    img = load_image(fac.write(tmp_path / "a.png", fac.encode(np.dstack([rgb, a]), "PNG")))
    back = load_image(save_image(img.pixels, tmp_path / f"o{ext}", like=img))
    assert np.array_equal(back.alpha, a)
    if ext != ".webp":
        assert np.array_equal(back.pixels, rgb)


def test_alpha_dropped_for_jpeg(tmp_path):
    rgba = np.dstack([fac.asymmetric_rgb(), np.full((24, 36), 128, np.uint8)])
    img = load_image(rgba)
    back = load_image(save_image(img, tmp_path / "o.jpg"))
    assert back.alpha is None


@pytest.mark.parametrize(("fmt", "ext"), [("BMP", ".bmp"), ("WEBP", ".webp"), ("TIFF", ".tif"), ("JPEG", ".jpeg")])
def test_other_formats_load(tmp_path, fmt, ext):
    rgb = fac.asymmetric_rgb()
    kw = {"lossless": True} if fmt == "WEBP" else {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    img = load_image(fac.write(tmp_path / f"x{ext}", fac.encode(rgb, fmt, **kw)))
    _expect(img, rgb, tol=10 if fmt == "JPEG" else 0)
    assert img.metadata.format == fmt


def test_mpo_first_picture(tmp_path):
    a, b = fac.asymmetric_rgb(), np.zeros((24, 36, 3), np.uint8)
    data = fac.encode(PILImage.fromarray(a), "MPO", save_all=True, append_images=[PILImage.fromarray(b)],
                      quality=95, subsampling=0)
    img = load_image(fac.write(tmp_path / "cam.jpg", data))
    _expect(img, a, tol=10)


def test_content_decides_not_extension(tmp_path):
    rgb = fac.asymmetric_rgb()
    img = load_image(fac.write(tmp_path / "really_png.jpg", fac.encode(rgb, "PNG")))
    _expect(img, rgb)
    assert img.metadata.format == "PNG"


# ----------------------------------------------------------------------------------- Image / arrays

def test_pixels_read_only_and_caller_array_untouched():
    arr = fac.asymmetric_rgb()
    img = load_image(arr)
    assert not img.pixels.flags.writeable
    with pytest.raises(ValueError):
        img.pixels[0, 0, 0] = 1
    arr[0, 0, 0] = 7
    assert img.pixels[0, 0, 0] != 7  # a copy, not a view of the caller's array
    assert isinstance(img.metadata, ImageMetadata)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros(5, np.uint8)])
def test_bad_arrays(bad):
    with pytest.raises(InputError, match="uint8"):
        load_image(bad)


def test_pil_image_source_and_image_passthrough():
    pil = PILImage.fromarray(fac.asymmetric_rgb()).convert("L")
    img = load_image(pil)
    assert img.pixels.shape == (24, 36, 3) and img.metadata.source_mode == "L"
    assert load_image(img) is img


# ----------------------------------------------------------------------------------- metadata

def _rich_jpeg(tmp_path: Path, *, xmp_gps: str = "attr") -> Image:
    thumb_ps = fac.encode(np.zeros((4, 4, 3), np.uint8), "JPEG")
    app13 = fac.app13_segment(fac.irb({0x0404: fac.iptc_record(), 0x040C: thumb_ps}))
    data = fac.encode(fac.asymmetric_rgb(), "JPEG", exif=fac.exif_bytes(gps=True), icc_profile=fac.srgb_icc(),
                      xmp=fac.xmp_packet(gps=xmp_gps), comment=b"shot by Ada", extra=app13, dpi=(300, 300))
    img = load_image(fac.write(tmp_path / "rich.jpg", data))
    assert img.metadata.has_gps
    return img


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
@pytest.mark.parametrize("policy", METADATA_POLICIES)
def test_gps_and_icc_per_policy(tmp_path, policy, ext):
    img = _rich_jpeg(tmp_path)
    out = save_image(img.pixels, tmp_path / f"out{ext}", like=img, metadata=policy)
    ex = _exif_of(out)
    assert _has_gps_ifd(out) == (policy == "keep")
    if policy == "keep":
        assert ex.get_ifd(0x8825)[2] == fac.GPS_LAT
    assert (ex.get(0x010F) == "TestCam") == (policy != "strip-all")  # other EXIF survives strip-gps
    with PILImage.open(out) as im:
        assert (im.info.get("icc_profile") == fac.srgb_icc()) == (policy != "strip-all")
        xmp = im.info.get("xmp")
    back = load_image(out)
    assert back.metadata.has_gps == (policy == "keep")
    if policy == "strip-all":
        assert not xmp and back.metadata.exif is None
    else:
        assert b"<rdf:li>Ada</rdf:li>" in xmp and (b"GPSLatitude" in xmp) == (policy == "keep")


@pytest.mark.parametrize("style", ["attr", "elem"])
def test_xmp_gps_removed_rest_kept(style):
    packet = fac.xmp_packet(gps=style, orientation=1)
    assert b"GPS" in packet
    cleaned = strip_xmp_gps(packet)
    assert cleaned is not None and b"GPS" not in cleaned
    assert b"<rdf:li>Ada</rdf:li>" in cleaned and b'tiff:Orientation="1"' in cleaned
    assert cleaned.count(b"<rdf:Description") == 1 and cleaned.endswith(b'<?xpacket end="w"?>')


def test_xmp_with_unusual_gps_layout_is_dropped_whole():
    packet = fac.xmp_packet().replace(b"</rdf:Description>", b"<exif:GPSLatitude>52N</rdf:Description>")
    assert strip_xmp_gps(packet) is None


def test_iptc_comment_dpi_per_policy(tmp_path):
    img = _rich_jpeg(tmp_path)
    for policy in METADATA_POLICIES:
        out = save_image(img, tmp_path / f"{policy}.jpg", metadata=policy)
        with PILImage.open(out) as im:
            ps = im.info.get("photoshop", {})
            assert (ps.get(0x0404) == fac.iptc_record()) == (policy != "strip-all")
            assert 0x040C not in ps  # the stale thumbnail never survives
            assert (im.info.get("comment") == b"shot by Ada") == (policy != "strip-all")
            assert tuple(round(v) for v in im.info["dpi"]) == (300, 300)


def test_exif_thumbnail_is_dropped(tmp_path):
    thumb = fac.encode(np.full((8, 8, 3), 200, np.uint8), "JPEG")
    src = fac.write(tmp_path / "t.jpg", fac.encode(fac.asymmetric_rgb(), "JPEG", exif=fac.exif_with_thumbnail(thumb)))
    with PILImage.open(src) as im:
        assert im.getexif().get_ifd(ExifTags.IFD.IFD1)  # the source really has an IFD1 thumbnail
    img = load_image(src)
    out = save_image(img, tmp_path / "o.jpg", metadata="keep")
    ex = _exif_of(out)
    assert ex.get(0x010F) == "ThumbCam" and not ex.get_ifd(ExifTags.IFD.IFD1)
    assert out.read_bytes().count(b"\xff\xd8") == 1


def test_photoshop_embedded_xmp_dropped_on_strip_gps(tmp_path):
    app13 = fac.app13_segment(fac.irb({0x0404: fac.iptc_record(), 0x0424: fac.xmp_packet(gps="attr")}))
    src = fac.write(tmp_path / "p.jpg", fac.encode(fac.asymmetric_rgb(), "JPEG", extra=app13))
    img = load_image(src)
    with PILImage.open(save_image(img, tmp_path / "o.jpg", metadata="strip-gps")) as im:
        assert set(im.info["photoshop"]) == {0x0404}
    with PILImage.open(save_image(img, tmp_path / "k.jpg", metadata="keep")) as im:
        assert set(im.info["photoshop"]) == {0x0404, 0x0424}


def test_bmp_output_has_no_metadata(tmp_path):
    img = _rich_jpeg(tmp_path)
    out = save_image(img, tmp_path / "o.bmp", metadata="keep")
    assert load_image(out).metadata.exif is None


def test_unknown_policy(tmp_path):
    with pytest.raises(InputError, match="strip-gps"):
        save_image(fac.asymmetric_rgb(), tmp_path / "o.png", metadata="strip-some")


# ----------------------------------------------------------------------------------- atomic save

def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(("exc", "expected"), [(OSError(28, "No space left on device"), InputError),
                                               (RuntimeError("encoder crashed"), RuntimeError),
                                               (KeyboardInterrupt(), KeyboardInterrupt)])
def test_failed_save_leaves_no_temp_and_keeps_old_file(tmp_path, monkeypatch, exc, expected):
    out = tmp_path / "out.jpg"
    out.write_bytes(b"previous result")
    before = _listing(tmp_path)

    def broken_save(self, fp, format=None, **params):  # noqa: A002 - PIL's own parameter name
        fp.write(b"partial")
        raise exc

    monkeypatch.setattr(PILImage.Image, "save", broken_save)
    with pytest.raises(expected) as info:
        save_image(fac.asymmetric_rgb(), out)
    if expected is InputError:
        assert "could not write" in str(info.value) and "\n" not in str(info.value)
    assert _listing(tmp_path) == before
    assert out.read_bytes() == b"previous result"


def test_save_permissions_and_format_by_extension(tmp_path):
    old = os.umask(0o022)
    try:
        for ext, fmt in [(".jpg", "JPEG"), (".JPEG", "JPEG"), (".png", "PNG"), (".bmp", "BMP"),
                         (".webp", "WEBP"), (".tiff", "TIFF")]:
            out = save_image(fac.asymmetric_rgb(), tmp_path / f"o{ext}")
            with PILImage.open(out) as im:
                assert im.format == fmt
            assert out.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    assert _listing(tmp_path) == sorted(f"o{e}" for e in (".jpg", ".JPEG", ".png", ".bmp", ".webp", ".tiff"))


@pytest.mark.parametrize(("name", "fragment"), [("o.gif", "unknown output format '.gif'"),
                                                ("noext", "(no extension)"),
                                                ("missing/o.png", "does not exist")])
def test_save_rejects_bad_paths(tmp_path, name, fragment):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        save_image(fac.asymmetric_rgb(), tmp_path / name)


def test_save_rejects_bad_pixels(tmp_path):
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8"):
        save_image(np.zeros((4, 4), np.uint8), tmp_path / "o.png")


def test_webp_side_limit_checked_before_encoding(tmp_path):
    big = np.broadcast_to(np.zeros(3, np.uint8), (2, 17_000, 3))
    with pytest.raises(InputError, match="too large for WEBP"):
        save_image(big, tmp_path / "o.webp")


# ----------------------------------------------------------------------------------- check_output_path

def _make_unwritable_cases(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "x.txt").write_text("a file, not a folder")
    (tmp_path / "dir.png").mkdir()
    return {"ext": tmp_path / "out.gif", "noext": tmp_path / "out", "missing": tmp_path / "nope" / "o.jpg",
            "under-file": tmp_path / "x.txt" / "out.jpg", "is-dir": tmp_path / "dir.png"}


@pytest.mark.parametrize(("case", "fragment"), [
    ("ext", "unknown output format '.gif'"),
    ("noext", "unknown output format '(no extension)'"),
    ("missing", "does not exist; create it first"),
    ("under-file", "is a file, not a folder"),
    ("is-dir", "is a folder; give a file name"),
])
def test_check_output_path_rejects(tmp_path, case, fragment):
    with pytest.raises(InputError) as info:
        check_output_path(_make_unwritable_cases(tmp_path)[case])
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_check_output_path_unwritable_folder():
    # /sys refuses new files even to root in ordinary containers; skip where it does not
    try:
        import tempfile
        with tempfile.TemporaryFile(dir="/sys"):
            pytest.skip("/sys is writable here")
    except OSError:
        pass
    with pytest.raises(InputError, match="is not writable"):
        check_output_path("/sys/out.png")


def test_check_output_path_refuses_input(tmp_path):
    src = fac.write(tmp_path / "in.jpg", _jpeg())
    (tmp_path / "sub").mkdir()
    link = tmp_path / "sub" / "link.jpg"
    link.symlink_to(src)
    hard = tmp_path / "hard.jpg"
    os.link(src, hard)
    for same in (src, tmp_path / "sub" / ".." / "in.jpg", link, hard):
        with pytest.raises(InputError, match="refusing to overwrite the input .*pass `overwrite=True`") as info:
            check_output_path(same, input_path=src)
        assert info.value.param == "overwrite"
        assert check_output_path(same, input_path=src, overwrite=True) == Path(same)
    assert check_output_path(tmp_path / "other.jpg", input_path=src) == tmp_path / "other.jpg"
    assert _listing(tmp_path) == ["hard.jpg", "in.jpg", "sub"]  # the probe left nothing behind


def test_check_output_path_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_path("out.png") == Path("out.png")


# ----------------------------------------------------------------------------------- real photos

@pytest.mark.devset
def test_devset_photos_round_trip(tmp_path):
    if not DEVSET.is_dir():
        pytest.skip("../shared/data is absent")
    for src in sorted(DEVSET.glob("*.jpg"))[:3]:
        img = load_image(src)
        assert img.pixels.ndim == 3 and img.sha256 and img.metadata.format == "JPEG"
        out = save_image(img, tmp_path / f"{src.stem}.png", metadata="strip-all")
        back = load_image(out)
        assert np.array_equal(back.pixels, img.pixels)
