"""Load and save photos: validation, EXIF orientation, metadata policy, atomic writes.

Pixel convention everywhere in person_erase: (H, W, 3) uint8 RGB with the EXIF orientation already
applied. Alpha (if the input had it) travels beside the pixels in ``Image.alpha`` and is written back
when the output format can hold it (PNG, WEBP, TIFF); JPEG and BMP outputs drop it.

Inputs: JPEG (also MPO, the multi-picture JPEG some cameras write: its first picture), PNG, BMP, WEBP and
TIFF, single frame. Grayscale, bilevel, palette (with or without transparency), 16-bit (``I;16`` PNG/TIFF,
16-bit RGB TIFF), CMYK, LA and RGBA sources all become RGB uint8; ``ImageMetadata.source_mode`` records
what the source was. Pixels stored with a non-RGB ICC profile (CMYK, gray) are converted to sRGB through
that profile and the profile is dropped, so an output never carries a profile that does not match it.

Metadata policies for :func:`save_image` (``METADATA_POLICIES``):

``keep``
    EXIF (orientation reset to 1, because the rotation is baked into the pixels), XMP, ICC profile,
    IPTC (JPEG APP13 / Photoshop resources), JPEG comment and DPI are written where the output format
    can hold them.
``strip-gps``
    as ``keep``, minus the EXIF GPS IFD, minus every ``…:GPS…`` attribute or element of the XMP packet
    (if GPS names would still remain after that, the whole XMP packet is dropped), minus the Photoshop
    resources that embed EXIF or XMP copies. IPTC has no GPS fields and is kept.
``strip-all``
    no EXIF, XMP, ICC, IPTC or comment at all (DPI stays: it is not metadata about the scene).

Always, whatever the policy: embedded preview thumbnails (EXIF IFD1, XMP ``xmp:Thumbnails``, Photoshop
thumbnail resources) are dropped, because they would still show the people that were erased.

Where each piece can go: JPEG and WEBP hold all of EXIF/XMP/ICC (IPTC and comment: JPEG only); PNG holds
EXIF (eXIf), XMP (iTXt) and ICC; TIFF holds EXIF tags, XMP (tag 700) and ICC; BMP holds nothing.

Errors are :class:`~person_erase.errors.InputError` with one readable line that says what to do.
"""

from __future__ import annotations

import hashlib
import io as _io
import os
import re
import struct
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from PIL import Image as PILImage
from PIL import ImageCms, PngImagePlugin, UnidentifiedImageError

from .errors import InputError
from .pixels import check_rgb
from .settings import DEFAULT_MAX_PIXELS

MetadataPolicy = Literal["keep", "strip-gps", "strip-all"]
METADATA_POLICIES: tuple[str, ...] = ("keep", "strip-gps", "strip-all")

# DEFAULT_MAX_PIXELS (settings): images with more pixels are refused, checked from the header before
# any pixel is decoded. PIL's own hard limit (2 x ``PIL.Image.MAX_IMAGE_PIXELS``, about 179 MP) still
# applies on top of a larger ``max_pixels``.

#: Formats accepted on input (PIL format ids). MPO is what PIL calls a JPEG with extra pictures.
LOAD_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
_SUPPORTED_TEXT = "JPEG, PNG, BMP, WEBP or TIFF"

#: Output extension -> PIL format.
SAVE_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
_MAX_SIDE = {"JPEG": 65_535, "WEBP": 16_383, "PNG": 2**31 - 1, "BMP": 2**31 - 1, "TIFF": 2**32 - 1}

_TAG_ORIENTATION = 0x0112
_TAG_EXIF_IFD = 0x8769
_TAG_GPS_IFD = 0x8825
_TAG_MAKERNOTE = 0x927C
_TAG_PIXEL_X, _TAG_PIXEL_Y = 0xA002, 0xA003
_TAG_XMP = 700
# TIFF tags that describe the source file's layout, not the scene: never carried into an output's EXIF
# (resolution travels as ImageMetadata.dpi instead).
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 269, 273, 277, 278, 279, 280, 281, 282, 283, 284, 285, 290, 291,
    292, 293, 296, 297, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 332, 338, 339, 340, 341, 347, 512,
    513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532, 700, 32995, 32996, 32997, 32998, 33723,
    34377, 34675, 37724, 50838, 50839,
})
_JPEG_MAX_SEGMENT = 65_533  # payload bytes in one JPEG marker segment (after the 2 length bytes)
_PS_HEADER = b"Photoshop 3.0\x00"
_PS_THUMBNAILS = {0x0409, 0x040C}
_PS_EMBEDDED_EXIF_XMP = {0x0422, 0x0423, 0x0424}

