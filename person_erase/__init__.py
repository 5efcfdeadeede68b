"""person_erase: find every person in a photo, then erase (inpaint) or redact the ones you choose.

>>> import person_erase as pe
>>> img = pe.load_image("photo.jpg")
>>> people = pe.segment(img)                 # numbered 0..N-1 left to right
>>> result = pe.erase(img, people, select=[0, 2])
>>> result.save("out.jpg")
"""

from .erasers import ERASERS, get_eraser, register_eraser
from .errors import CloudError, EngineError, InputError, PersonEraseError, SelectionError
from .instances import Instances
from .io import Image, load_image, save_image
from .pipeline import Result, erase, redact, segment
from .segmenters import SEGMENTERS, get_segmenter, register_segmenter
from .selection import POLICIES, Selection, select_people
from .verify import verify_removal

__version__ = "0.1.0"

_LAZY = {"BatchParams": "batch", "run_batch": "batch"}


def __getattr__(name: str) -> object:
    """Batch processing is imported on first use (``pe.run_batch``, ``pe.BatchParams``)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BatchParams",
    "CloudError",
    "ERASERS",
    "EngineError",
    "Image",
    "InputError",
    "Instances",
    "POLICIES",
    "PersonEraseError",
    "Result",
    "SEGMENTERS",
    "Selection",
    "SelectionError",
    "__version__",
    "erase",
    "get_eraser",
    "get_segmenter",
    "load_image",
    "redact",
    "register_eraser",
    "register_segmenter",
    "run_batch",
    "save_image",
    "segment",
    "select_people",
    "verify_removal",
]
