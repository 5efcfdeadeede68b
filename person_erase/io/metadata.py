"""What a photo carries besides pixels, and the metadata policy applied when one is saved.

Read on load (:class:`ImageMetadata`, always everything the file had, whatever policy will be used) and
turned into PIL save options by the policy (``METADATA_POLICIES``):

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
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image as PILImage
from PIL import PngImagePlugin

from ..errors import InputError

MetadataPolicy = Literal["keep", "strip-gps", "strip-all"]
METADATA_POLICIES: tuple[str, ...] = ("keep", "strip-gps", "strip-all")

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


def _save_kwargs(fmt: str, md: ImageMetadata | None, policy: str, quality: int, size: tuple[int, int]
                 ) -> dict[str, Any]:
    """PIL save options for ``fmt``: quality, DPI and, under ``policy``, the metadata ``md`` can carry."""
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "JPEG":
        kwargs["subsampling"] = 0
    if md is None:
        return kwargs
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
