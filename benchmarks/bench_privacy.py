"""Privacy benchmark: are faces hidden, are bodies covered, and what does it cost (issues 5, 16).

On folders in the dev-set format (``images/``, ``masks/`` label maps 0 = background, 1..N = person,
``manifest.json``; default: both dev sets under ../shared/data), people are segmented once per photo
(local engine) and the same instances feed every variant of ``pe.redact(..., policy="all")``:

* ``segmented`` — ``face_net=False, person_net=False``: the segmented people only (before issue 16);
* ``body``      — ``face_net=False``: the segmented people plus the person net (people the segmentation
  missed, found again by the detector for recall: ``person_net``);
* ``body+net``  — the default: plus the face safety net (CenterFace faces outside the region, and a
  body grown from each face that no segmented person accounts for);
* ``faces``     — ``target="faces"``: faces only (face detector + heads of segmented people).

and, per set, ``net``: the face net on its own (the ellipses ``face_regions.plan_faces`` draws over the
faces ``face_regions.find_faces`` finds, with no body region): faces hidden by it alone, its background share,
and ``off_person``, how many of its ellipses lie on no annotated person (false faces, mostly).

Measures, per variant (the region is ``result.erase_mask``, exactly the pixels the style paints):

* **faces hidden**: a GT person's face (COCO keypoints 0-4: nose, eyes, ears; only where at least
  one is labelled, v > 0) is hidden when every labelled face point lies inside the region. Overall
  and per person size bucket (small < 32², medium < 96², large). Only sets with keypoints (COCO).
* **body coverage**: share of GT people with >= 95 % of their mask inside the region (per bucket).
* **background share**: region pixels outside every GT person, as a share of all photo pixels (the
  false-positive cost; some of it is unlabelled real people).
* **person pixels redacted**: share of the GT people's pixels inside the region (for ``faces``: how
  much of the bodies is painted besides the faces; lower is better there).
* **ms per photo**: the ``pe.redact`` call with given instances (segmentation excluded; reported
  separately), mean over photos; ``face_ms`` the face detector's own share.
* **faces left** (``--verify-faces``): faces MediaPipe's full-range model still finds in the redacted
  region (what ``redact --verify`` counts), and how many it finds there in the original photo (what
  the check can see at all).

``--grow`` measures growing a body from a face no segmented person accounts for (``face_regions.body_from_face``,
off by default): per face score threshold, how many bodies would be grown, how many of their faces lie on
an annotated person (right) or on nobody (wrong), and body coverage / background share of the ``body+net``
region with them (the face net's plan on top of the ``body`` region, bodies included).

``--augment`` also evaluates augmented copies of the sets with face keypoints (``augment.py``: photos
turned a quarter, cut through a face by the frame, faces half occluded, photos at half size in a
mosaic), each kind as its own set ``<set>/aug-<kind>`` and all together as ``<set>/aug``: a larger,
harder yardstick for faces than the 43 dev faces (the unseen photos' misses were faces lying sideways,
cut by the frame and half hidden).

``--net-sweep`` adds ``body`` variants with other person-net settings (``net:SCORE@SIZES``: detector score
threshold and input sizes, e.g. ``net:0.1@416/832/1280``; also accepted in ``--variants``). For every
variant, ``people_added_new`` counts the people the net added that match no segmented person and
``people_added_on_nobody`` those of them whose box lies on no annotated person (under 20 % of its pixels
on one: a false person, or someone COCO did not label).

``--residue`` adds the older removal-verification residue rate (erase everyone with telea, segment
the output again; slow). ``--cache DIR`` keeps the segmentations (npz) between runs.

Usage::

    python benchmarks/bench_privacy.py [DATASET_DIR ...] [--style blur] [--limit N] [--cache DIR]
        [--quality balanced] [--min-score 0.25] [--residue] [--verify-faces] [--grow] [--misses] [--augment]

Prints a JSON document, then a table. Skips (exit 0, with a message) when no dev set is found.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import person_erase as pe  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DEFAULT_SETS = ("persons", "coco-persons-dev")
COVER = 0.95
VARIANTS: dict[str, dict[str, Any]] = {
    "segmented": {"face_net": False, "person_net": False},
    "body": {"face_net": False},
    "body+net": {},
    "faces": {"target": "faces"},
}


def _bucket(area: int) -> str:
    return "small" if area < 32**2 else "medium" if area < 96**2 else "large"


def _items(directory: Path, limit: int | None) -> list[dict[str, Any]]:
    manifest = json.loads((directory / "manifest.json").read_text())
    out = []
    for item in manifest["items"][:limit]:
        labels = np.array(Image.open(directory / item["mask"]))
        labels = labels[..., 0] if labels.ndim == 3 else labels
        ids = [int(p["id"]) for p in item["persons"]]
        gt = labels[None] == np.array(ids)[:, None, None] if ids else np.zeros((0, *labels.shape), bool)
        faces = []
        for p in item["persons"]:
            kps = p.get("keypoints") or []
            pts = [(x, y) for x, y, v in kps[:5] if v > 0]
            faces.append(pts or None)
        out.append({"name": f"{directory.name}/{Path(item['image']).stem}", "path": directory / item["image"],
                    "gt": gt, "faces": faces})
    return out


def _segment(seg: Any, img: Any, cache: Path | None, name: str) -> tuple[pe.Instances, float]:
    f = cache / (name.replace("/", "__") + ".npz") if cache is not None else None
    if f is not None and f.is_file():
        z = np.load(f)
        shape = tuple(int(v) for v in z["shape"])
        masks = np.unpackbits(z["masks"])[: int(np.prod(shape))].reshape(shape).astype(bool)
        return pe.Instances(masks=masks, boxes=z["boxes"], scores=z["scores"], index=z["index"]), float(z["ms"])
    t0 = time.perf_counter()
    people = seg.segment(img.pixels)
    ms = (time.perf_counter() - t0) * 1000
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(f, masks=np.packbits(people.masks), shape=np.array(people.masks.shape),
                            boxes=people.boxes, scores=people.scores, index=people.index, ms=ms)
    return people, ms


def _face_hidden(points: list[tuple[int, int]], region: np.ndarray) -> bool:
    h, w = region.shape
    return all(region[min(h - 1, max(0, int(y))), min(w - 1, max(0, int(x)))] for x, y in points)


class _Tally:
    def __init__(self) -> None:
        self.faces = self.hidden = self.people = self.covered = 0
        self.bg_px = self.px = 0
        self.person_px = self.person_red_px = 0
        self.ms: list[float] = []
        self.face_ms: list[float] = []
        self.faces_added = self.bodies_added = self.people_added = 0
        self.off_person = 0
        self.net_ms: list[float] = []
        self.people_new = self.people_on_nobody = 0
        self.faces_left = 0
        self.faces_before = 0
        self.by: dict[str, list[int]] = {}  # bucket -> [people, covered, faces, hidden]
        self.misses: list[str] = []
        self.face_misses: list[str] = []

    def add(self, item: dict[str, Any], region: np.ndarray, ms: float, report: Any) -> None:
        gt = item["gt"]
        anyone = gt.any(axis=0) if len(gt) else np.zeros(region.shape, bool)
        self.bg_px += int((region & ~anyone).sum())
        self.person_px += int(anyone.sum())
        self.person_red_px += int((region & anyone).sum())
        self.px += region.size
        self.ms.append(ms)
        self.face_ms.append(float(report.timings_ms.get("faces", 0.0)))
        self.net_ms.append(float(report.timings_ms.get("person_net", 0.0)))
        added_people = getattr(report, "people_added", None) or []
        self.people_added += len(added_people)
        for a in added_people:
            if a.person is None:
                x0, y0, x1, y1 = a.box
                self.people_new += 1
                self.people_on_nobody += int(float(anyone[y0:y1, x0:x1].mean()) < 0.2)
        added = getattr(report, "faces_added", None) or []
        self.faces_added += len(added)
        self.bodies_added += sum(1 for f in added if getattr(f, "body_box", None))
        h, w = region.shape
        for f in added:  # a face painted on no annotated person: a false face (or an unlabelled one)
            box = f["box"] if isinstance(f, dict) else f.box
            cx, cy = min(w - 1, max(0, (box[0] + box[2]) // 2)), min(h - 1, max(0, (box[1] + box[3]) // 2))
            r = max(1, (box[2] - box[0]) // 4)
            self.off_person += int(not anyone[max(0, cy - r) : cy + r + 1, max(0, cx - r) : cx + r + 1].any())
        for g in range(len(gt)):
            area = int(gt[g].sum())
            b = _bucket(area)
            row = self.by.setdefault(b, [0, 0, 0, 0])
            share = float((gt[g] & region).sum()) / max(1, area)
            self.people += 1
            row[0] += 1
            if share >= COVER:
                self.covered += 1
                row[1] += 1
            else:
                self.misses.append(f"{item['name']}#{g + 1}({b}, {share:.0%})")
            pts = item["faces"][g]
            if pts:
                self.faces += 1
                row[2] += 1
                if _face_hidden(pts, region):
                    self.hidden += 1
                    row[3] += 1
                else:
                    self.face_misses.append(f"{item['name']}#{g + 1}({b})")

    def summary(self, misses: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "faces_hidden": round(self.hidden / self.faces, 4) if self.faces else None,
            "faces": self.faces,
            "faces_hidden_n": self.hidden,
            "body_coverage": round(self.covered / max(1, self.people), 4),
            "people": self.people,
            "background_share": round(self.bg_px / max(1, self.px), 5),
            "person_px_redacted": round(self.person_red_px / max(1, self.person_px), 4),
            "ms_per_photo": round(float(np.mean(self.ms)) if self.ms else 0.0, 1),
            "face_ms_per_photo": round(float(np.mean(self.face_ms)) if self.face_ms else 0.0, 1),
            "faces_added": self.faces_added,
            "faces_added_off_person": self.off_person,
            "bodies_added": self.bodies_added,
            "people_added": self.people_added,
            "people_added_new": self.people_new,
            "people_added_on_nobody": self.people_on_nobody,
            "person_net_ms_per_photo": round(float(np.mean(self.net_ms)) if self.net_ms else 0.0, 1),
            "by_size": {b: {"people": v[0], "coverage": round(v[1] / max(1, v[0]), 4), "faces": v[2],
                            "faces_hidden": round(v[3] / v[2], 4) if v[2] else None}
                        for b, v in sorted(self.by.items())},
        }
        if misses:
            out["face_misses"] = self.face_misses
            out["body_misses"] = self.misses
        return out


NET_SWEEP = ("net:0.25@416/832/1280", "net:0.15@416/832/1280", "net:0.1@416/832/1280", "net:0.05@416/832/1280",
             "net:0.07@416/832", "net:0.07@416/1280")


def _net_spec(variant: str) -> tuple[float, tuple[int, ...]] | None:
    """``net:SCORE@SIZES`` -> (score, sizes); None for the named variants."""
    if not variant.startswith("net:"):
        return None
    score, _, sizes = variant[4:].partition("@")
    return float(score), tuple(int(v) for v in sizes.split("/"))


_NET_SEGMENTERS: dict[tuple[float, tuple[int, ...]], Any] = {}


@contextmanager
def _net_setting(spec: tuple[float, tuple[int, ...]] | None) -> Iterator[None]:
    """Run the person net with another score threshold / input sizes (its segmenter swapped in)."""
    if spec is None:
        yield
        return
    from person_erase import person_net
    from person_erase.segmenters.local import LocalSegmenter

    if spec not in _NET_SEGMENTERS:
        _NET_SEGMENTERS[spec] = LocalSegmenter(person_net.NET_QUALITY, score_threshold=spec[0], det_sizes=spec[1])
    saved = person_net._segmenter()
    person_net._SEGMENTER = _NET_SEGMENTERS[spec]
    try:
        yield
    finally:
        person_net._SEGMENTER = saved


GROW_SCORES = (0.2, 0.3, 0.4, 0.5, 0.6)


class _Grow:
    """Bodies grown from faces nobody accounts for, per face score threshold (``--grow``)."""

    def __init__(self) -> None:
        self.by: dict[float, dict[str, int]] = {
            t: {"grown": 0, "right": 0, "wrong": 0, "people": 0, "covered": 0, "bg_px": 0, "px": 0}
            for t in GROW_SCORES}

    def add(self, item: dict[str, Any], pixels: np.ndarray, people: pe.Instances, region: np.ndarray) -> None:
        from person_erase.face_regions import find_faces, plan_faces

        faces = find_faces(pixels, people)
        gt = item["gt"]
        anyone = gt.any(axis=0) if len(gt) else np.zeros(region.shape, bool)
        h, w = region.shape
        for t, row in self.by.items():
            plan = plan_faces(faces, people, np.ones(len(people), bool), region, body_score=t)
            grown = region | plan.region
            for f in plan.added:
                if f["body_box"] is None:
                    continue
                row["grown"] += 1
                x0, y0, x1, y1 = f["box"]
                cx, cy = min(w - 1, max(0, (x0 + x1) // 2)), min(h - 1, max(0, (y0 + y1) // 2))
                r = max(1, (x1 - x0) // 4)
                on = bool(anyone[max(0, cy - r) : cy + r + 1, max(0, cx - r) : cx + r + 1].any())
                row["right" if on else "wrong"] += 1
            row["people"] += len(gt)
            row["covered"] += sum(int(float((g & grown).sum()) / max(1, int(g.sum())) >= COVER) for g in gt)
            row["bg_px"] += int((grown & ~anyone).sum())
            row["px"] += grown.size

    def summary(self) -> dict[str, Any]:
        return {str(t): {"bodies_grown": r["grown"], "face_on_a_person": r["right"], "face_on_nobody": r["wrong"],
                         "body_coverage": round(r["covered"] / max(1, r["people"]), 4),
                         "background_share": round(r["bg_px"] / max(1, r["px"]), 5)}
                for t, r in self.by.items()}


class _Report:
    """What ``_Tally.add`` reads from a report, for the face net measured on its own."""

    def __init__(self, added: list[dict[str, Any]], face_ms: float) -> None:
        self.faces_added = added
        self.timings_ms = {"faces": face_ms}


def _net(tally: _Tally, item: dict[str, Any], pixels: np.ndarray, people: pe.Instances, face_ms: float) -> None:
    """The face net alone: the regions the pipeline's face pass would paint with no body region."""
    try:
        from person_erase.face_regions import find_faces, plan_faces
    except ImportError:  # a build before the face net (or before find_faces)
        return
    faces = find_faces(pixels, people)
    plan = plan_faces(faces, people, np.ones(len(people), bool), np.zeros(people.shape, bool))
    tally.add(item, plan.region, face_ms, _Report(plan.added, face_ms))


