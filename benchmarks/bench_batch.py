"""Batch throughput: the pipelined cloud path against the fake DashScope server, and local workers.

Cloud: the fake server (loopback, random port) with injected task latencies (default seg 1 s, erase
2 s) over N images (default 20). With 1 task in flight per model the best possible throughput is
1 / max(stage latency); a sequential loop gets 1 / (sum of latencies). We report

* ``steady_ratio``: (N - 1) / (time between the first and the last finished image), divided by the bound
  (the pipeline's rate once it is full — the figure the goal of >= 0.95 refers to);
* ``end_to_end_ratio``: N / total wall time, divided by the bound (includes filling the pipeline);
* ``sequential_ratio``: what a plain loop (segment then erase, one image at a time) gets at best, and
  ``sequential_measured_ratio``: such a loop (``pe.erase`` per image) measured on 5 of the images.

Local: images/s of the process pool with 1 and 2 workers, on the same pictures with a real local
eraser (``telea`` by default, ``--eraser patchmatch`` for the slow one) and the fast figure segmenter
from ``tests/_fake_engines.py`` (so the numbers measure the batch machinery plus the eraser).
``--segmenter local --src DIR`` runs the bundled onnxruntime segmenter on the photos of ``DIR`` instead
(e.g. ``../shared/data/coco-persons-dev/images``): what the workers' thread budget is about. Besides
images/s, the CPU seconds per image (driver + workers) are reported: steadier than wall time on a
shared machine, and what oversubscribed threads waste.

Ray: the same pictures through ``executor="ray"`` with 1 and 2 actors on a local Ray (started once,
before the timed runs, like a cluster that is already up; actor start-up and model loading are in the
timed runs, as the pool's process start-up is for local). ``ray_overhead_2`` = local img/s / ray img/s
at 2 workers (goal <= 1.15). Driver memory: the peak RSS of the driver process (each in a fresh
subprocess) over ``--rss-small`` and ``--rss-large`` small images with the ray executor (goal: the
large run's peak <= 1.2x the small run's).

Prints JSON, then a table. Not a test: nothing here asserts.

    python benchmarks/bench_batch.py [--n 20] [--seg 1.0] [--erase 2.0] [--local-n 24] [--skip-cloud]
        [--skip-ray] [--rss-small 200] [--rss-large 2000] [--skip-rss] [--segmenter local --src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


class _Times:
    """A BatchProgress that records when each image finished."""

    def __init__(self) -> None:
        self.t: list[float] = []

    def start(self, total: int) -> None:
        self.t0 = time.monotonic()

    def item(self, item, counts) -> None:  # noqa: ANN001
        self.t.append(time.monotonic())

    def close(self) -> None:
        pass


def make_images(folder: Path, n: int, size: tuple[int, int]) -> None:
    from PIL import Image

    from tests._imagefactory import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, _ = make_scene(1 + i % 3, size=size, seed=i)
        Image.fromarray(img).save(folder / f"img{i:03d}.png")


def bench_cloud(n: int, seg_s: float, erase_s: float, work: Path) -> dict:
    from _cloud_kill import Servers

    from person_erase.batch import BatchParams, run_batch

    src = work / "cloud_in"
    make_images(src, n, (240, 320))
    # the server runs in its own process, like the real remote service (it must not share our GIL)
    with Servers(1, latency_seg=seg_s, latency_erase=erase_s) as fake:
        os.environ["DASHSCOPE_API_KEY"] = "sk-bench"
        os.environ["DASHSCOPE_HTTP_BASE_URL"] = fake.base_url(0)
        import dashscope  # noqa: F401 - the SDK's import (~1 s) is not part of the batch's throughput

        times = _Times()
        t0 = time.monotonic()
        summary = run_batch(
            src, work / "cloud_out", params=BatchParams(segmenter="dashscope", eraser="dashscope"), progress=times
        )
        wall = time.monotonic() - t0
        stats = fake.stats(0)
        # the same work as a plain loop (segment, then erase, one image at a time), on a few images
        import person_erase as pe

        seq_n = min(5, n)
        seg, er = (
            pe.get_segmenter("dashscope", poll_interval_s=0.025),
            pe.get_eraser("dashscope", poll_interval_s=0.025),
        )
        t1 = time.monotonic()
        for path in sorted(src.glob("*.png"))[:seq_n]:
            pe.erase(path, segmenter=seg, eraser=er)
        seq_rate = seq_n / (time.monotonic() - t1)
    bound = 1.0 / max(seg_s, erase_s)
    steady = (len(times.t) - 1) / (times.t[-1] - times.t[0]) if len(times.t) > 1 else 0.0
    return {
        "images": n,
        "latency_seg_s": seg_s,
        "latency_erase_s": erase_s,
        "done": summary.done,
        "failed": summary.failed,
        "wall_s": round(wall, 2),
        "bound_img_per_s": round(bound, 4),
        "steady_img_per_s": round(steady, 4),
        "steady_ratio": round(steady / bound, 3),
        "end_to_end_ratio": round(n / wall / bound, 3),
        "sequential_ratio": round((1.0 / (seg_s + erase_s)) / bound, 3),
        "sequential_measured_ratio": round(seq_rate / bound, 3),
        "submitted": stats.get("submitted"),
        "queried": stats.get("queried"),
    }


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children (the pool's workers, once
    the pool is shut down): the cost of a run, less swayed than wall time by what else the machine runs."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def local_images(n: int, work: Path, photos: Path | None) -> tuple[Path, str]:
    """The local runs' input folder (``n`` composed 640x480 scenes, or the first ``n`` photos of
    ``photos``) and its size for the table."""
    src = work / "local_in"
    if photos is None:
        if not src.exists():
            make_images(src, n, (480, 640))
        return src, "640x480"
    src.mkdir(parents=True, exist_ok=True)
    for p in sorted(q for q in photos.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]:
        (src / p.name).write_bytes(p.read_bytes())
    return src, f"photos of {photos.name}"


def bench_local(n: int, eraser: str, work: Path, segmenter: str = "figures", photos: Path | None = None) -> dict:
    from person_erase.batch import BatchParams, run_batch

    src, size = local_images(n, work, photos)
    n = len(list(src.iterdir()))
    out: dict = {"images": n, "eraser": eraser, "segmenter": segmenter, "size": size}
    for workers in (1, 2):
        dest = work / f"local_out_{workers}"
        t0, c0 = time.monotonic(), _cpu_s()
        summary = run_batch(src, dest, params=BatchParams(segmenter=segmenter, eraser=eraser), workers=workers,
                            plugins=("tests._fake_engines_plugin",))
        wall, cpu = time.monotonic() - t0, _cpu_s() - c0
        out[f"workers_{workers}"] = {
            "wall_s": round(wall, 2),
            "img_per_s": round(summary.done / wall, 3),
            "cpu_s_per_img": round(cpu / max(1, summary.done), 3),
            "done": summary.done,
        }
    out["speedup_2_vs_1"] = round(out["workers_2"]["img_per_s"] / out["workers_1"]["img_per_s"], 2)
    return out


def _start_ray(cpus: int = 2) -> None:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 configure_logging=False)


def bench_ray(n: int, eraser: str, work: Path, local: dict | None, segmenter: str = "figures",
              photos: Path | None = None) -> dict:
    from person_erase.batch import BatchParams, run_batch

    src, size = local_images(n, work, photos)
    _start_ray()
    out: dict = {"images": len(list(src.iterdir())), "eraser": eraser, "segmenter": segmenter, "size": size}
    for actors in (1, 2):
        dest = work / f"ray_out_{actors}"
        t0 = time.monotonic()
        summary = run_batch(src, dest, params=BatchParams(segmenter=segmenter, eraser=eraser), executor="ray",
                            workers=actors, plugins=("tests._fake_engines_plugin",))
        wall = time.monotonic() - t0
        out[f"actors_{actors}"] = {
            "wall_s": round(wall, 2),
            "img_per_s": round(summary.done / wall, 3),
            "done": summary.done,
        }
        if local is not None:
            out[f"ray_overhead_{actors}"] = round(
                local[f"workers_{actors}"]["img_per_s"] / out[f"actors_{actors}"]["img_per_s"], 3
            )
            same = all((work / f"local_out_{actors}" / it.input).read_bytes() == (dest / it.input).read_bytes()
                       for it in summary.items)
            out[f"byte_identical_{actors}"] = same
    import ray

    ray.shutdown()
    return out


def _rss_child(n: int, executor: str) -> None:
    """Run in a fresh process: n small images through the batch, print the driver's peak RSS (MB)."""
    import resource

    from person_erase.batch import BatchParams, run_batch

    with tempfile.TemporaryDirectory(prefix="pe-bench-rss-") as tmp:
        src = Path(tmp) / "in"
        make_images(src, n, (48, 64))
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.monotonic()
        s = run_batch(
            src,
            Path(tmp) / "out",
            params=BatchParams(segmenter="figures", eraser="telea"),
            executor=executor,
            workers=2,
            plugins=("tests._fake_engines_plugin",),
        )
        wall = time.monotonic() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": n, "done": s.done, "peak_rss_mb": round(peak, 1), "rss_before_mb": round(base, 1),
                      "wall_s": round(wall, 2)}))


