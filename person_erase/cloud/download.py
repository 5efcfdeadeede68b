"""``DashScopeClient``'s result downloads, and decoding them.

Only from allowed hosts (``protocol.RESULT_HOSTS``, ``PERSON_ERASE_CLOUD_RESULT_HOSTS`` and the API's own
host), https tried first and http accepted for those hosts only (straight over http for the API's own host
when the API itself is plain http, i.e. the bundled server), no redirect to another host, never to a
private / link-local / reserved address (loopback only when the API itself is on loopback, i.e. the
bundled server), size-capped, all within one deadline.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlparse, urlunparse

import numpy as np

from ..errors import CloudError, InputError
from ..settings import DEFAULT_MAX_PIXELS
from .core import ClientCore
from .transport import TransportError, bounded, quote

logger = logging.getLogger("person_erase.cloud")


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    for pat in patterns:
        pat = pat.lower().strip()
        if pat.startswith("*."):
            if host.endswith(pat[1:]) and host != pat[2:]:
                return True
        elif host == pat:
            return True
    return False



def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False



class DownloadMixin(ClientCore):
    """Result URL checks and downloads (part of ``DashScopeClient``)."""

    # --- downloads --------------------------------------------------------------------------

    def _addresses(self, host: str, deadline: float) -> list[str]:
        pinned = self.resolve.get(host.lower())
        if pinned:
            return [pinned]
        try:
            ipaddress.ip_address(host.strip("[]"))
            return [host.strip("[]")]
        except ValueError:
            pass
        infos = bounded(lambda: socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP), deadline, what="dns")
        return list(dict.fromkeys(str(i[4][0]) for i in infos))

    def _check_url(self, url: str, task_id: str | None, deadline: float) -> tuple[Any, str]:
        """(parsed URL, the address to connect to) for an allowed result URL, else ``BadResultUrl``."""
        parsed = urlparse(url)
        host = (parsed.hostname or "").lower()

        def refuse(why: str) -> CloudError:
            return self._error(f"refusing to download the result of task {task_id} from {quote(url, 100)}: {why}",
                               code="BadResultUrl", task_id=task_id)

        if parsed.scheme not in ("http", "https") or not host:
            raise refuse("only http(s) URLs of DashScope's result hosts are accepted")
        if not (host == self._api_host or host_allowed(host, self.result_hosts)):
            raise refuse(f"{host} is not one of DashScope's result hosts (add it to PERSON_ERASE_CLOUD_RESULT_HOSTS "
                         "if you trust it)")
        try:
            addrs = self._addresses(host, deadline)
        except (OSError, TransportError) as exc:
            raise self._error(f"cannot resolve {host} to download the result of task {task_id} ({exc})",
                              code="DownloadFailed", task_id=task_id) from None
        api_loopback = _is_loopback_host(self._api_host) or (
            self._api_host in self.resolve and ipaddress.ip_address(self.resolve[self._api_host]).is_loopback)
        for a in addrs:
            ip = ipaddress.ip_address(a)
            if ip.is_loopback:
                if api_loopback:
                    return parsed, a
                continue
            if ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
                continue
            return parsed, a
        raise refuse(f"{host} resolves to {', '.join(addrs)}: private, link-local and (unless the API itself is "
                     "on this machine) loopback addresses are never contacted")

    def download(self, url: str, *, task_id: str | None = None, timeout_s: float | None = None) -> bytes:
        """Fetch a result URL under the rules in the module docstring, within one total deadline.

        Raises:
            CloudError: refused URL or redirect (``"BadResultUrl"``), expired result (``"ResultExpired"``),
                too large (``"ResultTooLarge"``), timeout (``"Timeout"``), or repeated failures (``"DownloadFailed"``).
        """
        deadline = self._deadline(timeout_s)
        last = ""
        for attempt in range(4):
            for _hop in range(4):
                parsed, addr = self._check_url(url, task_id, deadline)
                schemes = ["https", "http"] if parsed.scheme == "http" else ["https"]
                own = (parsed.hostname or "").lower() == self._api_host
                if parsed.scheme == "http" and own and self._api_plain_http:
                    schemes = ["http"]  # the bundled server's own results: it speaks plain http only
                got = None
                for scheme in schemes:
                    try:
                        got = self.transport.download(urlunparse(parsed._replace(scheme=scheme)), connect_to=addr,
                                                      max_bytes=self.max_download_bytes, deadline=deadline)
                        break
                    except TransportError as exc:
                        if exc.kind == "too_large":
                            raise self._error(
                                f"the result of task {task_id} is larger than {self.max_download_bytes} "
                                f"bytes ({exc}); refusing it",
                                code="ResultTooLarge",
                                task_id=task_id,
                            ) from None
                        if exc.kind == "timeout" or time.monotonic() >= deadline:
                            raise self._error(f"downloading the result of task {task_id} did not finish within the "
                                              f"deadline ({exc})", code="Timeout", task_id=task_id) from None
                        last = f"{scheme}: {exc}"
                        if scheme == "https" and len(schemes) > 1 and exc.kind in ("connect", "dropped", "other"):
                            continue  # http is allowed for these hosts: the service's own URLs are often http
                        got = None
                        break
                if got is None:
                    break
                if got.status_code in (301, 302, 303, 307, 308):
                    target = urljoin(url, got.headers.get("location", ""))
                    if (urlparse(target).hostname or "").lower() != (parsed.hostname or "").lower():
                        raise self._error(f"the result of task {task_id} redirects to another host "
                                          f"({quote(urlparse(target).hostname, 80)}); refusing it",
                                          code="BadResultUrl", task_id=task_id)
                    url = target
                    continue
                if got.status_code == 200:
                    return got.content
                if got.status_code in (403, 404, 410):
                    raise self._error(f"the result of task {task_id} is no longer available (HTTP {got.status_code}); "
                                      "DashScope keeps results for 24 h — submit the photo again",
                                      code="ResultExpired", task_id=task_id, status_code=got.status_code)
                if got.status_code < 500:
                    raise self._error(f"downloading the result of task {task_id} failed with HTTP {got.status_code}",
                                      code="DownloadFailed", task_id=task_id, status_code=got.status_code)
                last = f"HTTP {got.status_code}"
                break
            else:
                raise self._error(
                    f"the result of task {task_id} redirects too often", code="BadResultUrl", task_id=task_id
                )
            logger.warning("download of task %s result failed (%s); retrying", task_id, last)
            if time.monotonic() >= deadline:
                break
            self._pause(attempt, deadline)
        raise self._error(f"downloading the result of task {task_id} failed ({last})", code="DownloadFailed",
                          task_id=task_id)

    def download_image(self, url: str, *, task_id: str | None = None, rgb: bool = False,
                       timeout_s: float | None = None) -> np.ndarray:
        """Download and decode a result image, raw values kept (mode L → (H, W), RGB → (H, W, 3), …).

        Raises:
            CloudError: as ``download``, or code ``"BadResult"`` when the bytes are not an image.
            InputError: the image has too many pixels (a decompression bomb), with ``load_image``'s message.
        """
        data = self.download(url, task_id=task_id, timeout_s=timeout_s)
        return decode_image_bytes(data, task_id=task_id, max_pixels=self.max_pixels, rgb=rgb)




def decode_image_bytes(
    data: bytes, *, task_id: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, rgb: bool = False
) -> np.ndarray:
    """Decode image bytes into a numpy array.

    With ``rgb=True`` the result is (H, W, 3) uint8 RGB; otherwise the file's raw values are kept
    (palette images give their indices, 16-bit greys stay uint16).

    Raises:
        InputError: more than ``max_pixels`` pixels or a decompression bomb (``load_image``'s message).
        CloudError: not a readable image (code ``"BadResult"``).
    """
    import io
    import warnings

    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    from ..io import too_big_message

    label = f"the result of task {task_id}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise InputError(too_big_message(label, w, h, max_pixels))
                img.load()
                if rgb:
                    return np.asarray(img.convert("RGB")).copy()
                if img.mode in ("I;16", "I;16B", "I;16L"):
                    return np.asarray(img, dtype=np.uint16).copy()
                if img.mode == "I":
                    return np.asarray(img, dtype=np.int32).copy()
                if img.mode not in ("L", "P", "RGB", "RGBA", "LA", "1"):
                    return np.asarray(img.convert("RGB")).copy()
                return np.asarray(img).copy()
    except PILImage.DecompressionBombError as exc:
        raise InputError(
            f"{label}: {exc.args[0] if exc.args else 'too many pixels'}; downscale it first "
            "(or raise PIL.Image.MAX_IMAGE_PIXELS and PERSON_ERASE_MAX_PIXELS / max_pixels if you trust the file)"
        ) from None
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise CloudError(
            f"{label} is not a readable image ({type(exc).__name__}: {quote(str(exc), 100)}; received "
            f"{len(data)} bytes starting {quote(data[:16].hex(), 40)})",
            code="BadResult", task_id=task_id,
        ) from None
