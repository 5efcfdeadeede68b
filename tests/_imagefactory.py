"""Synthetic pictures for the tests: the one scene factory (``make_scene``: figures with known labels on a
textured background) and small image files for the I/O tests (asymmetric pictures, EXIF/XMP/ICC/IPTC
payloads, odd modes).

Everything is built in memory from numpy, OpenCV and Pillow (no downloads) and is a few KB at most.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageCms

#: The flat colours of ``make_scene``'s figures, far from its background (the ``figures`` test segmenter
#: and the fake server's blob segmenter find exactly them).
FIGURE_COLOURS = np.array([[230, 40, 40], [40, 40, 230], [240, 220, 30], [230, 40, 230]], np.int32)


def make_scene(n: int = 3, *, size: tuple[int, int] = (240, 360),
               people: list[tuple[float, float, float]] | None = None, seed: int = 0,
               striped: bool = False, noise: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """A textured background with person-like figures: a body ellipse with a head disk on top.

    Args:
        n: how many figures, standing apart left to right on one foot line (when ``people`` is None).
        size: (H, W).
        people: one ``(cx, cy, height)`` per figure, fractions of W, H and H: the body's centre and height.
        seed: the background noise.
        striped: fill the figures with stripes (texture for redaction and subject cues) instead of the
            flat ``FIGURE_COLOURS``.
        noise: standard deviation of the background's pixel noise (0: smooth; such a picture encodes
            several times faster, for tests where what is in it does not matter).

    Returns:
        image (H, W, 3) uint8 RGB and labels (H, W) uint8: 0 background, k + 1 = the k-th figure.
    """
    import cv2

    h, w = size
    if people is None:
        people = [((k + 1) / (n + 1), 0.62, 0.35 + 0.08 * (k % 3)) for k in range(n)]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack(
        [100 + 40 * np.sin(xx / 9.0), 120 + 30 * np.cos(yy / 7.0), 90 + 20 * np.sin((xx + yy) / 13.0)], axis=2
    )
    img = (bg + rng.normal(0, noise, bg.shape) if noise else bg).clip(0, 255).astype(np.uint8)
    labels = np.zeros((h, w), np.uint8)
    for k, (fx, fy, fh) in enumerate(people):
        cx, cy, bh = round(fx * w), round(fy * h), round(fh * h)
        m = np.zeros((h, w), np.uint8)
        cv2.ellipse(m, (cx, cy), (max(6, bh // 6), bh // 2), 0, 0, 360, 1, -1)
        cv2.circle(m, (cx, cy - bh // 2 - bh // 12), max(3, bh // 10), 1, -1)
        labels[m > 0] = k + 1
        if striped:
            on = (np.sin(xx / 2.0 + k + 1) > 0)[..., None]
            stripes = on * np.array([60, 30, 20]) + np.array([170, 80, 70]) + 20 * k
            img[m > 0] = stripes.clip(0, 255).astype(np.uint8)[m > 0]
        else:
            img[m > 0] = FIGURE_COLOURS[k % len(FIGURE_COLOURS)].astype(np.uint8)
    return img, labels


GPS_LAT = (52.0, 31.0, 12.5)


def asymmetric_rgb(h: int = 24, w: int = 36) -> np.ndarray:
    """(h, w, 3) uint8 whose every flip/rotation differs: flat blocks (JPEG-friendly) in a non-symmetric layout."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 3] = (230, 30, 30)  # red top-left
    img[: h // 2, w // 3:] = (30, 200, 40)  # green top-right (wider)
    img[h // 2:, : 2 * w // 3] = (30, 40, 220)  # blue bottom-left (wider)
    img[h // 2:, 2 * w // 3:] = (240, 240, 240)  # white bottom-right
    return img


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The array a camera would store so that a viewer honouring EXIF ``orientation`` shows ``upright``.

    Written from the EXIF definitions (where row 0 / column 0 of the stored picture belong visually),
    independently of person_erase.io.
    """
    u = upright
    stored = {
        1: u,
        2: u[:, ::-1],  # row 0 top, column 0 right: mirrored left-right
        3: u[::-1, ::-1],  # row 0 bottom, column 0 right: rotated 180
        4: u[::-1, :],  # row 0 bottom, column 0 left: mirrored top-bottom
        5: u.transpose(1, 0, 2),  # row 0 left, column 0 top: transposed
        6: np.rot90(u, 1),  # row 0 right, column 0 top: shown after turning 90 deg clockwise
        7: u[::-1, ::-1].transpose(1, 0, 2),  # row 0 right, column 0 bottom: anti-transposed
        8: np.rot90(u, -1),  # row 0 left, column 0 bottom: shown after turning 90 deg counter-clockwise
    }[orientation]
    return np.ascontiguousarray(stored)


def exif_bytes(*, orientation: int | None = None, gps: bool = False, make: str = "TestCam",
               pixel_size: tuple[int, int] | None = None) -> bytes:
    ex = PILImage.Exif()
    ex[0x010F] = make
    if orientation is not None:
        ex[0x0112] = orientation
    if pixel_size is not None:
        sub = ex.get_ifd(0x8769)
        sub[0xA002], sub[0xA003] = pixel_size
    if gps:
        g = ex.get_ifd(0x8825)
        g[1] = "N"
        g[2] = GPS_LAT
        g[3] = "E"
        g[4] = (13.0, 24.0, 1.0)
    return ex.tobytes()


def exif_with_thumbnail(thumbnail_jpeg: bytes) -> bytes:
    """Little-endian EXIF: IFD0 (Make) -> IFD1 carrying a JPEG thumbnail, as cameras write it."""
    make = b"ThumbCam\x00"
    # header(8) + IFD0: count(2) + 1 entry(12) + next(4) = 26 -> make at 26, IFD1 after it
    make_off = 26
    ifd1_off = make_off + len(make)
    ifd1_off += ifd1_off & 1
    thumb_off = ifd1_off + 2 + 2 * 12 + 4
    out = b"II*\x00" + struct.pack("<I", 8)
    out += struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, len(make), make_off) + struct.pack("<I", ifd1_off)
    out += make + b"\x00" * (ifd1_off - make_off - len(make))
    out += struct.pack("<H", 2)
    out += struct.pack("<HHII", 0x0201, 4, 1, thumb_off) + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail_jpeg))
    out += struct.pack("<I", 0)
    out += thumbnail_jpeg
    return b"Exif\x00\x00" + out


def xmp_packet(*, gps: str | None = None, orientation: int | None = None, creator: str = "Ada") -> bytes:
    """An XMP packet; ``gps`` = ``"attr"`` (exif:GPS… attributes) or ``"elem"`` (exif:GPS… elements)."""
    attrs = ""
    elems = f"<dc:creator><rdf:Seq><rdf:li>{creator}</rdf:li></rdf:Seq></dc:creator>"
    if orientation is not None:
        attrs += f' tiff:Orientation="{orientation}"'
    if gps == "attr":
        attrs += ' exif:GPSLatitude="52,31.2083N" exif:GPSLongitude="13,24.0167E" exif:GPSVersionID="2.3.0.0"'
    elif gps == "elem":
        elems += ("<exif:GPSLatitude>52,31.2083N</exif:GPSLatitude>\n"
                  "<exif:GPSLongitude>13,24.0167E</exif:GPSLongitude><exif:GPSAltitudeRef/>")
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        f"{attrs}>{elems}</rdf:Description></rdf:RDF></x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


@functools.lru_cache(maxsize=1)
def srgb_icc() -> bytes:
    """One sRGB profile per test run (a new one would carry a different creation time)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def fake_icc(space: bytes) -> bytes:
    """A 128-byte profile header naming ``space`` (e.g. b"CMYK"); not a usable profile."""
    head = bytearray(128)
    head[0:4] = struct.pack(">I", 128)
    head[12:16] = b"prtr"
    head[16:20] = space
    head[20:24] = b"Lab "
    head[36:40] = b"acsp"
    return bytes(head)


def irb(resources: dict[int, bytes]) -> bytes:
    """Photoshop image resource blocks (8BIM, empty names)."""
    out = b""
    for rid, data in resources.items():
        out += b"8BIM" + struct.pack(">H", rid) + b"\x00\x00" + struct.pack(">I", len(data)) + data
        out += b"\x00" * (len(data) & 1)
    return out


def iptc_record(caption: str = "A caption", byline: str = "Ada") -> bytes:
    def ds(tag: int, value: str) -> bytes:
        v = value.encode()
        return b"\x1c\x02" + bytes([tag]) + struct.pack(">H", len(v)) + v
    return ds(120, caption) + ds(80, byline)


def app13_segment(irb_bytes: bytes) -> bytes:
    body = b"Photoshop 3.0\x00" + irb_bytes
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def encode(arr_or_im: np.ndarray | PILImage.Image, fmt: str, **kwargs) -> bytes:
    im = arr_or_im if isinstance(arr_or_im, PILImage.Image) else PILImage.fromarray(arr_or_im)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def png_with_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries (almost) no pixel data."""
    def chunk(ctype: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def gif_bytes(frames: int = 1) -> bytes:
    ims = [PILImage.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).convert("P") for i in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=frames > 1, append_images=ims[1:])
    return buf.getvalue()


def paste_person(image: np.ndarray, person: np.ndarray, *, x: int, y: int, height: int) -> tuple[int, int, int, int]:
    """Paste ``person`` (an RGB photo of someone, e.g. scikit-image's astronaut) scaled to ``height`` px
    into ``image`` (in place) with its top-left corner at (x, y); returns its box x0, y0, x1, y1."""
    import cv2

    width = max(1, round(height * person.shape[1] / person.shape[0]))
    image[y : y + height, x : x + width] = cv2.resize(person, (width, height), interpolation=cv2.INTER_AREA)
    return x, y, x + width, y + height
