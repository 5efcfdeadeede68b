"""``person-erase batch``: a folder (or a manifest) of photos, resumable, on this machine or a Ray cluster.

Exit status: 0 when every image is done (or was done before), 1 when any failed or is still pending,
130 when interrupted (Ctrl-C or SIGTERM: the images in flight are finished and kept first; a second
interrupt abandons them).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from .helpers import Say, add_command
from .options import (
    DILATE_DEFAULT_HELP,
    VERIFY_HELP,
    add_face_options,
    add_local_options,
    eraser_help,
    eraser_options,
    segmenter_help,
    segmenter_options,
    style_help,
)

NAMES = ("batch",)
EXECUTORS = ("local", "cloud", "ray")


def register(sub: Any) -> None:
    """Add the ``batch`` subcommand to ``sub`` (the top parser's subparsers)."""
    p = add_command(sub, "batch", help="process a folder (or a manifest), resumable",
                    description="Erase or redact people in every image of a folder; safe to interrupt and --resume.")
    add_batch_arguments(p)


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """The ``batch`` subcommand's arguments."""
    from ..io import METADATA_POLICIES

    p.add_argument("input", metavar="IN", help="a folder of images (recursed) or a manifest .csv/.jsonl "
                   "(columns: path, and optional select, keep, policy per image); a path or a URI such as s3://bucket/prefix")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="output folder (path or URI): mirrors the input's relative paths; holds summary.json "
                   "(and, for a local folder, the journal)")
    p.add_argument(
        "--mode", choices=["erase", "redact"], default=None, help="erase (default) or redact; --style implies redact"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--select", metavar="0,2", help="erase (redact: hide) these person numbers in every image")
    g.add_argument("--keep", metavar="1", help="keep these person numbers, erase (hide) everyone else")
    g.add_argument("--policy", metavar="NAME", help="all (default), largest:N, passersby, passersby+group")
    p.add_argument("--segmenter", default="local", metavar="NAME", help=f"who finds the people: {segmenter_help()}")
    add_local_options(p, privacy_hint=True)
    p.add_argument("--eraser", default="patchmatch", metavar="NAME", help=eraser_help())
    p.add_argument("--style", default=None, metavar="STYLE", help=f"redaction style: {style_help()}")
    p.add_argument("--fast", action="store_true", help="quicker, rougher fill (dashscope fast_mode)")
    add_face_options(p, default_target=None)
    p.add_argument("--dilate", type=int, metavar="PX",
                   help=f"grow the mask by PX pixels (default: erase {DILATE_DEFAULT_HELP['erase']}; "
                   f"redact {DILATE_DEFAULT_HELP['redact']})")
    p.add_argument("--metadata", choices=list(METADATA_POLICIES), default=None,
                   help="EXIF/XMP/ICC policy (default keep for erase, strip-gps for redact)")
    p.add_argument("--verify", action="store_true",
                   help=f"look again in each output, for {VERIFY_HELP['erase']} (erase) or {VERIFY_HELP['redact']} "
                   "(redact); reported in each image's sidecar")
    p.add_argument("--format", dest="output_format", default="same", metavar="EXT",
                   help="output format: same (default: the input's) or png, jpg, webp, ...")
    p.add_argument("--resume", action="store_true", help="continue the run journaled in OUT_DIR (skips what is done)")
    p.add_argument("--retry-failed", action="store_true", help="like --resume, and retry the images that failed")
    p.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="local: process pool (default for local engines); cloud: pipelined DashScope calls (default "
                   "and only choice for dashscope engines); ray: Ray Data actors on a Ray cluster (local engines)")
    p.add_argument("--address", metavar="auto|ray://HOST:PORT", default=None,
                   help="with --executor ray: the cluster to join (default: start a local Ray on this machine)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes (local, default: number of cores; each runs its models on an equal share of "
                   "the cores) or actors (ray, default 2)")
    p.add_argument("--cache-dir", metavar="DIR", help="segmentation cache (default OUT_DIR/.person_erase/segments); "
                   "share it between output folders to segment each photo once")
    p.add_argument("--state-dir", metavar="DIR", help="journal and lock folder (default OUT_DIR/.person_erase; "
                   "for a remote OUT_DIR a folder under ~/.local/state/person_erase)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (in every worker), e.g. one that registers extra engines")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or log lines (summary only)")


