"""Source of notebooks/02_masks.ipynb (built by notebooks/_build.py)."""

# %% [markdown]
# # Masks, step by step
#
# Every eraser gets two masks:
#
# * **erase** — the pixels to fill: the chosen people, grown a little (*dilation*) to catch hair and soft edges;
# * **keep** — the people who stay, cleaned up; these pixels never change and are never copied into a hole.
#
# Where the two would touch, **keep wins**. This notebook builds both masks one step at a time with the
# functions in `person_erase.masks`, then shows what each parameter does.

# %%
import matplotlib.pyplot as plt
import numpy as np
from _scenes import launch_pad, show

import person_erase as pe
from person_erase import masks as M

photo = launch_pad()
people = pe.segment(photo)
H, W = photo.shape[:2]

ERASE, KEEP, CLASH = (230, 40, 40), (40, 200, 90), (255, 220, 0)


def paint(image, layers, alpha=0.55):
    """Tint ``image`` with (mask, colour) layers, later layers on top."""
    out = image.astype(np.float32)
    for mask, colour in layers:
        out[mask] = out[mask] * (1 - alpha) + np.array(colour) * alpha
    return out.round().astype(np.uint8)


zoom = np.s_[190:427, 0:330]   # persons 0 and 1, where they touch
show(people.overlay(photo), people.overlay(photo)[zoom], titles=["the photo", "zoom: persons 0 and 1"], width=9)

# %% [markdown]
# We erase **person 0** and keep the others. Person 0 stands right against person 1.

# %%
go = people.positions([0])                      # row positions of the people to erase
chosen = np.zeros(len(people), bool)
chosen[go] = True

# %% [markdown]
# ## Step 1 — union
# One mask for everyone who goes, one for everyone who stays.

# %%
erase_raw = M.union(people.masks[chosen])
keep_raw = M.union(people.masks[~chosen])
show(erase_raw[zoom], keep_raw[zoom], titles=["erase: union of the chosen", "keep: union of the others"], width=7)

# %% [markdown]
# ## Step 2 — dilation
# Grow the erase mask by `dilate` pixels. The default scales with the photo (9 px at 1 megapixel):

# %%
r = M.default_dilate(H, W)
print(f"default dilation for {W}x{H}: {r} px   (for 4000x3000: {M.default_dilate(3000, 4000)} px)")
grown = M.dilate(erase_raw, r)
show(paint(photo, [(erase_raw, ERASE), (grown & ~erase_raw, CLASH)])[zoom],
     titles=[f"the person (red) and the {r} px ring the dilation adds (yellow)"], width=5)

# %% [markdown]
# ## Step 3 — cleaning the keep mask
#
# Segmenter masks can carry specks, hairline strays and holes. Here we add some to person 1 so you can
# see what each cleaning step removes — without shaving anything off the kept person.

# %%
noisy = keep_raw.copy()
noisy[200:203, 20:100] = True            # a hairline stray
noisy[228:235, 30:37] = True              # a speck
noisy[330:345, 195:215] = False           # a hole in the kept person

step_a = M.open_by_reconstruction(noisy, 2)   # drop what is *only* thin; kept people stay whole
step_b = M.remove_small(step_a, 64)            # drop components under 64 px
step_c = M.fill_holes(step_b)                  # fill enclosed holes
show(noisy[zoom], step_a[zoom], step_b[zoom], step_c[zoom],
     titles=["noisy keep", "open by reconstr.", "small parts removed", "holes filled"], width=10)

# %% [markdown]
# Why *by reconstruction*? A plain opening removes the stray too, but also nibbles fingers, hair and
# corners off the kept people; reconstruction keeps every surviving person whole:

# %%
plain = M.open_(noisy, 2)
person = keep_raw & noisy                     # the kept people's own pixels
print("pixels of the kept people lost — plain opening:", int((person & ~plain).sum()),
      "| opening by reconstruction:", int((person & ~step_a).sum()))

# %% [markdown]
# ## Step 4 — keep wins
# Where the grown erase mask reaches into a kept person (yellow), those pixels are taken out of the
# erase mask. Their count is reported as `overlap_resolved_px`, so **erase ∩ keep is always empty**.

# %%
keep = M.clean(keep_raw, open_radius=2, min_area=max(16, int(H * W * 5e-5)))
clash = grown & keep
erase = grown & ~keep
print("overlap resolved toward keep:", int(clash.sum()), "px;  erase ∩ keep:", int((erase & keep).sum()), "px")
show(paint(photo, [(erase, ERASE), (keep, KEEP), (clash, CLASH)], alpha=0.6)[zoom],
     titles=["erase (red), keep (green), resolved (yellow)"], width=5)

# %% [markdown]
# `build_masks` does all four steps in one call — and `pe.erase` calls it for you:

# %%
pair = M.build_masks(people, go)
print("same erase mask:", (pair.erase == erase).all(), "| same keep mask:", (pair.keep == keep).all(),
      "| overlap_resolved_px:", pair.overlap_resolved_px, "| dilate:", pair.dilate)

# %% [markdown]
# ## What the parameters do
# ### `dilate`
# More dilation catches more of the edge, and takes more pixels back from the kept neighbour.

# %%
sizes = [0, 3, 8, 16]
pairs = [M.build_masks(people, go, dilate_px=d) for d in sizes]
show(*[paint(photo, [(p.erase, ERASE), (p.keep, KEEP)])[zoom] for p in pairs],
     titles=[f"dilate={d}" for d in sizes], width=10)

steps = list(range(0, 25, 2))
runs = [M.build_masks(people, go, dilate_px=d) for d in steps]
fig, ax = plt.subplots(figsize=(5, 2.4), dpi=80)
ax.plot(steps, [p.erase.sum() / 1000 for p in runs], "o-", label="erase mask (k px)")
ax.plot(steps, [p.overlap_resolved_px / 1000 for p in runs], "s-", label="taken back by keep (k px)")
ax.set_xlabel("dilate (px)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ### …and in the result
# Without dilation the soft edge of the person is left behind as a faint outline (a *halo*).

# %%
look = np.s_[240:340, 10:120]
outs = [pe.erase(photo, people, select=[0], dilate=d).image for d in (0, r, 16)]
show(photo[look], *[o[look] for o in outs], titles=["before", "dilate=0", f"dilate={r} (default)", "dilate=16"], width=9)

# %% [markdown]
# ### `open_radius` and `min_area` (keep-mask cleaning)
# A larger opening radius treats thicker strays as noise; `min_area` drops small pieces.

# %%
show(*[M.clean(noisy, open_radius=k, min_area=a)[zoom] for k, a in ((0, 0), (1, 0), (2, 64), (6, 64))],
     titles=["open 0, min 0", "open 1, min 0", "open 2, min 64", "open 6, min 64"], width=10)
