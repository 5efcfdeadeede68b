"""The segmentation cache: who is where in a photo, keyed by its content and the segmenter's options.

One ``.npz`` per photo and segmenter (label map + instance table, the exact masks too when they
overlap), in ``OUT_DIR/.person_erase/segments`` or a shared ``cache_dir``: a second run with another
selection or eraser does not segment again. Entries are written atomically; a damaged one is a miss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..engineinfo import SegmentInfo
from ..errors import PersonEraseError
from ..instances import Instances
from ..io import atomic_write
from .params import Options, digest

#: 2: the engine's info is a typed ``SegmentInfo`` (was a free-form ``meta`` dict)
CACHE_VERSION = 2


def cache_key(sha256: str, segmenter: str, options: dict[str, Any] | Options) -> str:
    """Cache key of one photo's segmentation: content hash + segmenter name + its options."""
    return digest({"v": CACHE_VERSION, "sha256": sha256, "segmenter": segmenter, "options": dict(options)})


def cacheable(segmenter: str) -> bool:
    """``labels:PATH`` reads a file the user may change: not cached. Everything else is."""
    return segmenter.partition(":")[0] != "labels"


def _entry(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.npz"


def store_segmentation(cache_dir: Path, key: str, people: Instances) -> Path:
    """Write ``people`` (label map + instance table; exact masks too when they overlap) atomically."""
    path = _entry(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = people.to_label_map() if len(people) else np.zeros(people.shape, np.uint8)
    arrays: dict[str, np.ndarray] = {
        "labels": labels,
        "index": people.index,
        "scores": people.scores,
        "boxes": people.boxes,
        "info": np.array(json.dumps(people.info.to_dict())),
    }
    if len(people) and int(people.masks.sum()) != int((labels > 0).sum()):
        arrays["packed"] = np.packbits(people.masks, axis=-1)
    return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]


def load_segmentation(cache_dir: Path, key: str) -> Instances | None:
    """The cached ``Instances`` for ``key``, or None (missing or unreadable entries are a miss)."""
    path = _entry(cache_dir, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            labels, index = z["labels"], z["index"].astype(np.int64)
            if "packed" in z.files:
                masks = np.unpackbits(z["packed"], axis=-1, count=labels.shape[1]).astype(bool)
            else:
                masks = labels[None, :, :] == (index + 1)[:, None, None]
            info = SegmentInfo.from_dict(json.loads(str(z["info"])))
            return Instances(masks=masks, boxes=z["boxes"], scores=z["scores"], index=index, info=info)
    except (OSError, ValueError, KeyError, TypeError, PersonEraseError):
        return None
