"""Save a photo: encode (H, W, 3) uint8 RGB in the format its extension names, with the input's
metadata under a policy (:mod:`.metadata`) and its alpha, written by the one atomic write (:mod:`.files`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from ..errors import InputError
from ..pixels import check_rgb
from .files import _check_name_fits, _folder, _not_writable, _TempFileError, atomic_write, output_format
from .load import Image
from .metadata import METADATA_POLICIES, MetadataPolicy, _save_kwargs

_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
_MAX_SIDE = {"JPEG": 65_535, "WEBP": 16_383, "PNG": 2**31 - 1, "BMP": 2**31 - 1, "TIFF": 2**32 - 1}


def save_image(pixels: np.ndarray | Image, path: str | os.PathLike[str], *, like: Image | None = None,
               metadata: MetadataPolicy = "keep", quality: int = 95) -> Path:
    """Write (H, W, 3) uint8 RGB atomically: a temp file in the same folder, then ``os.replace``.

    The format follows the extension (``SAVE_FORMATS``). Metadata and alpha come from ``like`` (an
    ``Image`` passed as ``pixels`` is its own ``like`` unless one is given) under the ``metadata``
    policy (see :mod:`person_erase.io.metadata`). On any failure no temp file is left and an existing
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
    fmt = output_format(out)
    if metadata not in METADATA_POLICIES:
        raise InputError(f"unknown metadata policy {metadata!r}; choose one of: {', '.join(METADATA_POLICIES)}")
    arr = check_rgb(pixels, who="save_image", param="pixels")
    h, w = arr.shape[:2]
    if max(h, w) > _MAX_SIDE[fmt]:
        raise InputError(f"{out}: {w}x{h} is too large for {fmt} (max side {_MAX_SIDE[fmt]} px); "
                         "save as PNG or TIFF instead")
    folder = _folder(out)
    if not folder.is_dir():
        raise InputError(f"{out}: the folder {folder} does not exist; create it first")

    im = PILImage.fromarray(arr, mode="RGB")
    if like is not None and like.alpha is not None and fmt in _ALPHA_FORMATS:
        if like.alpha.shape != (h, w):
            raise InputError(f"save_image: like.alpha is {like.alpha.shape} but the pixels are {(h, w)}; "
                             "pass like=None or an Image of the same size")
        im.putalpha(PILImage.fromarray(np.ascontiguousarray(like.alpha), mode="L"))
    kwargs = _save_kwargs(fmt, like.metadata if like is not None else None, metadata, quality, (w, h))

    _check_name_fits(out, folder)
    try:
        atomic_write(out, lambda fh: im.save(fh, format=fmt, **kwargs))
    except _TempFileError as exc:
        raise _not_writable(out, folder, exc) from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{out}: could not write the {fmt} file ({exc}); "
                         "check free space and permissions, or try another format") from exc
    return out
