"""Source of notebooks/03_privacy.ipynb (built by notebooks/_build.py)."""

# %% [markdown]
# # Privacy: hide the passers-by, strip the location, check the result
#
# Publishing a photo of *your* subject often means the strangers in it should not be recognisable,
# and the file should not say where it was taken. Three tools:
#
# 1. **`policy="passersby"`** picks everyone but the main subject — with a reason per person;
# 2. **`pe.redact`** hides them (blur, pixelate or solid), and every face the segmenter missed —
#    or `pe.erase` removes them;
# 3. **`metadata="strip-gps"`** on save drops the location; **`verify=True`** looks for people again.

# %%
import tempfile
from pathlib import Path

import cv2
import numpy as np
from _scenes import FRIENDS_LAYOUT, astronaut, launch_pad, show
from PIL import Image as PILImage

import person_erase as pe

photo = launch_pad(FRIENDS_LAYOUT)
people = pe.segment(photo)
show(people.overlay(photo), width=6)

# %% [markdown]
# ## Who is the subject? Who is passing by?
#
# `passersby` scores every person on five cues — size, how central, how sharp, a face towards the
# camera, how near (low in the frame) — keeps the best one and picks the rest, saying why.

# %%
sel = pe.select_people(people, policy="passersby", image=photo)
print("erase:", sel.erase, " keep:", sel.keep)
for i in people.index:
    cues = sel.scores.get(int(i), {})
    short = "  ".join(f"{k} {cues[k]:.2f}" for k in ("area", "centre", "sharpness", "face", "foot") if k in cues)
    print(f"{i}: {sel.reasons[int(i)]}\n     {short}")

# %% [markdown]
# Person 2 stands right beside the subject — a friend, probably. `passersby+group` keeps people who
# stand with the subject (touching or close, similar size, same foot line):

# %%
group = pe.select_people(people, policy="passersby+group", image=photo)
print("erase:", group.erase, " keep:", group.keep)
for i in group.keep:
    print(f"{i}: {group.reasons[i]}")

# %% [markdown]
# ## Blur, pixelate or solid
#
# Redaction keeps each person's outline but makes them unrecognisable. Strength scales with each
# person's size, so a big face is hidden as well as a small one. Pixels outside the mask never change.

# %%
styles = ["blur", "pixelate", "solid"]
hidden = {s: pe.redact(photo, people, policy="passersby+group", style=s) for s in styles}
show(*[hidden[s].image for s in styles], titles=styles, width=10)
face = np.s_[250:427, 500:640]
show(photo[face], *[hidden[s].image[face] for s in styles], titles=["before", *styles], width=8)

# %% [markdown]
# ## The face net: faces the body segmenter missed
#
# Nothing can be hidden that was not found, and a body segmenter misses people: too small, behind
# something, cut by the frame. `redact` therefore also runs a face detector (CenterFace, bundled) over
# the whole photo and hides every face that is not already inside the region — as an ellipse in the
# same style. (It does not guess a body below a face nobody segmented: on the dev sets such faces were
# mostly false ones — animals, foliage — so a guessed body was likelier wrong than right.) Here the
# astronaut's head is pasted small (48 px) onto the pylon, a post in front of a third of it: the
# segmenter does not see a person there, the face net does. Every face it adds is in the report.

# %%
crowd = photo.copy()
head = cv2.resize(astronaut()[40:200, 160:290], (39, 48), interpolation=cv2.INTER_AREA)
crowd[150:198, 60:99] = head
crowd[140:218, 87:105] = (90, 80, 70)  # the post
found = pe.segment(crowd)
print("people segmented:", len(found))
without = pe.redact(crowd, found, face_net=False)
with_net = pe.redact(crowd, found)  # face_net=True is the default
for f in with_net.report.faces_added:
    print(f"face added: box {f.box}, score {f.score:.2f}")
near = np.s_[120:300, 20:160]
show(crowd[near], without.image[near], with_net.image[near],
     titles=["the photo", "face_net=False", "default (face net)"], width=8)

# %% [markdown]
# `target="faces"` hides only the faces (the face detector's, and the head of every chosen
# person), the way you would anonymise a crowd shot and keep the bodies: nothing else changes.

