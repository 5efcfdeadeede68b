"""Source of notebooks/01_quickstart.ipynb (built by notebooks/_build.py)."""

# %% [markdown]
# # Quickstart: find people, pick some, erase them
#
# Four calls: **load** a photo, **segment** it into numbered people, **erase** the ones you pick,
# **save**. Everything runs offline.
#
# The photo is composed from scikit-image's public-domain pictures (the astronaut, pasted four times
# onto the rocket launch pad), so we also know what the background behind each person looks like.

# %%
import tempfile
from pathlib import Path

from _scenes import launch_pad, show
from PIL import Image as PILImage

import person_erase as pe

work = Path(tempfile.mkdtemp(prefix="pe-quickstart-"))
PILImage.fromarray(launch_pad()).save(work / "launch_pad.jpg", quality=92)

photo = pe.load_image(work / "launch_pad.jpg")
print(photo.width, "x", photo.height, photo.metadata.format)
show(photo.pixels, width=6)

# %% [markdown]
# ## 1. Segment: every person gets a number
#
# Numbers run **left to right**. A person keeps their number whatever you do next.

# %%
people = pe.segment(photo)
print(people)
show(people.overlay(photo), width=6)

# %% [markdown]
# One row per person: confidence, box (x0, y0, x1, y1) and share of the photo.

# %%
for i, score, box, area in zip(people.index, people.scores, people.boxes, people.areas, strict=True):
    print(f"person {i}: score {score:.2f}  box {box.tolist()}  {100 * area / (photo.width * photo.height):4.1f}% of the photo")

# %% [markdown]
# ## 2. Erase people 0, 2 and 3
#
# `select=[...]` names who goes; `keep=[1]` says the same thing the other way round.
# The default eraser is **PatchMatch**: it fills each hole with texture copied from the rest of the
# photo, never from the people you keep.

# %%
result = pe.erase(photo, people, select=[0, 2, 3])
show(result.before_after(), width=10)

# %% [markdown]
# The left picture marks who was erased (red outline) and who was kept (green).
# Same choice, other way round:

# %%
same = pe.erase(photo, people, keep=[1], eraser="telea")  # telea: a fast preview eraser
print("same people erased:", (same.erase_mask == result.erase_mask).all())

# %% [markdown]
# ## 3. What happened: the report
#
# Pixels outside the erase mask are guaranteed untouched: `outside_mask_changed_px` is checked on
# every image and is always 0.

# %%
r = result.report
print("erased px:", r.erase_area_px, "| kept px:", r.keep_area_px,
      "| outside the mask changed:", r.outside_mask_changed_px)
print("timings (ms):", r.timings_ms)
for row in r.instances:
    print(f"  {row.index}: {row.reason}")

# %% [markdown]
# ## 4. Save
#
# The photo is written atomically; the report is JSON (for a sidecar file or a database).

# %%
out = result.save(work / "launch_pad.erased.jpg", metadata="strip-gps")
print(out.name, out.stat().st_size // 1024, "KiB")
print(r.model_dump_json(include={"erase_area_px", "keep_area_px", "overlap_resolved_px", "outside_mask_changed_px"}))
print(r.instances[0].model_dump_json())

# %% [markdown]
# ## One more: a single portrait
#
# With one person and no `select`, everyone (here: the astronaut) is erased.

# %%
from _scenes import astronaut  # noqa: E402

portrait = astronaut()[::2, ::2].copy()   # half size: quicker
alone = pe.erase(portrait, eraser="patchmatch")
show(alone.before_after(), width=6)

# %% [markdown]
# ## Your own photos (optional)
#
# If the project's dev set is next to the repository (`../shared/data`), try a few real photos.
# (The committed notebook shows none: dev-set photos are never committed.)

# %%
import json  # noqa: E402
import os  # noqa: E402

dev = Path("../../shared/data/coco-persons-dev")
if os.environ.get("PERSON_ERASE_NOTEBOOK_BUILD") or not (dev / "manifest.json").exists():
    print("dev set not shown here")
else:
    for item in json.loads((dev / "manifest.json").read_text())["items"][:2]:
        img = pe.load_image(dev / item["image"])
        found = pe.segment(img)
        show(found.overlay(img), pe.erase(img, found, eraser="telea").image, titles=["people", "erased (telea)"])