_TRANSPOSE = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ImageMetadata:
    """What the input carried besides pixels (everything, whatever policy will be used on save).

    Attributes:
        format: PIL format name of the source (``"JPEG"``, ``"PNG"``, …; ``"MPO"`` is a multi-picture
            JPEG) or ``None`` for arrays.
        orientation: the EXIF orientation tag the file had (1..8; 1 = upright); already applied.
        exif: EXIF bytes (``b"Exif\\0\\0"`` + TIFF structure) for the upright image: orientation 1, no
            IFD1 thumbnail, GPS still present. ``None`` when the source had none or it was unreadable.
        icc_profile: an RGB ICC profile, or ``None`` (non-RGB profiles are applied on load and dropped).
        xmp: XMP packet bytes (orientation reset to 1, thumbnails removed, GPS still present) or ``None``.
        iptc: Photoshop image resources from JPEG APP13 (the IPTC record is resource 0x0404), without
            the header, thumbnails removed; or ``None``.
        comment: JPEG COM text, or ``None``.
        dpi: (x, y) resolution in dots per inch, or ``None``.
        source_mode: PIL mode of the source (``"RGB"``, ``"L"``, ``"I;16"``, ``"CMYK"``, ``"RGBA"``, …).
        extra: free-form notes about the load (e.g. ``{"color": "CMYK ICC -> sRGB"}``).
    """

    format: str | None = None
    orientation: int = 1
    exif: bytes | None = None
    icc_profile: bytes | None = None
    xmp: bytes | None = None
    source_mode: str = "RGB"
    extra: dict[str, Any] = field(default_factory=dict)
    iptc: bytes | None = None
    comment: bytes | None = None
    dpi: tuple[float, float] | None = None

    @property
    def has_gps(self) -> bool:
        """True when the EXIF has a GPS IFD or the XMP names a GPS property."""
        if self.xmp and _XMP_GPS_NAME.search(self.xmp):
            return True
        if not self.exif:
            return False
        try:
            ex = PILImage.Exif()
            ex.load(self.exif)
            return _TAG_GPS_IFD in ex
        except Exception:  # noqa: BLE001 - unreadable EXIF has no GPS we could find either
            return False


@dataclass(frozen=True, eq=False)
class Image:
    """A loaded photo.

    Attributes:
        pixels: (H, W, 3) uint8 RGB, orientation applied, read-only.
        metadata: ``ImageMetadata``.
        alpha: (H, W) uint8 alpha channel (255 = opaque), read-only, or ``None``.
        path: where it was read from, or ``None``.
        sha256: hex digest of the source file's bytes (of the pixels for arrays).
    """

    pixels: np.ndarray
    metadata: ImageMetadata = field(default_factory=ImageMetadata)
    alpha: np.ndarray | None = None
    path: Path | None = None
    sha256: str = ""

    def __post_init__(self) -> None:
        px = check_rgb(self.pixels, who="Image", param="pixels")
        px = px.copy() if px.flags.writeable else px
        px.setflags(write=False)
        object.__setattr__(self, "pixels", px)
        if self.alpha is not None:
            al = np.asarray(self.alpha)
            if al.shape != px.shape[:2] or al.dtype != np.uint8:
                raise InputError(
                    f"Image.alpha must be (H, W) = {px.shape[:2]} uint8, got shape {al.shape} dtype {al.dtype}"
                )
            al = al.copy() if al.flags.writeable else al
            al.setflags(write=False)
            object.__setattr__(self, "alpha", al)
        if not self.sha256:
            object.__setattr__(self, "sha256", hashlib.sha256(px.tobytes()).hexdigest())

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def name(self) -> str:
        return self.path.name if self.path else "<array>"

    def _repr_png_(self) -> bytes:
        buf = _io.BytesIO()
        PILImage.fromarray(self.pixels).save(buf, format="PNG")
        return buf.getvalue()

    def __repr__(self) -> str:
        return f"Image({self.name!r}, {self.width}x{self.height})"


# --------------------------------------------------------------------------------------------- load


