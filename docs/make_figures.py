"""Regenerate the README pictures from license-clean images (scikit-image's bundled photos).

    python docs/make_figures.py

The scene is the notebooks' ``launch_pad``: the astronaut's figure (NASA, public domain) pasted at four
scales onto scikit-image's ``rocket`` photo (public domain); both images are bundled with scikit-image (BSD).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image as PILImage

import person_erase as pe
from person_erase.overlay import side_by_side

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"
sys.path.insert(0, str(ROOT / "notebooks"))

from _scenes import launch_pad  # noqa: E402


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photo = launch_pad()
    people = pe.segment(photo)
    PILImage.fromarray(people.overlay(photo)).save(OUT / "launch_pad.overlay.png", optimize=True)
    erased = pe.erase(photo, people, policy="passersby")
    redacted = pe.redact(photo, people, style="pixelate", policy="passersby")
    strip = side_by_side(people.overlay(photo), erased.image, redacted.image,
                         titles=["segment: people 0-3", "erase --policy passersby",
                                 "redact --style pixelate --policy passersby"])
    small = PILImage.fromarray(strip)
    small = small.resize((small.width * 3 // 4, small.height * 3 // 4), PILImage.LANCZOS)
    small.save(OUT / "before_after.png", optimize=True)
    print(f"wrote {OUT}/before_after.png and launch_pad.overlay.png")


if __name__ == "__main__":
    main()