def bench_rss(small: int, large: int, executor: str = "ray") -> dict:
    import subprocess

    out: dict = {"executor": executor}
    for n in (small, large):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        r = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--rss-executor", executor], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=1800)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        out[str(n)] = json.loads(line[-1]) if line else {"error": r.stderr[-500:]}
    try:
        out["ratio"] = round(out[str(large)]["peak_rss_mb"] / out[str(small)]["peak_rss_mb"], 3)
    except (KeyError, ZeroDivisionError):
        out["ratio"] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="images for the cloud run")
    ap.add_argument("--seg", type=float, default=1.0, help="segmentation task latency, s")
    ap.add_argument("--erase", type=float, default=2.0, help="erase task latency, s")
    ap.add_argument("--local-n", type=int, default=24, help="images for the local runs")
    ap.add_argument("--eraser", default="telea", help="local eraser (telea, patchmatch)")
    ap.add_argument("--segmenter", default="figures", help="local/ray runs' segmenter (figures: the fast fake; local)")
    ap.add_argument("--src", type=Path, default=None, help="local/ray runs: photos from this folder (default: scenes)")
    ap.add_argument("--skip-cloud", action="store_true")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--rss-small", type=int, default=200)
    ap.add_argument("--rss-large", type=int, default=2000)
    ap.add_argument("--rss-executor", default="ray", help=argparse.SUPPRESS)
    ap.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.chdir(REPO)
    if args.rss_child is not None:
        _rss_child(args.rss_child, args.rss_executor)
        return
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="pe-bench-batch-") as tmp:
        work = Path(tmp)
        if not args.skip_cloud:
            results["cloud"] = bench_cloud(args.n, args.seg, args.erase, work)
        if not args.skip_local:
            results["local"] = bench_local(args.local_n, args.eraser, work, args.segmenter, args.src)
        if not args.skip_ray:
            results["ray"] = bench_ray(args.local_n, args.eraser, work, results.get("local"), args.segmenter, args.src)
    if not args.skip_rss:
        results["driver_rss"] = bench_rss(args.rss_small, args.rss_large)
    print(json.dumps(results, indent=2))
    if "cloud" in results:
        c = results["cloud"]
        print(f"\ncloud pipeline, {c['images']} images, seg {c['latency_seg_s']} s + erase {c['latency_erase_s']} s")
        print(f"  bound 1/max(latency)   {c['bound_img_per_s']:.3f} img/s")
        print(f"  steady-state           {c['steady_img_per_s']:.3f} img/s  ratio {c['steady_ratio']:.3f}")
        print(f"  end to end             ratio {c['end_to_end_ratio']:.3f} (wall {c['wall_s']} s)")
        print(f"  sequential loop        ratio {c['sequential_measured_ratio']:.3f} measured on 5 images "
              f"(ideal {c['sequential_ratio']:.3f})")
        print(f"  tasks submitted        {c['submitted']}, status queries {c['queried']}")
    for key, title, unit in (("local", "local pool", "worker"), ("ray", "ray executor (local Ray)", "actor")):
        if key not in results:
            continue
        res = results[key]
        print(f"\n{title}, {res['images']} images {res['size']}, segmenter {res['segmenter']}, eraser {res['eraser']}")
        for k in (1, 2):
            r = res[f"{unit}s_{k}"]
            cpu = f", {r['cpu_s_per_img']:.3f} CPU s/img" if "cpu_s_per_img" in r else ""
            extra = f"  local/ray {res[f'ray_overhead_{k}']:.3f}x" if f"ray_overhead_{k}" in res else ""
            print(f"  {k} {unit}{'s' if k > 1 else ' '}  {r['img_per_s']:.2f} img/s  ({r['wall_s']} s{cpu}){extra}")
        if "speedup_2_vs_1" in res:
            print(f"  speed-up 2 vs 1: {res['speedup_2_vs_1']}x")
    if "driver_rss" in results:
        d = results["driver_rss"]
        for k, v in d.items():
            if isinstance(v, dict):
                print(f"  driver peak RSS, {k} images: {v.get('peak_rss_mb')} MB ({v.get('wall_s')} s)")
        print(f"  ratio large/small: {d['ratio']}")


if __name__ == "__main__":
    main()