def params_from_args(args: argparse.Namespace) -> Any:
    """``BatchParams`` from parsed ``batch`` arguments (flag names in the messages)."""
    from ..batch import BatchParams, parse_numbers
    from ..errors import InputError

    mode = args.mode or ("redact" if args.style else "erase")
    if mode == "erase" and args.style:
        raise InputError("--style is for redact; use --mode redact (or drop --style)")
    seg_opts = segmenter_options(args, args.segmenter)
    er_opts = eraser_options(args, args.eraser) if mode == "erase" else {}
    if mode == "redact" and args.fast:
        raise InputError("--fast is for erase (the dashscope eraser's fast mode)")
    if mode == "erase" and (args.target is not None or not args.face_net or not args.person_net):
        raise InputError("--target, --no-face-net and --no-person-net are for redact; use --mode redact (or --style)")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be 1 or more, got {args.workers}")
    if args.address is not None and args.executor != "ray":
        raise InputError("--address is for --executor ray")
    return BatchParams(
        mode=mode,
        eraser=args.eraser,
        style=args.style or "blur",
        segmenter=args.segmenter,
        segmenter_options=seg_opts,
        eraser_options=er_opts,
        select=parse_numbers(args.select, what="--select"),
        keep=parse_numbers(args.keep, what="--keep"),
        policy=args.policy,
        dilate=args.dilate,
        metadata=args.metadata,
        verify=bool(args.verify),
        output_format=args.output_format,
        face_net=bool(args.face_net),
        person_net=bool(args.person_net),
        target=args.target or "body",
    )


def format_summary(summary: Any, *, max_failures: int = 20) -> str:
    """The end-of-run table (plain text)."""
    rate = f", {summary.images_per_s:.2f} img/s" if summary.images_per_s else ""
    lines = [
        f"batch: {summary.total} images in {summary.seconds:.1f} s{rate} ({summary.engine}) -> {summary.output_dir}"
    ]
    rows = [
        ("done", summary.done, ""),
        ("skipped", summary.skipped, "already done in an earlier run"),
        ("failed", summary.failed, "see reasons below" if summary.failed else ""),
        ("non-images", summary.non_images, "other files, left alone"),
        ("cache hits", summary.cache_hits, "segmentations reused"),
    ]
    if summary.pending:
        why = (f"{summary.stopped}: rerun with --resume once quota is available" if summary.stopped
               else "interrupted: rerun with --resume")
        rows.append(("not started", summary.pending, why))
    w = max(len(r[0]) for r in rows)
    for name, n, note in rows:
        lines.append(f"  {name.ljust(w)}  {n:>6}  {note}".rstrip())
    failed = [it for it in summary.items if it.status == "failed"]
    if failed:
        lines.append("failed:")
        for it in failed[:max_failures]:
            lines.append(f"  {it.input}  [{it.stage or '?'}] {it.reason}")
        if len(failed) > max_failures:
            lines.append(f"  ... and {len(failed) - max_failures} more (all in summary.json)")
        lines.append("rerun with --retry-failed to retry them")
    lines.append(f"summary: {summary.output_dir.rstrip('/')}/summary.json")
    return "\n".join(lines)


def _sigterm_as_interrupt() -> Any:
    """SIGTERM is handled like Ctrl-C (returns the previous handler, or None off the main thread)."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None


def run(args: argparse.Namespace, say: Say) -> int:
    """Run ``person-erase batch``; returns the exit status (see the module docstring)."""
    from ..batch import LogProgress, NoProgress, TqdmProgress, run_batch
    from ..batch.executors import import_plugins

    import_plugins(args.plugin)  # engines registered by plugins are valid choices below
    params = params_from_args(args)
    quiet = getattr(args, "quiet", False) or args.no_progress
    progress: Any
    if quiet:
        progress = NoProgress()
    elif sys.stderr.isatty():
        progress = TqdmProgress()
    else:
        progress = LogProgress()
    previous = _sigterm_as_interrupt()
    try:
        summary = run_batch(
            args.input,
            args.output,
            params=params,
            resume=args.resume,
            retry_failed=args.retry_failed,
            workers=args.workers,
            executor=args.executor,
            address=args.address,
            cache_dir=args.cache_dir,
            state_dir=args.state_dir,
            plugins=args.plugin,
            progress=progress,
        )
    except KeyboardInterrupt:
        print("interrupted: finished images are kept; rerun with --resume to continue", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(format_summary(summary))
    if summary.stopped:
        n = summary.pending
        print(f"error: {summary.stopped}: {n} image{'s' if n != 1 else ''} not started (\"not started: quota "
              "exhausted\" in summary.json); rerun with --resume once quota is available", file=sys.stderr)
        return 1
    if summary.interrupted:
        return 130
    return 1 if (summary.failed or summary.pending) else 0
