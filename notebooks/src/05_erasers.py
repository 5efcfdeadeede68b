"""Source of notebooks/05_erasers.ipynb (built by notebooks/_build.py)."""

# %% [markdown]
# # Erasers side by side: PatchMatch, Telea, DashScope
#
# Same photo, same people, same masks — only the eraser changes.
#
# | eraser | where it runs | good at |
# | --- | --- | --- |
# | `patchmatch` (default) | offline | real texture: copies patches from the rest of the photo, never from kept people |
# | `telea` | offline, very fast | thin seams and previews; big holes become smooth smears |
# | `dashscope` | Alibaba Cloud (needs a key) | here: the project's own DashScope-compatible server, see notebook 04 |
#
# Our composed photo has a bonus: we know the **true background** behind every pasted person, so we
# can score each fill against it.

# %%
import time

import cv2
import matplotlib.pyplot as plt
import numpy as np
from _scenes import clean_launch_pad, launch_pad, show

import person_erase as pe

photo, truth = launch_pad(), clean_launch_pad()
people = pe.segment(photo)
show(people.overlay(photo), truth, titles=["the photo: we erase 0, 2 and 3", "the truth behind them"], width=9)

# %% [markdown]
# ## Run each eraser

# %%
results, seconds = {}, {}
for name in ["telea", "patchmatch"]:
    t0 = time.perf_counter()
    results[name] = pe.erase(photo, people, keep=[1], eraser=name)
    seconds[name] = time.perf_counter() - t0
    print(f"{name:11s} {seconds[name]:5.2f} s   (eraser stage: {results[name].report.timings_ms['erase'] / 1000:.2f} s)")

# %% [markdown]
# And DashScope's `image-erase-completion`, through the project's own DashScope-compatible server
# on this machine (it speaks the real protocol; its fills come from our local PatchMatch, so the
# difference you see here is the trip through the wire, not a different model):

# %%
import os  # noqa: E402

from person_erase.fakecloud import FakeDashScope  # noqa: E402

with FakeDashScope(latency_seg=0.1, latency_erase=0.1) as server:
    os.environ.update(DASHSCOPE_API_KEY="sk-notebook-fake", DASHSCOPE_HTTP_BASE_URL=server.base_url)
    t0 = time.perf_counter()
    results["dashscope"] = pe.erase(photo, people, keep=[1], eraser="dashscope")
    seconds["dashscope"] = time.perf_counter() - t0
    submitted = server.stats()["submitted"]
for key in ("DASHSCOPE_API_KEY", "DASHSCOPE_HTTP_BASE_URL"):
    os.environ.pop(key)
print(f"dashscope   {seconds['dashscope']:5.2f} s   tasks submitted: {submitted}")

# %% [markdown]
# ## Look

# %%
names = list(results)
show(*[results[n].image for n in names], titles=names, width=10)
zoom = np.s_[220:427, 330:640]
show(photo[zoom], *[results[n].image[zoom] for n in names], titles=["before", *names], width=10)

# %% [markdown]
# Telea diffuses colour in from every edge of the hole — including the kept astronaut, whose orange
# bleeds into the left hole. PatchMatch and the DashScope path never copy from kept people.
#
# ## Score against the true background
#
# * **PSNR** inside the erased pixels (higher = closer to the truth);
# * **texture** — how much fine detail the fill has compared with the truth (~1 real texture,
#   well under 1 a smooth smear).


# %%
def abs_laplacian(img):
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(cv2.Laplacian(grey, cv2.CV_32F))


hole = results["patchmatch"].erase_mask
inner = cv2.erode(hole.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
rows = {}
for n in names:
    out = results[n].image
    mse = np.mean((out[hole].astype(np.float32) - truth[hole].astype(np.float32)) ** 2)
    psnr = 10 * np.log10(255**2 / max(mse, 1e-6))
    texture = abs_laplacian(out)[inner].mean() / abs_laplacian(truth)[inner].mean()
    rows[n] = (psnr, texture, seconds[n])
    print(f"{n:11s} PSNR {psnr:5.1f} dB   texture {texture:4.2f}   {seconds[n]:5.2f} s")
print("outside the masks, every result equals the input:",
      all(np.array_equal(results[n].image[~hole], photo[~hole]) for n in names))

fig, axes = plt.subplots(1, 3, figsize=(9, 2.2), dpi=80)
for ax, k, label in zip(axes, range(3), ["PSNR (dB) ↑", "texture (≈1 best)", "seconds ↓"], strict=True):
    ax.bar(names, [rows[n][k] for n in names], color=["#E69F00", "#0072B2", "#009E73"])
    ax.set_title(label, fontsize=10)
    ax.tick_params(labelsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Timings are from the machine that built this notebook (2 shared cores); yours will differ.
#
# ## PatchMatch's knobs
# `patch_size` is the patch radius: larger patches copy bigger structures (the launch-tower lattice),
# smaller ones blend more smoothly. `seed` makes a fill repeatable.

# %%
knobs = [dict(patch_size=2), dict(patch_size=3), dict(patch_size=5)]
fills = [pe.erase(photo, people, select=[3], eraser="patchmatch", **k) for k in knobs]
look = np.s_[250:427, 480:640]
show(photo[look], *[f.image[look] for f in fills], titles=["before", *[f"patch_size={k['patch_size']}" for k in knobs]], width=8)