# %%
faces_only = pe.redact(crowd, found, target="faces", style="pixelate")
changed = (faces_only.image != crowd).any(axis=2)
sources = [f.source for f in faces_only.report.faces_added]
print(f"{sources.count('centerface')} faces from the detector, {sources.count('head')} more heads of segmented people;",
      "pixels changed outside them:", int((changed & ~faces_only.erase_mask).sum()))
show(crowd, faces_only.image, titles=["before", 'target="faces"'], width=10)

# %% [markdown]
# Or remove them entirely:

# %%
gone = pe.erase(photo, people, policy="passersby+group")
show(gone.before_after(), width=10)

# %% [markdown]
# ## Metadata: where was this taken?
#
# Phone photos carry EXIF: camera, time — and GPS. We give our photo some, then save the result
# with each metadata policy and read the files back.

# %%
work = Path(tempfile.mkdtemp(prefix="pe-privacy-"))
exif = PILImage.Exif()
exif[0x010F] = "ExampleCam"                 # Make
exif[0x0110] = "Model 7"                    # Model
exif[0x0132] = "2024:05:04 18:30:00"        # DateTime
exif[0x8825] = {1: "N", 2: (28.0, 36.0, 30.0), 3: "W", 4: (80.0, 36.0, 14.0)}  # GPS: a launch pad
PILImage.fromarray(photo).save(work / "holiday.jpg", exif=exif, quality=92)

src = pe.load_image(work / "holiday.jpg")
print("input has GPS:", src.metadata.has_gps)
result = pe.redact(src, policy="passersby+group", style="pixelate")


def describe(path):
    ex = PILImage.open(path).getexif()
    gps = ex.get_ifd(0x8825)
    return {"camera": ex.get(0x0110), "time": ex.get(0x0132),
            "GPS": f"{gps.get(2)} {gps.get(1)}, {gps.get(4)} {gps.get(3)}" if gps else None}


for policy in ["keep", "strip-gps", "strip-all"]:
    out = result.save(work / f"holiday.{policy}.jpg", metadata=policy)
    print(f"{policy:10s}", describe(out))

# %% [markdown]
# `strip-gps` is the usual choice: the camera and time stay, the location goes (also from XMP and
# Photoshop copies). `strip-all` writes pixels only.
#
# ## Verification: did anyone survive?
#
# `verify=True` runs the segmenter again on the output and reports anyone found where a person was
# removed (a *residue*). Pixels outside the mask are always checked, too.

# %%
checked = pe.erase(photo, people, policy="passersby+group", verify=True)
v = checked.report.verification
print(f"people found in the output: {v.people_found} (the two we kept)   residues: {v.residues}   ok: {v.ok}")
print("pixels changed outside the erase mask:", checked.report.outside_mask_changed_px)

# %% [markdown]
# What a failure looks like: an eraser that (wrongly) leaves the hole as it was, as a broken fill
# might. Verification catches it.


# %%
class DoNothing:
    """A deliberately broken eraser, to show what verification reports."""

    name, kind, needs_network, honours_keep_mask = "do-nothing", "inpaint", False, True

    def erase(self, image, erase, *, keep):
        return image.copy()


bad = pe.erase(photo, people, policy="passersby+group", eraser=DoNothing(), verify=True)
v = bad.report.verification
print("ok:", v.ok)
for r in v.residues:
    print(f"  residue: box {r.box}, {100 * r.overlap_share:.0f}% inside the erased area")

# %% [markdown]
# ### Verifying a redaction
#
# A blurred body keeps its outline, so for `redact` the verification asks a sharper question: can a
# face still be detected inside the redacted region? It asks a second detector — MediaPipe's
# full-range face model, not the CenterFace model that drew the face regions — so the check is not
# the redaction grading itself. The default strengths leave none; a pixelation that is too fine
# (`strength=0.01`: 8 px blocks on the astronaut's face) is caught.

# %%
portrait = astronaut()
solo = pe.segment(portrait)
shown = []
for strength in (None, 0.01):
    opts = {} if strength is None else {"strength": strength}
    r = pe.redact(portrait, solo, style="pixelate", verify=True, **opts)
    v = r.report.verification
    faces = [f"face at {x.box} (score {x.score:.2f})" for x in v.residues]
    print(f"strength {strength or 'default'}: ok={v.ok}  silhouettes={len(v.silhouettes)}  {faces or 'no face left'}")
    shown.append(r.image[40:240, 120:330])
show(*shown, titles=["default: no face left", "strength=0.01: a face is found"], width=6)
