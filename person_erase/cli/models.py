"""``person-erase models add|list|check|remove``: the store of the user's own ONNX models.

A URL is fetched only here, by ``models add`` (https; plain http to loopback only); nothing else in
person_erase downloads. The library side is :mod:`person_erase.modelstore`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .helpers import Say, add_command

NAMES = ("models",)

EXAMPLES = """\
examples:
  person-erase models check lama_fp32.onnx                 # which engine family a file fits, or why none
  person-erase models add lama ~/models/lama_fp32.onnx     # refused: 'lama' is the family name
  person-erase models add biglama ~/models/lama_fp32.onnx  # referenced in place (--copy: copy it in)
  person-erase models add people https://host/yolo11s-seg.onnx --sha256 HEX   # download once, checked
  person-erase models list
  person-erase erase photo.jpg -o out.jpg --eraser biglama --segmenter people

Families: lama (eraser, LaMa ONNX, 512x512 float), migan (eraser, MI-GAN pipeline ONNX, uint8),
yolo-seg (segmenter, Ultralytics YOLOv8/YOLO11 -seg ONNX). Files can also be used directly:
--eraser lama:FILE.onnx, --eraser migan:FILE.onnx, --segmenter yolo-seg:FILE.onnx.
The store is $PERSON_ERASE_MODELS, else the user data folder (see `models list`).
"""


def register(sub: Any) -> None:
    """Add the ``models`` subcommand (with add, list, check, remove) to ``sub``."""
    p = add_command(sub, "models", help="register your own ONNX models (LaMa, MI-GAN, YOLO-seg)", epilog=EXAMPLES,
                    description="Register, list and check ONNX model files of the engine families "
                    "lama, migan and yolo-seg. Nothing is downloaded except by `models add URL`.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    a = add_command(msub, "add", help="register a file (in place) or download a URL into the store",
                    description="Register an ONNX file under NAME (referenced where it is, or copied with --copy), "
                    "or download an https:// URL into the store once. The file is checked to fit its engine "
                    "family before it is registered.")
    a.add_argument("name", metavar="NAME", help="the name to use it by (--eraser NAME / --segmenter NAME)")
    a.add_argument("source", metavar="FILE_OR_URL", help="an .onnx file, or an https:// URL to download once")
    a.add_argument("--sha256", metavar="HEX", help="expected sha256 of the file; refused when it differs")
    a.add_argument(
        "--copy", action="store_true", help="copy a local file into the store (default: reference it in place)"
    )
    a.add_argument("--force", action="store_true", help="replace a model already registered under NAME")
    a.add_argument("--max-mb", type=float, default=2048.0, metavar="MB",
                   help="largest download accepted, in MB (default 2048)")
    a.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="give up a download after S seconds without data (default 60)")
    ls = add_command(msub, "list", help="the registered models",
                     description="The registered models (name, family, size, sha256, file, whether the file is still "
                     "as added) and where the store is.")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c = add_command(msub, "check", help="which engine family a file fits, or exactly why it fits none",
                    description="Which engine family (lama, migan, yolo-seg) an ONNX file fits, or exactly why it "
                    "fits none. Registers nothing.")
    c.add_argument("file", metavar="FILE", help="an .onnx file")
    c.add_argument("--json", action="store_true", help="print JSON")
    r = add_command(msub, "remove", help="unregister a model (deletes the file only if the store holds it)",
                    description="Unregister a model; its file is deleted only if the store holds it (added from "
                    "a URL or with --copy), never a file referenced in place.")
    r.add_argument("name", metavar="NAME", help="the name it was added under (see `models list`)")
    for q in (a, ls, c, r):
        q.set_defaults(_models_action_parser=q)
        q.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress messages")
        q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks instead of one-line errors")
    p.set_defaults(_models_parser=p)


def run(args: argparse.Namespace, say: Say) -> int:
    """Run ``person-erase models ...``; returns the exit status."""
    from ..errors import PersonEraseError
    from .helpers import flags_of, to_flags

    try:
        return _run(args, say)
    except PersonEraseError as exc:
        # library messages name parameters (`sha256`, `overwrite=True`): say this action's flags instead
        action_parser = getattr(args, "_models_action_parser", None)
        if action_parser is not None:
            flags = {**flags_of(action_parser), "overwrite": "--force", "max_bytes": "--max-mb"}
            exc.args = (to_flags(str(exc), flags), *exc.args[1:])
        raise


def _run(args: argparse.Namespace, say: Say) -> int:
    action = getattr(args, "models_command", None)
    if action == "add":
        return _add(args, say)
    if action == "list":
        return _list(args)
    if action == "check":
        return _check(args)
    if action == "remove":
        return _remove(args)
    args._models_parser.print_help()
    return 2


def _use_hint(kind: str, name: str) -> str:
    flag = "--eraser" if kind == "eraser" else "--segmenter"
    return f"use it with: person-erase erase PHOTO -o OUT {flag} {name}"


def _add(args: argparse.Namespace, say: Say) -> int:
    from .. import modelstore
    from ..errors import InputError

    if args.max_mb <= 0:
        raise InputError(f"--max-mb must be > 0, got {args.max_mb}")
    if args.timeout <= 0:
        raise InputError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if not args.force and modelstore.get_model(args.name) is not None:
        raise InputError(f"a model named {args.name!r} is already registered; `models remove {args.name}` first, "
                         "or add --force to replace it")
    last = [0.0]

    def shown(got: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and (total is None or got < total):
            return
        last[0] = now
        of = f" of {total / 1e6:.1f}" if total else ""
        say(f"downloading {got / 1e6:.1f}{of} MB")

    if modelstore.is_url(args.source):
        say(f"downloading {args.source}")
    else:
        say(f"checking {args.source}")
    m = modelstore.add_model(args.name, args.source, sha256=args.sha256, copy=args.copy, overwrite=args.force,
                             max_bytes=int(args.max_mb * 1e6), timeout=args.timeout, progress=shown)
    where = f"stored as {m.path}" if m.stored else f"referenced in place: {m.path}"
    print(f"added {m.name}: {m.family} {m.kind}, {m.size} bytes, sha256 {m.sha256} ({where})")
    if not args.sha256:
        print("note: no --sha256 given; the hash above is recorded and checked on every use", file=sys.stderr)
    print(_use_hint(m.kind, m.name))
    return 0


def _list(args: argparse.Namespace) -> int:
    from .. import modelstore

    folder = modelstore.store_dir()
    models = modelstore.list_models(folder)
    if args.json:
        rows = [{**m.__dict__, "status": modelstore.file_status(m)} for m in models]
        print(json.dumps({"store": str(folder), "models": rows}, indent=2))
        return 0
    print(f"model store: {folder}")
    if not models:
        print("no models registered (person-erase models add NAME FILE_OR_URL)")
        return 0
    head = ["name", "family", "kind", "size MB", "sha256", "status", "file"]
    lines = [head] + [[m.name, m.family, m.kind, f"{m.size / 1e6:.1f}", m.sha256[:12],
                       modelstore.file_status(m), m.path + ("" if m.stored else "  (in place)")] for m in models]
    widths = [max(len(r[k]) for r in lines) for k in range(len(head))]
    for r in lines:
        print("  ".join(c.ljust(widths[k]) for k, c in enumerate(r)).rstrip())
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..errors import EngineError
    from ..onnxmodel import check_file, describe_fits, model_file, read_signature

    fits = check_file(args.file)
    sig = read_signature(args.file)
    info = model_file(args.file)
    good = [f for f in fits if f.ok]
    if args.json:
        print(json.dumps({"file": str(args.file), "size": info.size, "sha256": info.sha256,
                          "signature": sig.describe(),
                          "families": {f.family: {"kind": f.kind, "fits": f.ok, "problems": list(f.problems)}
                                       for f in fits}}, indent=2))
        return 0 if good else 1
    if not good:
        raise EngineError(f"{args.file} fits no engine family ({sig.describe()}): {describe_fits(fits)}")
    print(f"{args.file}: {info.size} bytes, sha256 {info.sha256}")
    print(f"  {sig.describe()}")
    for f in good:
        flag = "--eraser" if f.kind == "eraser" else "--segmenter"
        print(f"  fits {f.family} ({f.kind}): use {flag} {f.family}:{args.file}, or register it with `models add`")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from .. import modelstore

    m = modelstore.remove_model(args.name)
    print(f"removed {m.name}" + (f" and deleted {m.path}" if m.stored else f" (left {m.path} in place)"))
    return 0
