"""DashScope ``image-erase-completion`` as an eraser.

The photo, the erase mask (``mask_url``, 255 = erase) and the keep mask (``foreground_url``, 255 = keep;
omitted when empty) are fitted into the service's limits together (``cloud.adapt``, masks with nearest
neighbour), uploaded through the SDK's temporary storage, and erased by one async task. ``parameters``
always carries all three booleans explicitly, because the service's own defaults are not reliably
documented:

* ``dilate_flag`` — default **True**: the documented default, and the service's advice for masks from
  person instance segmentation (which is where person_erase's masks come from). It does not stack with
  the local dilation in the output: the local dilation (``dilate``) decides the erase mask — the region
  that is replaced — and keep wins over it (erase ∩ keep = ∅); the keep mask is sent as
  ``foreground_url`` so the service's own dilation stays out of kept people; and whatever the service's
  dilation changes *outside* the erase mask is not taken (the pipeline pastes back only the mask's
  pixels, and counts the rest as ``engine_outside_changed_px``). So the service's dilation only widens the
  band it regenerates around the hole, which blends the fill, never the area that changes. The value
  sent is in the ``EraseInfo.parameters`` that ``collect`` returns and in the report's parameters.
* ``fast_mode`` — default False (full quality).
* ``add_watermark`` — default False (the service's default is to stamp a watermark).

What ``erase`` returns: the service's result brought back to the photo's size (padding cropped, upscaled
when the photo had to be downscaled), except that every pixel the service left unchanged outside the erase
mask is the input's exact pixel — so the resampling round trip of a big photo is not mistaken for a
change. Pixels the service *did* change outside the mask (a watermark, its own dilation, JPEG noise) are
returned as the service made them, so ``compose.apply_eraser`` (which pastes back only the mask's pixels,
the pipeline's path) can count them as ``engine_outside_changed_px``. ``compose=True`` pastes the mask's
pixels into a copy of the input here already, for callers outside the pipeline that want the usual eraser
contract (outside the mask byte-identical). ``erase`` returns the image; ``collect`` (the second of the two
phases, ``submit`` then ``collect``, which the pipeline uses) returns ``Erased(image, info)``: the task id,
request id, timings, the parameters sent, and in ``info.details`` the count taken at the resolution the
service saw (``service_changed_outside_px``).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import Any, ClassVar

import cv2
import numpy as np

from ..cloud.adapt import (
    Adaptation,
    adapt_image,
    adapt_mask,
    check_result_size,
    encode_image,
    encode_mask,
    plan_adaptation,
    restore_image,
    restore_sent_size,
    write_file,
)
from ..cloud.client import ERASE_MODEL, DashScopeClient
from ..engineinfo import Erased, EraseInfo
from ..errors import InputError
from ..pixels import check_rgb


def _check(image: np.ndarray, erase: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = check_rgb(image, who="the dashscope eraser")
    erase = np.asarray(erase)
    if erase.shape != image.shape[:2] or erase.dtype != bool:
        raise InputError(f"erase must be a {image.shape[:2]} bool mask, got shape {erase.shape} dtype {erase.dtype}")
    keep = np.zeros_like(erase) if keep is None else np.asarray(keep)
    if keep.shape != image.shape[:2] or keep.dtype != bool:
        raise InputError(f"keep must be a {image.shape[:2]} bool mask, got shape {keep.shape} dtype {keep.dtype}")
    return image, erase, keep


def _sent_geometry(image: np.ndarray, erase: np.ndarray, keep: np.ndarray, plan: Adaptation):
    sent = adapt_image(image, plan)
    sent_erase = adapt_mask(erase, plan)
    sent_keep = adapt_mask(keep, plan) & ~sent_erase
    return sent, sent_erase, sent_keep


class DashScopeEraser:
    """Inpainting by DashScope (``image-erase-completion``); see the module docstring for the defaults.

    Args:
        dilate_flag, fast_mode, add_watermark: sent explicitly on every task.
        compose: paste only the erase mask's pixels into a copy of the input (see the module docstring).
        client: a ``DashScopeClient``; built from ``api_key``/``base_url``/``timeout_s`` and ``Settings`` if omitted.

    Raises:
        CloudError: no API key configured (before any network call).
    """

    name: ClassVar[str] = "dashscope"
    kind: ClassVar[str] = "inpaint"
    needs_network: ClassVar[bool] = True
    honours_keep_mask: ClassVar[bool] = True
    crops: ClassVar[bool] = False
    model: ClassVar[str] = ERASE_MODEL

    def __init__(
        self,
        *,
        dilate_flag: bool = True,
        fast_mode: bool = False,
        add_watermark: bool = False,
        compose: bool = False,
        client: DashScopeClient | None = None,
        api_key: Any = None,
        base_url: str | None = None,
        timeout_s: float | None = None,
        **client_options: Any,
    ) -> None:
        self.dilate_flag = bool(dilate_flag)
        self.fast_mode = bool(fast_mode)
        self.add_watermark = bool(add_watermark)
        self.compose = bool(compose)
        self._upload_ext: dict[str, str] = {}  # task id -> ".png" / ".jpg" of the photo sent
        self.client = client or DashScopeClient(
            api_key=api_key, base_url=base_url, timeout_s=timeout_s, **client_options
        )

    def __repr__(self) -> str:
        return (
            f"DashScopeEraser(dilate_flag={self.dilate_flag}, fast_mode={self.fast_mode}, "
            f"add_watermark={self.add_watermark}, base_url={self.client.base_url!r})"
        )

    @property
    def parameters(self) -> dict[str, bool]:
        """The ``parameters`` object sent with every task."""
        return {"dilate_flag": self.dilate_flag, "fast_mode": self.fast_mode, "add_watermark": self.add_watermark}

    def submit(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None,
               on_intent: Any = None, exclude: Any = ()) -> str:
        """Upload photo and masks (adapted) and create the task; returns the task id.

        ``on_intent`` / ``exclude``: see ``DashScopeClient.submit`` (journal the intent; ids of other work).
        """
        image, erase, keep = _check(image, erase, keep)
        plan = plan_adaptation(*image.shape[:2])
        sent, sent_erase, sent_keep = _sent_geometry(image, erase, keep, plan)
        stem = uuid.uuid4().hex
        with tempfile.TemporaryDirectory(prefix="pe-erase-") as tmp:
            data, ext = encode_image(sent)
            files = {"image_url": write_file(tmp, f"img-{stem}", data, ext)}
            files["mask_url"] = write_file(tmp, f"mask-{stem}", encode_mask(sent_erase), ".png")
            if sent_keep.any():
                files["foreground_url"] = write_file(tmp, f"keep-{stem}", encode_mask(sent_keep), ".png")
            cert = None
            inputs: dict[str, str] = {}
            for field, path in files.items():
                inputs[field], cert = self.client.upload(path, model=ERASE_MODEL, certificate=cert)
        task_id = self.client.submit(
            ERASE_MODEL, inputs, parameters=self.parameters, on_intent=on_intent, exclude=exclude
        )
        self._upload_ext[task_id] = ext
        return task_id

    def collect(
        self, task_id: str, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None
    ) -> Erased:
        """Wait for ``task_id`` and bring its result back to ``image``'s size (see the module docstring);
        returns the image with what the task did."""
        image, erase, keep = _check(image, erase, keep)
        t0 = time.perf_counter()
        result = self.client.wait(task_id, model=ERASE_MODEL)
        t1 = time.perf_counter()
        raw = self.client.download_image(result.url("output_image_url"), task_id=task_id, rgb=True)
        t2 = time.perf_counter()
        plan = plan_adaptation(*image.shape[:2])
        sent, sent_erase, _ = _sent_geometry(image, erase, keep, plan)
        got = raw.shape[:2]
        size_note = check_result_size(got, plan, task_id=task_id, what="erase result")  # type: ignore[arg-type]
        raw = restore_sent_size(raw, plan)
        t, _, left, _ = plan.pad
        sh, sw = plan.scaled
        # A JPEG upload (a photo too big for a 10 MB PNG) is compared with what the service really saw:
        # the same encoding (deterministic) decoded again, so JPEG noise is not counted as a change.
        ext = self._upload_ext.pop(task_id, None) or encode_image(sent)[1]
        seen = sent
        if ext != ".png":
            data, ext = encode_image(sent)
            seen = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]  # type: ignore[index]
        diff = (raw != seen).any(axis=2)
        moved = (diff & ~sent_erase)[t : t + sh, left : left + sw]
        changed = int(moved.sum())
        restored = restore_image(raw, plan)
        if self.compose:
            out = image.copy()
            out[erase] = restored[erase]
        else:
            if plan.downscaled:
                moved = (
                    cv2.resize(
                        moved.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST
                    )
                    > 0
                )
            out = np.where((erase | moved)[:, :, None], restored, image)
        info = EraseInfo(
            engine="dashscope", task_ids=(task_id,), request_ids=(result.request_id,) if result.request_id else (),
            timings_ms={"wait": (t1 - t0) * 1e3, "download": (t2 - t1) * 1e3}, parameters=self.parameters,
            details={
                "adaptation": plan.describe(),
                "result_size": [int(got[0]), int(got[1])],
                "upload_format": ext,
                "service_changed_outside_px": changed,
                **({"result_rescaled": size_note} if size_note else {}),
            },
        )
        return Erased(out, info)

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        """Fill ``erase`` in ``image``; returns a new (H, W, 3) uint8 RGB array (see the module docstring)."""
        image, erase, keep = _check(image, erase, keep)
        if not erase.any():
            return image.copy()
        return self.collect(self.submit(image, erase, keep=keep), image, erase, keep=keep).image
