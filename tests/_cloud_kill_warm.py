"""Imported by the kill -9 test's forkserver (``_cloud_kill.preload``): what each forked batch child would
otherwise do for itself on its first run (~150 ms a child): the lazy imports of a cloud batch, the MIME
table the SDK's upload reads (``mimetypes.init`` parses the system's files), PIL's format plugins and the
shared ``httpx`` client of the SDK transport (building it loads the CA bundle)."""

from __future__ import annotations

import mimetypes

import h11  # noqa: F401
import httpcore  # noqa: F401
from PIL import Image

import person_erase.compose  # noqa: F401
import person_erase.erasers._common  # noqa: F401
from person_erase.cloud import transport

mimetypes.init()
Image.preinit()
transport._http()
