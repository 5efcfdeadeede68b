"""``patchmatch``: PatchMatch inpainting (pypatchmatch), the default offline eraser."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from ..errors import EngineError, InputError
from ._common import check_inputs, paste

# Detail restoration: how sharply the 4 neighbouring matches are cross-faded (bilinear weight ** this;
# 1 = plain bilinear, blurs; large = nearest, leaves seams), and the cut-off between the upscaled
# fill's low frequencies and the copies' high frequencies (Gaussian sigma in low-res pixels).
_BLEND_SHARPNESS = 4.0
_SPLIT_SIGMA = 1.0


class PatchMatchEraser:
    """Fill the erase mask by copying patches of the rest of the photo (PatchMatch, MIT ``pypatchmatch``).

    The keep mask is the library's ``global_mask``: kept pixels are neither filled nor ever used as
    a fill source (put every person who must not be copied into ``keep``; ``compose.apply_eraser``
    also adds the other, not yet filled holes of the crop).

    Speed / quality strategy. PatchMatch's cost grows with the number of hole pixels (the surrounding
    crop matters much less), so a person-sized hole at 1 MP takes seconds at full resolution, and
    filling at a lower resolution and only upscaling loses the texture. So:

    1. holes of at most ``work_px`` pixels are filled at full resolution;
    2. bigger holes are filled at scale ``s = sqrt(work_px / hole_px)`` (not below ``min_scale``),
       then the detail is restored at full resolution: a nearest-neighbour field (which known patch
       each filled low-resolution patch looks like; a small vectorised PatchMatch, patch radius 2)
       is scaled up and used to copy full-resolution pixels from the matched places; the result keeps
       the low frequencies of the upscaled fill and takes the high frequencies from those copies.
       Copies never come from hole or keep pixels.

    The default ``work_px=5000`` keeps the texture of a full-resolution fill at under a second per
    person hole at 1 MP; ``work_px=None`` is the slow full-resolution reference. The measurements
    (``benchmarks/bench_erase.py``) are in ``benchmarks/README.md``.

    Args:
        patch_size: PatchMatch patch *radius* (3 means 7x7 patches; larger follows bigger structures
            but is much slower).
        seed: random seed; the same inputs and seed give bit-identical results.
        work_px: largest hole (in pixels) that is filled at full resolution; bigger holes are filled
            at a reduced scale with detail restoration. ``None`` or 0: always full resolution.
        min_scale: lowest working scale for huge holes (quality floor; time grows past ``work_px``).
        detail: restore full-resolution detail after a reduced-scale fill (False: plain upscaling,
            faster and blurry).
    """

    name: ClassVar[str] = "patchmatch"
    kind: ClassVar[str] = "inpaint"
    needs_network: ClassVar[bool] = False
    honours_keep_mask: ClassVar[bool] = True
    crops: ClassVar[bool] = True

    def __init__(
        self,
        patch_size: int = 3,
        seed: int = 0,
        *,
        work_px: int | None = 5000,
        min_scale: float = 0.2,
        detail: bool = True,
    ) -> None:
        if int(patch_size) < 1:
            raise InputError(f"patch_size is a radius in pixels and must be >= 1, got {patch_size}")
        if work_px is not None and int(work_px) < 0:
            raise InputError(f"work_px must be >= 0 pixels (0 or None: always full resolution), got {work_px}")
        if not 0 < float(min_scale) <= 1:
            raise InputError(f"min_scale must be in (0, 1], got {min_scale}")
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self.work_px = int(work_px or 0)
        self.min_scale = float(min_scale)
        self.detail = bool(detail)

    def __repr__(self) -> str:
        return (
            f"PatchMatchEraser(patch_size={self.patch_size}, seed={self.seed}, work_px={self.work_px}, "
            f"min_scale={self.min_scale}, detail={self.detail})"
        )

    def erase(self, image: np.ndarray, erase: np.ndarray, *, keep: np.ndarray | None = None) -> np.ndarray:
        """Return a new (H, W, 3) uint8 RGB image with ``erase`` filled; other pixels unchanged.

        Raises:
            InputError: bad shapes/dtypes or overlapping masks.
            EngineError: pypatchmatch is missing, or nothing outside ``erase``/``keep`` is left to copy from.
        """
        erase, keep = check_inputs(image, erase, keep)
        hole_px = int(np.count_nonzero(erase))
        if hole_px == 0:
            return image.copy()
        if not np.any(~erase & ~keep):
            raise EngineError(
                "patchmatch has nothing to copy from: every pixel is either to be erased or kept; "
                "use a redaction style (blur/pixelate/solid) or give the eraser a larger crop"
            )
        scale = 1.0
        if self.work_px and hole_px > self.work_px:
            scale = max(self.min_scale, (self.work_px / hole_px) ** 0.5)
        h, w = erase.shape
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if scale >= 1.0 or size[0] < 8 or size[1] < 8:
            return paste(image, self._inpaint(image, erase, keep), erase)
        return paste(image, self._reduced(image, erase, keep, size), erase)

    def _inpaint(self, image: np.ndarray, hole: np.ndarray, keep: np.ndarray) -> np.ndarray:
        try:
            from patchmatch import patch_match
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise EngineError("the patchmatch eraser needs pypatchmatch: pip install 'pypatchmatch>=2.2,<3'") from exc
        patch_match.set_random_seed(self.seed)
        try:
            return patch_match.inpaint(
                np.ascontiguousarray(image),
                hole.astype(np.uint8),
                global_mask=keep.astype(np.uint8) if keep.any() else None,
                patch_size=self.patch_size,
            )
        except RuntimeError as exc:
            raise EngineError(f"patchmatch failed on a {image.shape[1]}x{image.shape[0]} image: {exc}") from exc

    def _reduced(self, image: np.ndarray, hole: np.ndarray, keep: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Fill at ``size`` (w, h), upscale, and restore full-resolution detail."""
        h, w = hole.shape
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # A low-res pixel is a hole (or kept) if any full-res pixel under it is; hole wins.
        hole_s = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        keep_s = (cv2.resize(keep.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0) & ~hole_s
        if not np.any(~hole_s & ~keep_s):
            return self._inpaint(image, hole, keep)
        filled_s = self._inpaint(small, hole_s, keep_s)
        up = cv2.resize(filled_s, (w, h), interpolation=cv2.INTER_CUBIC)
        if not self.detail:
            return up
        r = 2
        valid = ~(cv2.dilate((hole_s | keep_s).astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0)
        valid[: r + 1] = valid[-r - 1 :] = False
        valid[:, : r + 1] = valid[:, -r - 1 :] = False
        if not valid.any():
            return up
        uy, ux = _nnf(filled_s.astype(np.float32), hole_s, valid, radius=r, iters=2, seed=self.seed)
        sh, sw = hole_s.shape
        sy, sx = sh / h, sw / w
        nny = np.full((sh, sw), -1, np.int64)
        nnx = np.zeros((sh, sw), np.int64)
        ty, tx = np.nonzero(hole_s)
        nny[ty, tx] = uy
        nnx[ty, tx] = ux
        # Each full-res hole pixel copies the full-res pixels at the same place relative to the
        # matches of the 4 nearest low-res pixels, blended bilinearly: where neighbouring matches
        # agree this is a sharp copy, where they differ it cross-fades instead of leaving a seam.
        qy, qx = np.nonzero(hole)
        cy = (qy + 0.5) * sy - 0.5
        cx = (qx + 0.5) * sx - 0.5
        y0 = np.floor(cy).astype(np.int64)
        x0 = np.floor(cx).astype(np.int64)
        fy, fx = (cy - y0).astype(np.float32), (cx - x0).astype(np.float32)
        acc = np.zeros((qy.size, 3), np.float32)
        wsum = np.zeros(qy.size, np.float32)
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            py = np.clip(y0 + dy, 0, sh - 1)
            px = np.clip(x0 + dx, 0, sw - 1)
            wgt = ((fy if dy else 1 - fy) * (fx if dx else 1 - fx)) ** _BLEND_SHARPNESS
            my, mx = nny[py, px], nnx[py, px]
            ok = my >= 0
            ty_ = np.rint(qy + (my - py) / sy).astype(np.int64)
            tx_ = np.rint(qx + (mx - px) / sx).astype(np.int64)
            ok &= (ty_ >= 0) & (ty_ < h) & (tx_ >= 0) & (tx_ < w)
            ty_ = np.clip(ty_, 0, h - 1)
            tx_ = np.clip(tx_, 0, w - 1)
            ok &= ~hole[ty_, tx_] & ~keep[ty_, tx_]
            wgt = np.where(ok, wgt, 0).astype(np.float32)
            acc += wgt[:, None] * image[ty_, tx_].astype(np.float32)
            wsum += wgt
        copied = up.astype(np.float32)
        have = wsum > 0
        copied[qy[have], qx[have]] = acc[have] / wsum[have, None]
        # Low frequencies from the upscaled fill, high frequencies from the full-res copies.
        sigma = _SPLIT_SIGMA / min(sx, sy)
        up_f = up.astype(np.float32)
        out = cv2.GaussianBlur(up_f, (0, 0), sigma) + copied - cv2.GaussianBlur(copied, (0, 0), sigma)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _nnf(
    img: np.ndarray, targets: np.ndarray, valid: np.ndarray, *, radius: int = 2, iters: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour field by a small vectorised PatchMatch (propagation + random search).

    Args:
        img: (h, w, 3) float32.
        targets: (h, w) bool, pixels to match (in ``np.nonzero`` order).
        valid: (h, w) bool, allowed match centres (their whole patch is known); not empty.

    Returns:
        ``(ys, xs)``: the matched centre of each target pixel.
    """
    rng = np.random.default_rng(seed)
    h, w = targets.shape
    r = radius
    pad = np.pad(img, ((r, r), (r, r), (0, 0)), mode="edge")
    pw = w + 2 * r
    flat = pad.reshape(-1, 3)
    offs = np.array([dy * pw + dx for dy in range(-r, r + 1) for dx in range(-r, r + 1)])
    ty, tx = np.nonzero(targets)
    n = ty.size
    tpatch = flat[((ty + r) * pw + (tx + r))[:, None] + offs[None, :]]
    vy, vx = np.nonzero(valid)
    pick = rng.integers(0, vy.size, n)
    my, mx = vy[pick].copy(), vx[pick].copy()

    def cost(cy: np.ndarray, cx: np.ndarray, idx: np.ndarray) -> np.ndarray:
        d = flat[((cy + r) * pw + (cx + r))[:, None] + offs[None, :]] - tpatch[idx]
        return np.einsum("nkc,nkc->n", d, d)

    best = cost(my, mx, np.arange(n))
    tid = np.full((h, w), -1, np.int64)
    tid[ty, tx] = np.arange(n)

    def offer(cy: np.ndarray, cx: np.ndarray, mask: np.ndarray) -> None:
        cy = np.clip(cy, 0, h - 1)
        cx = np.clip(cx, 0, w - 1)
        idx = np.flatnonzero(mask & valid[cy, cx])
        if idx.size == 0:
            return
        c = cost(cy[idx], cx[idx], idx)
        better = c < best[idx]
        j = idx[better]
        my[j] = cy[idx][better]
        mx[j] = cx[idx][better]
        best[j] = c[better]

    everyone = np.ones(n, dtype=bool)
    for _ in range(iters):
        for step in (8, 4, 2, 1):
            for dy, dx in ((0, step), (0, -step), (step, 0), (-step, 0)):
                ny, nx = ty + dy, tx + dx
                inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
                nid = np.where(inside, tid[np.clip(ny, 0, h - 1), np.clip(nx, 0, w - 1)], -1)
                has = nid >= 0
                nid = np.where(has, nid, 0)
                offer(my[nid] - dy, mx[nid] - dx, has)
        reach = max(h, w)
        while reach >= 1:
            offer(my + rng.integers(-reach, reach + 1, n), mx + rng.integers(-reach, reach + 1, n), everyone)
            reach //= 2
    return my, mx
