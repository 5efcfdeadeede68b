"""Regenerate the README pictures from license-clean images (scikit-image's bundled photos).

    python docs/make_figures.py

astronaut: NASA, public domain; bundled with scikit-image (BSD).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from skimage import data

import person_erase as pe
from person_erase.overlay import side_by_side

OUT = Path(__file__).resolve().parent / "images"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photo = np.ascontiguousarray(data.astronaut())
    people = pe.segment(photo)
    PILImage.fromarray(people.overlay(photo)).save(OUT / "astronaut.overlay.png", optimize=True)
    erased = pe.erase(photo, people, select=[0])
    redacted = pe.redact(photo, people, style="pixelate")
    strip = side_by_side(people.overlay(photo), erased.image, redacted.image,
                         titles=["segment: person 0", "erase --select 0", "redact --style pixelate"])
    small = PILImage.fromarray(strip)
    small = small.resize((small.width * 2 // 3, small.height * 2 // 3), PILImage.LANCZOS)
    small.save(OUT / "before_after.png", optimize=True)
    print(f"wrote {OUT}/before_after.png and astronaut.overlay.png")


if __name__ == "__main__":
    main()
