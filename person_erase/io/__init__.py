"""Load and save photos: validation, EXIF orientation, metadata policy, atomic writes.

One concern per module:

* :mod:`.load` — ``load_image`` and the ``Image`` type: file checks, decoding to (H, W, 3) uint8 RGB,
  EXIF orientation, colour conversion, the pixel limit.
* :mod:`.metadata` — ``ImageMetadata`` (what the file carried besides pixels) and the metadata policies
  ``keep`` / ``strip-gps`` / ``strip-all`` applied on save.
* :mod:`.save` — ``save_image``: encoding with the input's metadata and alpha.
* :mod:`.files` — the one atomic write of the package, output-path checks, stale temporary files.

Errors are :class:`~person_erase.errors.InputError` with one readable line that says what to do.
"""

from __future__ import annotations

from ..settings import DEFAULT_MAX_PIXELS
from .files import (
    SAVE_FORMATS,
    STALE_TEMP_S,
    TEMP_PREFIX,
    atomic_write,
    check_output_file,
    check_output_path,
    file_mode,
    publish,
    remove_stale_temps,
    temp_file,
)
from .load import LOAD_FORMATS, Image, check_regular_file, load_image, too_big_message
from .metadata import METADATA_POLICIES, ImageMetadata, MetadataPolicy, strip_xmp_gps
from .save import save_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "LOAD_FORMATS",
    "METADATA_POLICIES",
    "SAVE_FORMATS",
    "STALE_TEMP_S",
    "TEMP_PREFIX",
    "Image",
    "ImageMetadata",
    "MetadataPolicy",
    "atomic_write",
    "check_output_file",
    "check_output_path",
    "check_regular_file",
    "file_mode",
    "load_image",
    "publish",
    "remove_stale_temps",
    "save_image",
    "strip_xmp_gps",
    "temp_file",
    "too_big_message",
]
