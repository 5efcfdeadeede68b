"""Benchmark the local segmenter's presets on the dev sets.

    python benchmarks/bench_segment.py [--data DIR ...] [--quality fast balanced best] [--json-only]
        [--timing-photo STEM ...] [--timing-repeat N] [--timing-only]

Per dataset and preset: recall@IoU0.5 (overall and per COCO size bucket), mean matched IoU, unmatched
predictions per image, redaction coverage share, segmentation ms per image, and the raw YOLOX-nano
inference ms at 416 measured in the same run (so a slow machine shows as slow on both). Also where
the people are lost, per size bucket: *detector misses* (no box with IoU >= 0.5 against the GT
mask's bounding box) and *mask failures* (a box was found, but the mask IoU stayed < 0.5). Then
one or more photos (default: 000000000790, a 640x422 COCO photo in which 5 people are found; the
table in ``benchmarks/README.md`` also uses PennPed00022) timed alone per preset: the median of
``--timing-repeat`` runs (11), as ms and as a multiple of the raw YOLOX-416 inference ("Y") timed in
between, plus the median CPU time of all threads (steadier than wall time on shared cores), how much
of it was spent inside each model's onnxruntime runs, and the load average. ``--timing-only`` skips
the dev-set scores. Prints JSON, then the tables. Default data: ``../shared/data/{persons,coco-persons-dev}``
next to the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devset import DEFAULT_SETS, Score, dataset_dirs, load_samples  # noqa: E402

from person_erase.segmenters.local import PRESETS, LocalSegmenter  # noqa: E402


def run(data: list[Path], qualities: list[str], repeat: int = 1) -> list[dict]:
    rows = []
    sets = {d.name: list(load_samples(d)) for d in data}
    for q in qualities:
        seg = LocalSegmenter(q)
        det = seg._det()  # the same detector session, for the raw-inference reference timing
        for name, samples in sets.items():
            seg.segment(samples[0].image)  # warm-up (lazy sessions, first-call allocations)
            score = Score()
            seg_ms, raw_ms, det_ms = [], [], []
            sources: dict[str, int] = {}
            for s in samples:
                best = None
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    people = seg.segment(s.image)
                    dt = (time.perf_counter() - t0) * 1e3
                    best = dt if best is None else min(best, dt)
                seg_ms.append(best)
                det_ms.append(people.info.timings_ms["detect_ms"])
                for k, v in people.info.details.get("mask_sources", {}).items():
                    sources[k] = sources.get(k, 0) + v
                t0 = time.perf_counter()
                det.raw(s.image, 416)
                raw_ms.append((time.perf_counter() - t0) * 1e3)
                score.add(s, np.asarray(people.masks), people.info.detector_boxes)
            summary = score.summary()
            summary.update(
                dataset=name,
                quality=q,
                seg_ms_mean=round(float(np.mean(seg_ms)), 1),
                seg_ms_p90=round(float(np.percentile(seg_ms, 90)), 1),
                detect_ms_mean=round(float(np.mean(det_ms)), 1),
                yolox416_raw_ms_mean=round(float(np.mean(raw_ms)), 1),
                mask_sources=dict(sorted(sources.items(), key=lambda kv: -kv[1])),
                misses=score.misses,
            )
            rows.append(summary)
    return rows


def timing_photo(sets: dict[str, list], name: str) -> tuple[str, np.ndarray]:
    """The photo named ``name``, else the 640 px one whose GT count is closest to 5."""
    samples = [x for v in sets.values() for x in v]
    for x in samples:
        if x.name == name:
            return x.name, x.image
    x = min(samples, key=lambda x: (max(x.image.shape[:2]) != 640, abs(len(x.gt) - 5)))
    return x.name, x.image


class _TimedSession:
    """An onnxruntime session that adds the CPU time of every ``run`` (all threads) to ``spent[label]``."""

    def __init__(self, session: object, label: str, spent: dict[str, float]) -> None:
        self._session, self._label, self._spent = session, label, spent

    def __getattr__(self, name: str) -> object:
        return getattr(self._session, name)

    def run(self, *args: object, **kwargs: object) -> object:
        c0 = time.process_time()
        try:
            return self._session.run(*args, **kwargs)  # type: ignore[attr-defined]
        finally:
            self._spent[self._label] = self._spent.get(self._label, 0.0) + (time.process_time() - c0) * 1e3


def _time_models(seg: LocalSegmenter, spent: dict[str, float]) -> None:
    """Route the segmenter's model sessions through ``_TimedSession`` (this segmenter's objects only)."""
    det = seg._det()
    det._session = _TimedSession(det._session, "yolox", spent)
    models = seg._models()
    if models.pose is not None:
        models.pose._det = _TimedSession(models.pose._det, "pose_detection", spent)
        models.pose._lm = _TimedSession(models.pose._lm, "pose_landmark", spent)
    models.selfie._session = _TimedSession(models.selfie._session, "selfie", spent)


def time_photo(qualities: list[str], name: str, image: np.ndarray, repeat: int = 11) -> list[dict]:
    """Median segmentation time per preset on one photo over ``repeat`` runs, next to raw YOLOX-416 (same run).

    Each run times the preset, then one raw YOLOX-416 inference, so load from other processes hits
    both alike. Wall and CPU (all threads of the process) are medians; CPU is the steadier one when
    other jobs share the cores. The 1-minute load average is recorded before and after.
    """
    out = []
    for q in qualities:
        seg = LocalSegmenter(q)
        det = seg._det()
        raw_session = det._session
        spent: dict[str, float] = {}
        _time_models(seg, spent)
        seg.segment(image)
        det.raw(image, 416)
        load0 = os.getloadavg()[0]
        seg_ms, raw_ms, parts, seg_cpu, raw_cpu = [], [], [], [], []
        model_cpu: list[dict[str, float]] = []
        for _ in range(repeat):
            spent.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            people = seg.segment(image)
            seg_ms.append((time.perf_counter() - t0) * 1e3)
            seg_cpu.append((time.process_time() - c0) * 1e3)
            model_cpu.append(dict(spent))
            det._session = raw_session  # the reference inference is not counted as the segmenter's
            parts.append(dict(people.info.timings_ms))
            t0, c0 = time.perf_counter(), time.process_time()
            det.raw(image, 416)
            raw_ms.append((time.perf_counter() - t0) * 1e3)
            raw_cpu.append((time.process_time() - c0) * 1e3)
            det._session = _TimedSession(raw_session, "yolox", spent)
        med = float(np.median(seg_ms))
        per_model = {k: round(float(np.median([m.get(k, 0.0) for m in model_cpu])), 1) for k in model_cpu[0]}
        in_models = float(np.median([sum(m.values()) for m in model_cpu]))
        out.append(
            {
                "photo": name,
                "size": f"{image.shape[1]}x{image.shape[0]}",
                "quality": q,
                "people": len(people),
                "runs": repeat,
                "seg_ms": round(med, 1),
                "seg_ms_min": round(min(seg_ms), 1),
                "detect_ms": round(float(np.median([t["detect_ms"] for t in parts])), 1),
                "masks_ms": round(float(np.median([t["masks_ms"] for t in parts])), 1),
                "yolox416_raw_ms": round(float(np.median(raw_ms)), 1),
                "ratio_to_yolox416": round(med / float(np.median(raw_ms)), 1),
                "seg_cpu_ms": round(float(np.median(seg_cpu)), 1),
                "yolox416_cpu_ms": round(float(np.median(raw_cpu)), 1),
                "cpu_ratio_to_yolox416": round(float(np.median(seg_cpu) / np.median(raw_cpu)), 1),
                # CPU inside each model's onnxruntime runs (median per photo); the rest is Python/OpenCV work
                "model_cpu_ms": per_model,
                "outside_models_cpu_ms": round(float(np.median(seg_cpu)) - in_models, 1),
                "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
            }
        )
    return out


def table(rows: list[dict]) -> str:
    head = (
        f"{'dataset':18} {'quality':9} {'people':>6} {'recall':>6} {'small':>6} {'medium':>6} {'large':>6} "
        f"{'mIoU':>5} {'FP/img':>6} {'cover':>6} {'seg ms':>7} {'det ms':>7} {'yolox416':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        by = r["recall_by_size"]
        lines.append(
            f"{r['dataset']:18} {r['quality']:9} {r['people']:>6} {r['recall']:>6.3f} "
            f"{by.get('small', float('nan')):>6.3f} {by.get('medium', float('nan')):>6.3f} "
            f"{by.get('large', float('nan')):>6.3f} {r['mean_matched_iou']:>5.3f} "
            f"{r['unmatched_pred_per_image']:>6.2f} {r['coverage_share']:>6.3f} {r['seg_ms_mean']:>7.1f} "
            f"{r['detect_ms_mean']:>7.1f} {r['yolox416_raw_ms_mean']:>8.1f}"
        )
    return "\n".join(lines)


def loss_table(rows: list[dict]) -> str:
    """Where people are lost: box recall, detector misses and mask failures per size bucket."""
    head = (
        f"{'dataset':18} {'quality':9} {'box rec':>7} {'box s/m/l':>17} {'det miss s/m/l':>15} "
        f"{'mask fail s/m/l':>16} {'sources'}"
    )
    lines = [head, "-" * (len(head) + 20)]
    for r in rows:
        if "box_recall" not in r:
            continue
        br = r["box_recall_by_size"]
        dm, mf = r["detector_misses_by_size"], r["mask_failures_by_size"]
        sml = ("small", "medium", "large")
        lines.append(
            f"{r['dataset']:18} {r['quality']:9} {r['box_recall']:>7.3f} "
            f"{'/'.join(format(br.get(b, float('nan')), '.2f') for b in sml):>17} "
            f"{'/'.join(str(dm.get(b, 0)) for b in sml):>15} {'/'.join(str(mf.get(b, 0)) for b in sml):>16} "
            f"{r.get('mask_sources', '')}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", nargs="+", default=list(DEFAULT_SETS), help="dataset folders or names under ../shared/data"
    )
    ap.add_argument("--quality", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--repeat", type=int, default=1, help="time each photo this many times, keep the best")
    ap.add_argument("--json-only", action="store_true")
    ap.add_argument(
        "--timing-photo",
        nargs="+",
        default=["000000000790"],
        help="photos (file stems) timed alone (default: a 640x422 COCO photo in which 5 people are found)",
    )
    ap.add_argument("--timing-repeat", type=int, default=11, help="runs per timed photo and preset (median)")
    ap.add_argument("--timing-only", action="store_true", help="skip the dev-set scores, only time the photos")
    args = ap.parse_args(argv)
    data = dataset_dirs(args.data)
    if not data:
        print(f"no dev sets found among {args.data}", file=sys.stderr)
        return 2
    rows = [] if args.timing_only else run(data, args.quality, repeat=args.repeat)
    sets = {d.name: list(load_samples(d)) for d in data}
    timing = []
    for wanted in args.timing_photo:
        name, image = timing_photo(sets, wanted)
        timing += time_photo(args.quality, name, image, repeat=args.timing_repeat)
    print(json.dumps({"datasets": rows, "timing_photo": timing}, indent=1))
    if not args.json_only:
        print()
        print(table(rows))
        print()
        print(loss_table(rows))
        print()
        for t in timing:
            print(
                f"{t['photo']} ({t['size']}, {t['people']} people) {t['quality']:9} median of {t['runs']} "
                f"{t['seg_ms']:7.1f} ms (min {t['seg_ms_min']:.1f}; detect {t['detect_ms']:.1f}, masks "
                f"{t['masks_ms']:.1f}); raw YOLOX-416 {t['yolox416_raw_ms']:.1f} ms -> {t['ratio_to_yolox416']:.1f} Y; "
                f"CPU {t['seg_cpu_ms']:.0f} ms = {t['cpu_ratio_to_yolox416']:.1f} Y of CPU; load {t['load_1min']}"
            )
            models = ", ".join(f"{k} {v:.0f}" for k, v in t["model_cpu_ms"].items())
            print(f"    CPU ms in the models: {models}; outside them {t['outside_models_cpu_ms']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