def load_image(source: str | os.PathLike[str] | np.ndarray | PILImage.Image | Image, *,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Read a photo into an ``Image`` (RGB uint8, EXIF orientation applied).

    Args:
        source: a path; an (H, W, 3) uint8 RGB array ((H, W) gray and (H, W, 4) RGBA also accepted);
            a PIL image; or an ``Image`` (returned as is).
        max_pixels: refuse images with more pixels than this, checked from the header before decoding.

    Returns:
        ``Image`` with pixels (H, W, 3) uint8 RGB, ``alpha`` (H, W) uint8 or ``None``, and metadata.

    Raises:
        InputError: missing, a folder, empty, truncated, not an image, unsupported or animated format,
            or over ``max_pixels``; the message names the file and says what to do.
    """
    if isinstance(source, Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels=max_pixels)
    if isinstance(source, PILImage.Image):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            return _decode(source, path=None, digest="", data=None, max_pixels=max_pixels)
    path = Path(source)
    data = _read_file(path)
    digest = hashlib.sha256(data).hexdigest()
    try:
        # Our own max_pixels check (below, from the header) is the guard; PIL's warning would only
        # repeat it on stderr, so it is silenced here. PIL's hard error is turned into ours.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(_io.BytesIO(data), formats=LOAD_FORMATS) as im:
                return _decode(im, path=path, digest=digest, data=data, max_pixels=max_pixels)
    except PILImage.DecompressionBombError as exc:
        raise InputError(
            f"{path}: {exc.args[0] if exc.args else 'too many pixels'}; downscale it first "
            "(or raise PIL.Image.MAX_IMAGE_PIXELS and PERSON_ERASE_MAX_PIXELS / max_pixels if you trust the file)"
        ) from None
    except UnidentifiedImageError:
        raise InputError(_unidentified_message(path, data)) from None
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
            ZeroDivisionError, MemoryError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"{path}: the image is damaged or truncated ({detail}); re-export or re-download it"
        ) from None


def check_regular_file(
    path: Path, *, what: str = "an image file", folder_hint: str = " (use 'person-erase batch' for folders)"
) -> None:
    """Refuse a path that cannot be read as one file without blocking: missing, a folder, or not a
    regular file (a FIFO or a device would block the read forever or never end).

    Raises:
        InputError: naming ``path`` and saying what to give instead (``what``).
    """
    if not path.exists():
        hint = "; check the path" if path.parent.is_dir() or str(path.parent) in ("", ".") else (
            f"; the folder {path.parent} does not exist either")
        raise InputError(f"{path}: no such file{hint}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give {what}{folder_hint}")
    if not path.is_file():
        raise InputError(f"{path}: is not a regular file (a pipe or device?); give {what}")


def _read_file(path: Path) -> bytes:
    check_regular_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    if not data:
        raise InputError(f"{path}: the file is empty (0 bytes); re-export or re-download it")
    return data


_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF87a", 0, "a GIF"), (b"GIF89a", 0, "a GIF"), (b"%PDF", 0, "a PDF document"),
    (b"\x00\x00\x01\x00", 0, "an ICO icon"), (b"\x00\x00\x02\x00", 0, "a CUR cursor"),
    (b"ftypheic", 4, "a HEIC image"), (b"ftypheix", 4, "a HEIC image"), (b"ftypmif1", 4, "a HEIF image"),
    (b"ftypavif", 4, "an AVIF image"), (b"8BPS", 0, "a Photoshop PSD"), (b"\x00\x00\x00\x0cjP  ", 0, "a JPEG 2000"),
    (b"\xff\x4f\xff\x51", 0, "a JPEG 2000"), (b"PK\x03\x04", 0, "a ZIP archive"), (b"II*\x00", 0, "a TIFF"),
    (b"MM\x00*", 0, "a TIFF"), (b"RIFF", 0, "a RIFF file that is not WEBP"), (b"icns", 0, "an ICNS icon"),
    (b"\x1a\x45\xdf\xa3", 0, "a video"), (b"\x00\x00\x00", 0, "a video or unknown binary"),
)


def _unidentified_message(path: Path, data: bytes) -> str:
    head = data[:64]
    what = None
    for magic, offset, name in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            what = name
            break
    if what is None and head.startswith((b"\xff\xd8", b"\x89PNG", b"BM")):
        return f"{path}: the image header is damaged; re-export or re-download it"
    if what == "a TIFF":
        return f"{path}: a TIFF variant PIL cannot read; re-save it as an 8-bit or 16-bit RGB TIFF, PNG or JPEG"
    if what is None:
        text = head.lstrip(b"\xef\xbb\xbf").lstrip()
        if text[:1] == b"<" and (b"html" in head.lower() or b"<!doctype" in head.lower()):
            what = "an HTML page (a failed download?)"
        elif text[:5] == b"<?xml" or text[:4] == b"<svg":
            what = "an XML/SVG file"
        elif head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
            what = "text"
    found = f"it is {what}" if what else "the contents are not a recognised image"
    return f"{path}: not a supported image ({found}); use {_SUPPORTED_TEXT} (convert it first)"


def _from_array(arr: np.ndarray, *, max_pixels: int) -> Image:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise InputError(
            f"an image array must be (H, W, 3) uint8 RGB (or (H, W) gray / (H, W, 4) RGBA), "
            f"got shape {arr.shape} dtype {arr.dtype}; convert it with skimage.util.img_as_ubyte first"
        )
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise InputError(_too_big("array", arr.shape[1], arr.shape[0], max_pixels))
    alpha = arr[:, :, 3].copy() if arr.shape[2] == 4 else None
    return Image(pixels=np.ascontiguousarray(arr[:, :, :3]), alpha=alpha)


def _too_big(what: str, w: int, h: int, max_pixels: int) -> str:
    return (
        f"{what}: {w}x{h} is {w * h / 1e6:.1f} MP, over the {max_pixels / 1e6:.1f} MP limit; "
        "downscale it first or raise the limit (PERSON_ERASE_MAX_PIXELS, or max_pixels in Python) if you trust the file"
    )


def _decode(im: PILImage.Image, *, path: Path | None, digest: str, data: bytes | None,
            max_pixels: int) -> Image:
    label = str(path) if path else "image"
    fmt = im.format
    if fmt is not None and fmt not in LOAD_FORMATS + ("MPO",):
        raise InputError(f"{label}: {fmt} images are not supported; use {_SUPPORTED_TEXT} (convert it first)")
    w, h = im.size
    if w * h > max_pixels:  # from the header: nothing decoded yet
        raise InputError(_too_big(label, w, h, max_pixels))
    if w == 0 or h == 0:
        raise InputError(f"{label}: the image has no pixels ({w}x{h}); re-export it")
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > 1 and fmt != "MPO":
        kind = "pages" if fmt == "TIFF" else "frames (animated)"
        raise InputError(f"{label}: has {frames} {kind}; only single-frame images are supported; "
                         "export the one frame you want as PNG or JPEG")
    if data is not None and fmt is not None:
        _check_complete(label, fmt, data)
    im.load()  # decode now: truncation raises here (OSError), not later
    info = dict(im.info)
    source_mode = im.mode
    orientation, exif_bytes = _read_exif(im, fmt)
    icc = info.get("icc_profile") or None
    xmp = info.get("xmp")
    xmp = _clean_xmp(xmp) if isinstance(xmp, bytes) and xmp else None
    iptc = _read_iptc(im) if fmt in ("JPEG", "MPO") else None
    comment = info.get("comment") if isinstance(info.get("comment"), bytes) and info.get("comment") else None
    dpi = _read_dpi(info)
    extra: dict[str, Any] = {}

    if source_mode == "F":
        raise InputError(f"{label}: 32-bit float images are not supported; save it as 8 or 16-bit first")
    rgb, alpha_im = _to_rgb(im, icc, extra)
    if icc is not None and _icc_space(icc) != b"RGB ":
        icc = None  # applied by _to_rgb (or unusable): an RGB output must not carry it
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
        alpha_im = alpha_im.transpose(_TRANSPOSE[orientation]) if alpha_im is not None else None
    md = ImageMetadata(
        format=fmt, orientation=orientation, exif=exif_bytes, icc_profile=icc, xmp=xmp,
        source_mode=source_mode, extra=extra, iptc=iptc, comment=comment, dpi=dpi,
    )
    alpha = np.asarray(alpha_im, dtype=np.uint8) if alpha_im is not None else None
    return Image(pixels=np.asarray(rgb, dtype=np.uint8), metadata=md, alpha=alpha, path=path,
                 sha256=digest)


def _check_complete(label: str, fmt: str, data: bytes) -> None:
    """Catch truncation PIL lets through (PNG without IEND; anything when LOAD_TRUNCATED_IMAGES is on)."""
    problem = None
    if fmt in ("JPEG", "MPO"):
        problem = _jpeg_problem(data)
    elif fmt == "PNG":
        problem = _png_problem(data)
    elif fmt == "WEBP" and len(data) >= 8:
        (riff_size,) = struct.unpack_from("<I", data, 4)
        if len(data) < 8 + riff_size:
            problem = f"{len(data)} of {8 + riff_size} bytes present"
    if problem:
        raise InputError(f"{label}: the {fmt if fmt != 'MPO' else 'JPEG'} file is truncated ({problem}); "
                         "re-export or re-download it")


def _jpeg_problem(data: bytes) -> str | None:
    pos, n = 2, len(data)
    while pos + 4 <= n:  # walk the header segments to the first scan (SOS)
        if data[pos] != 0xFF:
            return None  # odd layout: leave the verdict to the decoder
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xDA:
            # FF D9 cannot occur inside entropy-coded data or scan headers, so its absence means the
            # end of the picture is missing. Data after it (motion-photo video, trailers) is fine.
            return None if data.find(b"\xff\xd9", pos) >= 0 else "no end-of-image marker"
        if marker == 0xD9:
            return "no image data"
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return "ends inside the header"


def _png_problem(data: bytes) -> str | None:
    pos, n = 8, len(data)
    while pos + 8 <= n:
        length, ctype = struct.unpack_from(">I4s", data, pos)
        pos += 12 + length
        if ctype == b"IEND":
            return None if pos <= n else "IEND chunk cut short"
    return "no IEND chunk"


def _read_exif(im: PILImage.Image, fmt: str | None) -> tuple[int, bytes | None]:
    """(orientation, EXIF bytes for the upright image) — tolerant: broken EXIF means no EXIF."""
    try:
        ex = im.getexif()
        if not len(ex):
            return 1, None
        orientation = ex.get(_TAG_ORIENTATION, 1)
        try:
            orientation = int(orientation)
        except (TypeError, ValueError):
            orientation = 1
        if orientation not in range(1, 9):
            orientation = 1
        if fmt == "TIFF":
            for tag in list(ex):
                if tag in _TIFF_LAYOUT_TAGS:
                    del ex[tag]
        if _TAG_ORIENTATION in ex:
            ex[_TAG_ORIENTATION] = 1
        raw = ex.tobytes()  # IFD0 + Exif/GPS IFDs; the IFD1 thumbnail is not written
        return orientation, (raw if len(ex) else None)
    except Exception:  # noqa: BLE001 - PIL raises many types on malformed EXIF; the pixels are still fine
        return 1, None


def _read_dpi(info: Mapping[Any, Any]) -> tuple[float, float] | None:
    dpi = info.get("dpi")
    try:
        if dpi and len(dpi) == 2 and float(dpi[0]) > 0 and float(dpi[1]) > 0:
            return float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError):
        pass
    return None


def _icc_space(icc: bytes) -> bytes:
    return bytes(icc[16:20]) if len(icc) >= 20 else b""


_SRGB: bytes | None = None


def _to_rgb(im: PILImage.Image, icc: bytes | None, extra: dict[str, Any]
            ) -> tuple[PILImage.Image, PILImage.Image | None]:
    """Source image -> (RGB image, L alpha or None); 16-bit scaled by 1/257, non-RGB ICC applied."""
    mode = im.mode
    alpha = None
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info) or (
            mode in ("L", "RGB", "1") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        im = rgba.convert("RGB")
        mode = "RGB"
    elif mode.startswith("I"):
        arr = np.asarray(im)
        if mode == "I":
            top = 255 if arr.max(initial=0) <= 255 else 65535
            arr = np.clip(arr, 0, 65535)
        else:  # I;16, I;16B, I;16L, I;16N
            top = 65535
        scaled = np.round(arr.astype(np.float64) * (255.0 / top)).astype(np.uint8)
        im = PILImage.fromarray(scaled, mode="L")
        mode = "L"
    if icc is not None and _icc_space(icc) in (b"CMYK", b"GRAY") and mode in ("CMYK", "L"):
        try:
            global _SRGB
            if _SRGB is None:
                _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
            src = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
            dst = ImageCms.ImageCmsProfile(_io.BytesIO(_SRGB))
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                extra["color"] = f"{_icc_space(icc).decode().strip()} ICC -> sRGB"
                return out, alpha
        except (ImageCms.PyCMSError, OSError, ValueError):
            extra["color"] = "ICC profile unusable; plain conversion"
    return (im if im.mode == "RGB" else im.convert("RGB")), alpha


# XMP: names like exif:GPSLatitude, Iptc4xmpExt:GPSAltitude, drone-dji:GpsLatitude (any prefix).
_XMP_GPS_NAME = re.compile(rb"[\w.-]+:gps\w*", re.IGNORECASE)
_XMP_GPS_ATTR = re.compile(rb"\s+[\w.-]+:gps\w*\s*=\s*(\"[^\"]*\"|'[^']*')", re.IGNORECASE)
_XMP_GPS_EMPTY = re.compile(rb"<([\w.-]+:gps\w*)\b[^>]*/>", re.IGNORECASE)
_XMP_GPS_ELEM = re.compile(rb"<([\w.-]+:gps\w*)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_XMP_THUMBS = re.compile(rb"<([\w.-]+:Thumbnails)\b[^>]*>.*?</\1\s*>", re.DOTALL)
_XMP_ORIENT_ATTR = re.compile(rb"(tiff:Orientation\s*=\s*[\"'])\d([\"'])")
_XMP_ORIENT_ELEM = re.compile(rb"(<tiff:Orientation>)\s*\d\s*(</tiff:Orientation>)")


def _clean_xmp(xmp: bytes) -> bytes:
    """Orientation -> 1 (the pixels are upright) and embedded thumbnails removed."""
    xmp = _XMP_ORIENT_ATTR.sub(rb"\g<1>1\g<2>", xmp)
    xmp = _XMP_ORIENT_ELEM.sub(rb"\g<1>1\g<2>", xmp)
    return _XMP_THUMBS.sub(b"", xmp)


def strip_xmp_gps(xmp: bytes) -> bytes | None:
    """Remove every ``prefix:GPS…`` attribute and element from an XMP packet.

    Returns the packet without them, or ``None`` (drop the whole packet) when a GPS name would still
    remain (an unusual layout the patterns did not cover).
    """
    out = _XMP_GPS_ATTR.sub(b"", xmp)
    out = _XMP_GPS_EMPTY.sub(b"", out)
    out = _XMP_GPS_ELEM.sub(b"", out)
    return None if _XMP_GPS_NAME.search(out) else out


def _read_iptc(im: PILImage.Image) -> bytes | None:
    parts = [body[len(_PS_HEADER):] for marker, body in getattr(im, "applist", [])
             if marker == "APP13" and body.startswith(_PS_HEADER)]
    if not parts:
        return None
    return _filter_irb(b"".join(parts), drop=_PS_THUMBNAILS) or None


def _filter_irb(irb: bytes, *, drop: set[int]) -> bytes:
    """Photoshop image resource blocks without the ids in ``drop`` (unparseable input returned as is)."""
    out, pos, n = [], 0, len(irb)
    try:
        while pos + 12 <= n and irb[pos:pos + 4] == b"8BIM":
            start = pos
            (rid,) = struct.unpack_from(">H", irb, pos + 4)
            name_len = irb[pos + 6]
            pos += 6 + ((name_len + 2) & ~1)  # Pascal name padded to even length
            (size,) = struct.unpack_from(">I", irb, pos)
            pos += 4 + size + (size & 1)
            if rid not in drop:
                out.append(irb[start:min(pos, n)])
    except (struct.error, IndexError):
        return irb
    if pos < n:  # trailing bytes we do not understand: keep them as they were
        out.append(irb[pos:])
    return b"".join(out)


# --------------------------------------------------------------------------------------------- save


#: ``save_image`` writes ``.pe-<8 random>.tmp`` next to the output, then renames it: a short name whatever
#: the output is called (a 250-character output name still fits). Such files older than
#: ``STALE_TEMP_S`` (a write killed half-way) are removed by the next save to that folder, with those of
#: earlier versions (``.<output name>.<8 random>.tmp``).
TEMP_PREFIX = ".pe-"
STALE_TEMP_S = 900.0
_TEMP_NAMES = re.compile(r"^(\.pe-[A-Za-z0-9_]{8}|\..+\.(?:" + "|".join(sorted(e.lstrip(".") for e in SAVE_FORMATS))
                         + r")\.[A-Za-z0-9_]{8})\.tmp$", re.IGNORECASE)
_SWEPT: set[str] = set()


def remove_stale_temps(folder: str | os.PathLike[str], *, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove our temporary files in ``folder`` (by their name pattern) older than ``older_than_s``.

    Files being written by another save right now are young and stay. Returns what was removed.
    """
    import time

    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not _TEMP_NAMES.match(e.name):
            continue
        try:
            if not e.is_file(follow_symlinks=False) or now - e.stat(follow_symlinks=False).st_mtime < older_than_s:
                continue
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            continue
    return removed


def _sweep_once(folder: Path) -> None:
    key = os.path.abspath(folder)
    if key not in _SWEPT:  # once per folder and process: a batch saves thousands of files into one folder
        _SWEPT.add(key)
        remove_stale_temps(folder)


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def check_output_path(out: str | os.PathLike[str], *, input_path: str | os.PathLike[str] | None = None,
                      overwrite: bool = False) -> Path:
    """Validate an output path before any heavy work; returns it as a ``Path``.

    Checks: the extension names a format we write; the folder exists, is a folder and is writable
    (really tried: a nameless temporary file is created and removed); the output is not a folder; it is
    not the input file (same resolved path, or the same file through a link) unless ``overwrite``.

    Raises:
        InputError: one line naming the problem and what to do.
    """
    path = Path(out)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise InputError(f"{path}: unknown output format {path.suffix or '(no extension)'!r}; "
                         f"end the name with one of {', '.join(sorted(SAVE_FORMATS))}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        raise InputError(f"{path}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise InputError(f"{path}: {folder} is a file, not a folder; choose another output path")
    limit = _name_max(folder)
    if len(path.name.encode()) > limit:  # before anything stats the path (that fails with "File name too long")
        raise InputError(f"{path.name[:40]}…: the file name is {len(path.name.encode())} bytes; the folder {folder} "
                         f"allows {limit}; choose a shorter name")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name such as {path / 'out.jpg'}")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{path}: the folder {folder} is not writable ({exc.strerror or exc}); "
                         "choose another output folder") from None
    if input_path is not None and not overwrite and _same_file(path, Path(input_path)):
        raise InputError(f"{path}: refusing to overwrite the input {input_path}; "
                         "pass `overwrite=True` or choose another output path", param="overwrite")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def save_image(pixels: np.ndarray | Image, path: str | os.PathLike[str], *, like: Image | None = None,
               metadata: MetadataPolicy = "keep", quality: int = 95) -> Path:
    """Write (H, W, 3) uint8 RGB atomically: a temp file in the same folder, then ``os.replace``.

    The format follows the extension (``SAVE_FORMATS``). Metadata and alpha come from ``like`` (an
    ``Image`` passed as ``pixels`` is its own ``like`` unless one is given) under the ``metadata``
    policy described in the module docstring. On any failure no temp file is left and an existing
    file at ``path`` is untouched. The file gets the usual permissions (0666 minus umask, or those of
    the file it replaces).

    Args:
        pixels: (H, W, 3) uint8 RGB, or an ``Image``.
        path: output file; its extension picks JPEG, PNG, BMP, WEBP or TIFF.
        like: the loaded input whose metadata/alpha to carry over, or ``None`` for none.
        metadata: ``"keep"``, ``"strip-gps"`` or ``"strip-all"``.
        quality: JPEG/WEBP quality 1..100 (JPEG is written 4:4:4).

    Returns:
        The output path.

    Raises:
        InputError: bad pixels, unknown extension or policy, missing/unwritable folder, image too large
            for the format, or the write itself failed (disk full, …).
    """
    if isinstance(pixels, Image):
        like = pixels if like is None else like
        pixels = pixels.pixels
    out = Path(path)
    fmt = SAVE_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"{out}: unknown output format {out.suffix or '(no extension)'!r}; "
                         f"end the name with one of {', '.join(sorted(SAVE_FORMATS))}")
    if metadata not in METADATA_POLICIES:
        raise InputError(f"unknown metadata policy {metadata!r}; choose one of: {', '.join(METADATA_POLICIES)}")
    arr = check_rgb(pixels, who="save_image", param="pixels")
    h, w = arr.shape[:2]
    if max(h, w) > _MAX_SIDE[fmt]:
        raise InputError(f"{out}: {w}x{h} is too large for {fmt} (max side {_MAX_SIDE[fmt]} px); "
                         "save as PNG or TIFF instead")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{out}: the folder {folder} does not exist; create it first")

    im = PILImage.fromarray(arr, mode="RGB")
    if like is not None and like.alpha is not None and fmt in _ALPHA_FORMATS:
        if like.alpha.shape != (h, w):
            raise InputError(f"save_image: like.alpha is {like.alpha.shape} but the pixels are {(h, w)}; "
                             "pass like=None or an Image of the same size")
        im.putalpha(PILImage.fromarray(np.ascontiguousarray(like.alpha), mode="L"))
    kwargs = _save_kwargs(fmt, like, metadata, quality, (w, h))

    if len(out.name.encode()) > _name_max(folder):
        raise InputError(f"{out.name[:40]}…: the file name is {len(out.name.encode())} bytes; the folder {folder} "
                         f"allows {_name_max(folder)}; choose a shorter name")
    try:
        atomic_write(out, lambda fh: im.save(fh, format=fmt, **kwargs))
    except _TempFileError as exc:
        raise InputError(f"{out}: the folder {folder} is not writable ({exc.strerror or exc}); "
                         "choose another output folder") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{out}: could not write the {fmt} file ({exc}); "
                         "check free space and permissions, or try another format") from exc
    return out