def run(dirs: list[Path], *, style: str, limit: int | None, quality: str = "balanced", min_score: float = 0.25,
        cache: Path | None = None, variants: tuple[str, ...] = tuple(VARIANTS), residue: bool = False,
        verify_faces: bool = False, misses: bool = False, grow_bodies: bool = False,
        augment: bool = False) -> dict[str, Any]:
    seg = pe.get_segmenter("local", quality=quality, score_threshold=min_score)
    per_set: dict[str, dict[str, Any]] = {}
    seg_ms: list[float] = []
    det_wall: list[float] = []
    det_cpu: list[float] = []
    detect_faces: Any = None
    try:
        from person_erase.face_regions import find_faces as detect_faces
    except ImportError:  # a build before find_faces (or before the face net)
        try:
            from person_erase.faces import detect_faces as upright

            def detect_faces(pixels: np.ndarray, _people: Any) -> Any:
                return upright(pixels)
        except ImportError:
            pass
    resid = {"images_with_people": 0, "images_with_residue": 0, "residues": 0}
    groups: list[tuple[list[dict[str, Any]], list[str]]] = []  # (items, the sets they count in)
    for d in dirs:
        base = _items(d, limit)
        groups.append((base, [d.name]))
        if augment and any(f for it in base for f in it["faces"]):
            from augment import KINDS
            from augment import augment as make

            for kind in KINDS:
                groups.append((make(base, (kind,)), [f"{d.name}/aug-{kind}", f"{d.name}/aug"]))
    names = list(dict.fromkeys(n for _, ns in groups for n in ns))
    tallies = {n: {v: _Tally() for v in (*variants, "net")} for n in names}
    grows = {n: _Grow() for n in names} if grow_bodies and "body" in variants else {}
    for group, set_names in groups:
        for item in group:
            img = pe.load_image(item["pixels"] if "pixels" in item else item["path"])
            people, ms = _segment(seg, img, cache, item["name"])
            seg_ms.append(ms)
            if detect_faces is not None:
                detect_faces(img.pixels, people)  # warm (the first call builds the session)
                t0, c0 = time.perf_counter(), time.process_time()
                detect_faces(img.pixels, people)
                det_wall.append((time.perf_counter() - t0) * 1000)
                det_cpu.append((time.process_time() - c0) * 1000)
                for n in set_names:
                    _net(tallies[n]["net"], item, img.pixels, people, det_wall[-1])
            for v in variants:
                t0 = time.perf_counter()
                try:
                    with _net_setting(_net_spec(v)):
                        res = pe.redact(img, people, policy="all", style=style, **VARIANTS.get(v, {"face_net": False}))
                except TypeError:  # an older build: only "body" (or "segmented", without the person net)
                    if v not in ("body", "segmented"):
                        continue
                    res = pe.redact(img, people, policy="all", style=style)
                ms_v = (time.perf_counter() - t0) * 1000
                left = before = 0
                if verify_faces and res.erase_mask.any():
                    from person_erase.verify import faces_in, faces_left

                    left = len(faces_left(res.image, res.erase_mask, img.pixels))
                    before = len(faces_in(img.pixels, res.erase_mask))
                for n in set_names:
                    tallies[n][v].add(item, res.erase_mask, ms_v, res.report)
                    tallies[n][v].faces_left += left
                    tallies[n][v].faces_before += before
                    if n in grows and v == "body":
                        grows[n].add(item, img.pixels, people, res.erase_mask)
            if residue and "pixels" not in item and (len(people) or len(item["gt"])):
                er = pe.erase(img, people, policy="all", eraser="telea", verify=seg)
                ver = er.report.verification
                resid["images_with_people"] += 1
                if ver is not None and ver.residues:
                    resid["images_with_residue"] += 1
                    resid["residues"] += len(ver.residues)
    for n in names:
        per_set[n] = {}
        for v, t in tallies[n].items():
            if not t.ms:
                continue
            per_set[n][v] = t.summary(misses)
            if verify_faces and v != "net":
                per_set[n][v]["faces_left_verify"] = t.faces_left
                per_set[n][v]["faces_in_region_before_verify"] = t.faces_before
        if n in grows:
            per_set[n]["grow"] = grows[n].summary()
    out: dict[str, Any] = {
        "datasets": [str(d) for d in dirs],
        "style": style,
        "segmenter": {"quality": quality, "min_score": min_score,
                      "ms_per_photo": round(float(np.mean(seg_ms)) if seg_ms else 0.0, 1)},
        "goals": {"faces_hidden": ">= 0.99 (coco-persons-dev, body+net and faces)",
                  "body_coverage": ">= 0.96 (coco-persons-dev, body+net)",
                  "background_share": "<= 1.5x body", "face net cost": "<= 40 ms per 640 px photo"},
        "face_detector": {"what": "face_regions.find_faces alone, per photo: wall ms and CPU ms (all threads); "
                          "wall is noisy on a shared machine, CPU/2 bounds the 2-core wall time from below",
                          "wall_ms": round(float(np.mean(det_wall)), 1) if det_wall else None,
                          "cpu_ms": round(float(np.mean(det_cpu)), 1) if det_cpu else None},
        "sets": per_set,
    }
    if residue:
        out["residue"] = {
            **resid,
            "image_rate": round(resid["images_with_residue"] / max(1, resid["images_with_people"]), 4),
        }
    return out


