"""Load a photo: validate the file, decode it to (H, W, 3) uint8 RGB, apply the EXIF orientation.

Pixel convention everywhere in person_erase: (H, W, 3) uint8 RGB with the EXIF orientation already
applied. Alpha (if the input had it) travels beside the pixels in ``Image.alpha`` and is written back
when the output format can hold it (PNG, WEBP, TIFF); JPEG and BMP outputs drop it.

Inputs: JPEG (also MPO, the multi-picture JPEG some cameras write: its first picture), PNG, BMP, WEBP and
TIFF, single frame. Grayscale, bilevel, palette (with or without transparency), 16-bit (``I;16`` PNG/TIFF,
16-bit RGB TIFF), CMYK, LA and RGBA sources all become RGB uint8; ``ImageMetadata.source_mode`` records
what the source was. Pixels stored with a non-RGB ICC profile (CMYK, gray) are converted to sRGB through
that profile and the profile is dropped, so an output never carries a profile that does not match it.

Errors are :class:`~person_erase.errors.InputError` with one readable line that says what to do.
"""

from __future__ import annotations

import hashlib
import io as _io
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageCms, UnidentifiedImageError

from ..errors import InputError
from ..pixels import check_rgb
from ..settings import DEFAULT_MAX_PIXELS
from .metadata import ImageMetadata, _clean_xmp, _icc_space, _read_dpi, _read_exif, _read_iptc

# DEFAULT_MAX_PIXELS (settings): images with more pixels are refused, checked from the header before
# any pixel is decoded. PIL's own hard limit (2 x ``PIL.Image.MAX_IMAGE_PIXELS``, about 179 MP) still
# applies on top of a larger ``max_pixels``.

#: Formats accepted on input (PIL format ids). MPO is what PIL calls a JPEG with extra pictures.
LOAD_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
_SUPPORTED_TEXT = "JPEG, PNG, BMP, WEBP or TIFF"

_TRANSPOSE = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}

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
        raise InputError(too_big_message("array", arr.shape[1], arr.shape[0], max_pixels))
    alpha = arr[:, :, 3].copy() if arr.shape[2] == 4 else None
    return Image(pixels=np.ascontiguousarray(arr[:, :, :3]), alpha=alpha)


def too_big_message(what: str, w: int, h: int, max_pixels: int) -> str:
    """The one-line refusal of a ``w`` x ``h`` picture over ``max_pixels`` (``what``: its name)."""
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
        raise InputError(too_big_message(label, w, h, max_pixels))
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
