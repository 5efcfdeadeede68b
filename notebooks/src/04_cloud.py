"""Source of notebooks/04_cloud.ipynb (built by notebooks/_build.py)."""

# %% [markdown]
# # The DashScope path — without a key
#
# person_erase can hand both jobs to Alibaba Cloud's DashScope models:
# `image-instance-segmentation` (who is where) and `image-erase-completion` (fill the hole).
# The client uses the official `dashscope` SDK and reads two environment variables:
#
# * `DASHSCOPE_API_KEY` — your key;
# * `DASHSCOPE_HTTP_BASE_URL` — where the service is (unset = the real one).
#
# Here we point it at the project's own **DashScope-compatible server**, started inside this notebook on
# a free port of 127.0.0.1. It speaks the same protocol (async tasks, uploads, result URLs, error codes,
# rate limits) and computes its answers with person_erase's local engines. No key, no network.

# %%
import os

from _scenes import launch_pad, show

import person_erase as pe
from person_erase.fakecloud import FakeDashScope

server = FakeDashScope(latency_seg=0.2, latency_erase=0.3).start()
os.environ["DASHSCOPE_API_KEY"] = "sk-not-a-real-key"    # the fake server accepts any key
os.environ["DASHSCOPE_HTTP_BASE_URL"] = server.base_url
print("serving at", server.base_url)

# %% [markdown]
# ## Segment in the cloud
# Same call as before, with `engine="dashscope"`. The service wants each side between 512 and 4096 px,
# so the client pads or scales the photo on the way out and undoes it on the way back.

# %%
photo = launch_pad()
people = pe.segment(photo, engine="dashscope")
print(people, "| task", people.info.task_ids[0])
print("sent to the service:", people.info.details["adaptation"])
show(people.overlay(photo), width=6)

# %% [markdown]
# ## Erase in the cloud
# The erase mask travels as `mask_url`, the keep mask as `foreground_url` (so the model leaves the kept
# people alone). The result is pasted back only inside the erase mask: every other pixel is the input's.

# %%
result = pe.erase(photo, people, select=[0, 2, 3], eraser="dashscope")
show(result.before_after(), width=10)
print("cloud tasks:", result.report.cloud_task_ids)
print("outside the mask changed:", result.report.outside_mask_changed_px, "px;  timings (ms):", result.report.timings_ms)

# %% [markdown]
# ## What the server saw
# `GET /_fake/stats` counts submits per model, task queries (the client polls), uploads and downloads,
# and remembers the last request's inputs and parameters.

# %%
stats = server.get_json("/_fake/stats")
for key in ("submitted", "succeeded", "queried", "uploads", "downloads", "last_inputs", "last_parameters", "last_image_size"):
    print(f"{key:16s} {stats[key]}")

# %% [markdown]
# ## When the cloud fails
# The server has fault knobs (latency, failure rate, 429/5xx bursts, expired results). Make the next
# task fail: the error names the DashScope code and the task, and nothing is written.

# %%
server.configure(fail_next_tasks=1)
try:
    pe.erase(photo, people, select=[0], eraser="dashscope")
except pe.CloudError as err:
    print(type(err).__name__, ":", err)

# %% [markdown]
# ## Stop the server

# %%
server.stop()
for key in ("DASHSCOPE_API_KEY", "DASHSCOPE_HTTP_BASE_URL"):
    os.environ.pop(key)
print("stopped")

# %% [markdown]
# ## With a real key
#
# Two lines switch everything above to the real service (not run here):
#
# ```bash
# export DASHSCOPE_API_KEY=sk-...        # your key from the DashScope console
# unset DASHSCOPE_HTTP_BASE_URL          # back to the real endpoint
# ```
#
# or, inside Python, before the first call:
#
# ```python
# os.environ["DASHSCOPE_API_KEY"] = "sk-..."
# os.environ.pop("DASHSCOPE_HTTP_BASE_URL", None)
# ```
#
# The key is read as a secret: it never appears in reports, logs or error messages.
# To run the same server outside a notebook (for a browser, `curl`, or another program):
# `person-erase serve-dashscope --port 8765`, then `DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:8765/api/v1`.