def table(res: dict[str, Any]) -> str:
    rows = [("set", "variant", "faces hidden", "body cov.", "bg share", "person px", "ms/photo", "face ms", "added")]
    for s, vs in res["sets"].items():
        for v, m in vs.items():
            if v == "grow":
                for t, g in m.items():
                    rows.append((s, f"grow >= {t}", f"{g['bodies_grown']} grown: {g['face_on_a_person']} right, "
                                 f"{g['face_on_nobody']} wrong", f"{g['body_coverage']:.1%}",
                                 f"{g['background_share']:.2%}", "", "", "", ""))
                continue
            fh = "-" if m["faces_hidden"] is None else f"{m['faces_hidden']:.1%} ({m['faces_hidden_n']}/{m['faces']})"
            rows.append((s, v, fh, f"{m['body_coverage']:.1%}", f"{m['background_share']:.2%}",
                         f"{m['person_px_redacted']:.1%}", f"{m['ms_per_photo']:.0f}", f"{m['face_ms_per_photo']:.0f}",
                         f"{m['faces_added']} faces ({m.get('faces_added_off_person', 0)} off persons), "
                         f"{m['bodies_added']} bodies, "
                         f"{m.get('people_added', 0)} people ({m.get('people_added_new', 0)} new, "
                         f"{m.get('people_added_on_nobody', 0)} on nobody; "
                         f"{m.get('person_net_ms_per_photo', 0):.0f} ms)"))
            for b, bm in m["by_size"].items():
                fhb = "-" if bm["faces_hidden"] is None else f"{bm['faces_hidden']:.1%} of {bm['faces']}"
                rows.append(("", f"  {b}", fhb, f"{bm['coverage']:.1%} of {bm['people']}", "", "", "", "", ""))
    fd = res.get("face_detector") or {}
    if fd.get("wall_ms") is not None:
        rows.append(("face detector alone", "", "", "", "", "", f"{fd['wall_ms']:.0f}", f"cpu {fd['cpu_ms']:.0f}", ""))
    w = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w[k]) for k, c in enumerate(r)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="*", help="dev-set folders (default: ../shared/data/{persons,coco-persons-dev})")
    ap.add_argument("--style", default="blur", choices=["blur", "pixelate", "solid"])
    ap.add_argument("--quality", default="balanced", help="local segmenter preset (fast|balanced|best)")
    ap.add_argument("--min-score", type=float, default=0.25, help="detector confidence threshold (redact --min-score)")
    ap.add_argument("--limit", type=int, default=None, help="first N photos of each set")
    ap.add_argument("--cache", type=Path, default=None, help="keep segmentations here between runs")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}")
    ap.add_argument("--residue", action="store_true", help="also measure the erase-verification residue rate (slow)")
    ap.add_argument("--verify-faces", action="store_true", help="also count faces MediaPipe finds in the region")
    ap.add_argument("--misses", action="store_true", help="list the faces and bodies not hidden")
    ap.add_argument("--grow", action="store_true", help="measure growing bodies from faces nobody accounts for")
    ap.add_argument("--augment", action="store_true",
                    help="also measure augmented copies of the sets with face keypoints (augment.py)")
    ap.add_argument("--net-sweep", action="store_true", help="also run the body variant with other person-net "
                    "settings (net:SCORE@SIZES)")
    args = ap.parse_args(argv)
    names = args.datasets or [str(DATA / n) for n in DEFAULT_SETS]
    dirs = [Path(n) for n in names if (Path(n) / "manifest.json").is_file()]
    if not dirs:
        print(f"no dev set found among {names}; nothing to measure", file=sys.stderr)
        return 0
    variants = tuple(v for v in args.variants.split(",") if v in VARIANTS or _net_spec(v))
    if args.net_sweep:
        variants += tuple(v for v in NET_SWEEP if v not in variants)
    res = run(dirs, style=args.style, limit=args.limit, quality=args.quality, min_score=args.min_score,
              cache=args.cache, variants=variants, residue=args.residue, verify_faces=args.verify_faces,
              misses=args.misses, grow_bodies=args.grow, augment=args.augment)
    print(json.dumps(res, indent=2))
    print()
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