class _TempFileError(OSError):
    """The temporary file next to the target could not be created (the folder is not writable)."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write a file atomically: ``write(fh)`` fills a temp file in the same folder, which is flushed,
    fsynced, given the usual permissions (0666 minus umask, or those of the file it replaces) and
    renamed over ``path``. On any failure the temp file is removed and ``path`` is untouched.

    The one atomic write of the package (images, label maps, reports, masks).

    Raises:
        OSError: the write failed (a subclass, when the temp file could not even be created).
    """
    out = Path(path)
    folder = out.parent if str(out.parent) else Path(".")
    _sweep_once(folder)
    try:  # a short temp name: any output name that fits the folder also fits while it is written
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _TempFileError(exc.errno, exc.strerror, exc.filename) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode(out))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _file_mode(out: Path) -> int:
    try:
        return out.stat().st_mode & 0o7777
    except OSError:
        pass
    umask = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _save_kwargs(fmt: str, like: Image | None, policy: str, quality: int, size: tuple[int, int]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "JPEG":
        kwargs["subsampling"] = 0
    if like is None:
        return kwargs
    md = like.metadata
    if md.dpi and fmt in ("JPEG", "PNG", "TIFF", "BMP"):
        kwargs["dpi"] = md.dpi
    if policy == "strip-all" or fmt == "BMP":
        return kwargs
    if md.icc_profile and _icc_space(md.icc_profile) == b"RGB ":
        kwargs["icc_profile"] = md.icc_profile
    exif = _policy_exif(md.exif, policy, size, limit=_JPEG_MAX_SEGMENT - 8 if fmt == "JPEG" else None)
    xmp = md.xmp
    if xmp and policy == "strip-gps":
        xmp = strip_xmp_gps(xmp)
    if fmt == "JPEG" and xmp and len(xmp) > _JPEG_MAX_SEGMENT - 29:
        xmp = None  # too long for one APP1 (extended XMP is not written)
    if fmt == "TIFF":
        ex = PILImage.Exif()
        if exif:
            ex.load(exif)
        if xmp:
            ex[_TAG_XMP] = xmp
        if len(ex):
            kwargs["exif"] = ex
        return kwargs
    if exif:
        kwargs["exif"] = exif
    if xmp:
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"), zip=False)
            kwargs["pnginfo"] = info
        else:
            kwargs["xmp"] = xmp
    if fmt == "JPEG":
        if md.comment and len(md.comment) <= _JPEG_MAX_SEGMENT:
            kwargs["comment"] = md.comment
        irb = md.iptc
        if irb and policy == "strip-gps":
            irb = _filter_irb(irb, drop=_PS_EMBEDDED_EXIF_XMP)
        if irb:
            kwargs["extra"] = _app13_segments(irb)
    return kwargs


def _policy_exif(exif: bytes | None, policy: str, size: tuple[int, int], *, limit: int | None) -> bytes | None:
    if not exif or policy == "strip-all":
        return None
    ex = PILImage.Exif()
    try:
        ex.load(exif)
    except Exception:  # noqa: BLE001 - loaded once already; an unreadable copy is simply not written
        return None
    if _TAG_ORIENTATION in ex:
        ex[_TAG_ORIENTATION] = 1
    if policy == "strip-gps" and _TAG_GPS_IFD in ex:
        del ex[_TAG_GPS_IFD]  # the GPS IFD is only written through this pointer
    sub = ex.get_ifd(_TAG_EXIF_IFD) if _TAG_EXIF_IFD in ex else None
    if sub is not None:
        if _TAG_PIXEL_X in sub:
            sub[_TAG_PIXEL_X] = size[0]
        if _TAG_PIXEL_Y in sub:
            sub[_TAG_PIXEL_Y] = size[1]
    raw = ex.tobytes()
    if limit is not None and len(raw) > limit and sub is not None and _TAG_MAKERNOTE in sub:
        del sub[_TAG_MAKERNOTE]  # the maker note is the usual bulk; it has to go to fit one APP1
        raw = ex.tobytes()
    if limit is not None and len(raw) > limit:
        raise InputError(f"the EXIF block is {len(raw)} bytes, too long for a JPEG; "
                         'use `metadata="strip-all"` or save as PNG/TIFF', param="metadata")
    return raw


def _app13_segments(irb: bytes) -> bytes:
    room = _JPEG_MAX_SEGMENT - len(_PS_HEADER)
    out = b""
    for i in range(0, len(irb), room):
        body = _PS_HEADER + irb[i:i + room]
        out += b"\xff\xed" + struct.pack(">H", len(body) + 2) + body
    return out
