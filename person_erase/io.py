"""Load and save photos: validation, EXIF orientation, metadata policy, atomic writes.

Pixel convention everywhere in person_erase: (H, W, 3) uint8 RGB with the EXIF orientation already
applied. Alpha (if the input had it) travels beside the pixels in ``Image.alpha`` and is written back
when the output format can hold it.
"""

from __future__ import annotations

import hashlib
import io as _io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from .errors import InputError

MetadataPolicy = Literal["keep", "strip-gps", "strip-all"]
METADATA_POLICIES: tuple[str, ...] = ("keep", "strip-gps", "strip-all")

#: Refuse images with more pixels than this (decompression-bomb guard); 100 MP by default.
DEFAULT_MAX_PIXELS = 100_000_000

SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


@dataclass(frozen=True)
class ImageMetadata:
    """What the input carried besides pixels.

    Attributes:
        format: PIL format name of the source (``"JPEG"``, ``"PNG"``, …) or ``None`` for arrays.
        orientation: the EXIF orientation tag the file had (1 = upright); already applied.
        exif: raw EXIF bytes with the orientation reset to 1, or ``None``.
        icc_profile: ICC profile bytes or ``None``.
        xmp: XMP packet bytes or ``None``.
        source_mode: PIL mode of the source (``"RGB"``, ``"L"``, ``"I;16"``, ``"CMYK"``, ``"RGBA"``, …).
    """

    format: str | None = None
    orientation: int = 1
    exif: bytes | None = None
    icc_profile: bytes | None = None
    xmp: bytes | None = None
    source_mode: str = "RGB"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Image:
    """A loaded photo.

    Attributes:
        pixels: (H, W, 3) uint8 RGB, orientation applied, read-only.
        metadata: ``ImageMetadata``.
        alpha: (H, W) uint8 alpha channel, or ``None``.
        path: where it was read from, or ``None``.
        sha256: hex digest of the source file's bytes (of the pixels for arrays).
    """

    pixels: np.ndarray
    metadata: ImageMetadata = field(default_factory=ImageMetadata)
    alpha: np.ndarray | None = None
    path: Path | None = None
    sha256: str = ""

    def __post_init__(self) -> None:
        px = np.asarray(self.pixels)
        if px.ndim != 3 or px.shape[2] != 3 or px.dtype != np.uint8:
            raise InputError(f"Image.pixels must be (H, W, 3) uint8 RGB, got shape {px.shape} dtype {px.dtype}")
        px = px.copy() if px.flags.writeable else px
        px.setflags(write=False)
        object.__setattr__(self, "pixels", px)
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
        source: a path, an (H, W, 3) uint8 RGB array, a PIL image, or an ``Image`` (returned as is).
        max_pixels: refuse larger images (decompression-bomb guard).

    Raises:
        InputError: missing, empty, truncated, unsupported or oversized input, with what to do.
    """
    if isinstance(source, Image):
        return source
    if isinstance(source, np.ndarray):
        if source.ndim == 2:
            source = np.repeat(source[:, :, None], 3, axis=2)
        if source.ndim != 3 or source.shape[2] not in (3, 4) or source.dtype != np.uint8:
            raise InputError(f"an image array must be (H, W, 3) uint8 RGB, got shape {source.shape} dtype {source.dtype}")
        alpha = source[:, :, 3].copy() if source.shape[2] == 4 else None
        return Image(pixels=np.ascontiguousarray(source[:, :, :3]), alpha=alpha)
    if isinstance(source, PILImage.Image):
        return _from_pil(source, path=None, digest="", max_pixels=max_pixels)
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image (use 'person-erase batch' for folders)")
    data = path.read_bytes()
    if not data:
        raise InputError(f"{path}: the file is empty (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with PILImage.open(_io.BytesIO(data)) as im:
            return _from_pil(im, path=path, digest=digest, max_pixels=max_pixels)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image PIL can read (JPEG, PNG, BMP, WEBP and TIFF are supported)") from None
    except (OSError, SyntaxError) as exc:
        raise InputError(f"{path}: the image is damaged or truncated ({exc}); re-export or re-download it") from None


def _from_pil(im: PILImage.Image, *, path: Path | None, digest: str, max_pixels: int) -> Image:
    w, h = im.size
    if w * h > max_pixels:
        raise InputError(
            f"{path or 'image'}: {w}x{h} is {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP limit; "
            "downscale it first or raise the limit (max_pixels / --max-pixels)"
        )
    fmt = im.format
    info = dict(im.info)
    exif = im.getexif()
    orientation = int(exif.get(0x0112, 1) or 1)
    im.load()
    im = ImageOps.exif_transpose(im) or im
    mode = im.mode
    alpha = None
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3].copy()
        rgb = rgba.convert("RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.uint32 if mode == "I" else np.uint16)
        top = 65535 if mode != "I" or arr.max() > 255 else 255
        rgb = PILImage.fromarray((arr.astype(np.float64) * 255.0 / top).round().clip(0, 255).astype(np.uint8)).convert("RGB")
    else:
        rgb = im.convert("RGB")
    if exif:
        exif[0x0112] = 1
    md = ImageMetadata(
        format=fmt,
        orientation=orientation,
        exif=exif.tobytes() if exif else None,
        icc_profile=info.get("icc_profile"),
        xmp=info.get("xmp") if isinstance(info.get("xmp"), bytes) else None,
        source_mode=mode if isinstance(mode, str) else "RGB",
    )
    return Image(pixels=np.asarray(rgb), metadata=md, alpha=alpha, path=path, sha256=digest)


def save_image(pixels: np.ndarray, path: str | os.PathLike[str], *, like: Image | None = None,
               metadata: MetadataPolicy = "keep", quality: int = 95) -> Path:
    """Write (H, W, 3) uint8 RGB atomically (temp file in the same folder, then rename).

    The format follows the extension. Metadata comes from ``like`` under the ``metadata`` policy.

    Raises:
        InputError: unknown extension, unwritable folder, or bad policy.
    """
    out = Path(path)
    fmt = SAVE_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"{out}: unknown output format {out.suffix!r}; use one of {', '.join(sorted(SAVE_FORMATS))}")
    if metadata not in METADATA_POLICIES:
        raise InputError(f"unknown metadata policy {metadata!r}; choose one of: {', '.join(METADATA_POLICIES)}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{out}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{out}: the folder {folder} is not writable")
    im = PILImage.fromarray(np.asarray(pixels, dtype=np.uint8))
    if like is not None and like.alpha is not None and fmt in ("PNG", "WEBP", "TIFF"):
        im.putalpha(PILImage.fromarray(like.alpha))
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if fmt == "JPEG":
        kwargs["subsampling"] = 0
    if like is not None and metadata != "strip-all":
        md = like.metadata
        if md.icc_profile:
            kwargs["icc_profile"] = md.icc_profile
        if md.exif and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            ex = PILImage.Exif()
            ex.load(md.exif)
            ex[0x0112] = 1
            if metadata == "strip-gps":
                ex.pop(0x8825, None)
                try:
                    ex.get_ifd(0x8825).clear()
                except Exception:  # noqa: BLE001 - no GPS IFD present
                    pass
            kwargs["exif"] = ex.tobytes()
        if md.xmp and metadata == "keep" and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            kwargs["xmp"] = md.xmp
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            im.save(fh, format=fmt, **kwargs)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
