"""One photo end to end: load → segment → select → masks → erase/redact → compose → verify → Result.

The one-call functions ``segment``, ``erase`` and ``redact`` cover the common case. For repeated work,
build engines once (``get_segmenter``, ``get_eraser``) and pass them back in: both functions accept an
engine object wherever they accept a name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import masks as masks_mod
from .engineinfo import EraseInfo
from .erasers import REDACT_STYLES, Eraser, get_eraser
from .errors import InputError, SelectionError
from .instances import Instances
from .io import Image, MetadataPolicy, load_image, save_image
from .plan import Plan
from .report import FaceAdded, ImageReport, InputInfo, ModelInfo, PersonAdded, finish_report, instance_rows
from .segmenters import SEGMENTERS, Segmenter, get_segmenter
from .selection import Selection, select_people
from .verify import verify_removal

#: Progress callback: called with a short stage description ("segmenting", "erasing 2 people", …).
Progress = Callable[[str], None]

ImageLike = "str | os.PathLike[str] | np.ndarray | Image"


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round(self.ms.get(name, 0.0) + (time.perf_counter() - t0) * 1000.0, 2)


#: Redaction grows each person by this share of their height (see ``redact``).
REDACT_MARGIN = 0.05
#: Redaction covers people shorter than this (px) with their whole box (see ``redact``).
REDACT_BOX_BELOW = 96


def _model_files(people: Instances, erased: Sequence[EraseInfo]) -> dict[str, ModelInfo]:
    """The user-supplied model files behind the segmentation and the eraser (name, size, sha256)."""
    out: dict[str, ModelInfo] = {}
    if people.info.model is not None:
        out["segmenter"] = ModelInfo(**asdict(people.info.model))
    used = next((i.model for i in erased if i.model is not None), None)
    if used is not None:
        out["eraser"] = ModelInfo(**asdict(used))
    return out


def segment(image: Any, engine: str | Segmenter = "local", **options: Any) -> Instances:
    """Find every person in ``image`` (a path, ``pe.Image`` or (H, W, 3) uint8 RGB array).

    Args:
        engine: ``"local"`` (default, offline), ``"dashscope"``, ``"labels:PATH"``, or a segmenter object.
        **options: passed to the engine's constructor (e.g. ``quality="best"``).

    Returns:
        Instances numbered 0..N-1 left to right.
    """
    img = load_image(image)
    seg = get_segmenter(engine, **options)
    people = seg.segment(img.pixels)
    if people.shape != (img.height, img.width):
        raise InputError(
            f"the {SEGMENTERS.describe(seg).name} segmenter returned masks of {people.shape[1]}x{people.shape[0]} "
            f"for a {img.width}x{img.height} photo"
        )
    return people


@dataclass(frozen=True, eq=False)
class Result:
    """What ``erase``/``redact`` produce.

    Attributes:
        image: (H, W, 3) uint8 RGB output; outside ``erase_mask`` byte-identical to the input.
        erase_mask: (H, W) bool, the pixels that were filled or redacted.
        keep_mask: (H, W) bool, the kept people (never changed, never used as fill source).
        report: ``ImageReport`` (pydantic; ``report.to_json()``).
        source: the input ``Image``.
        people: the ``Instances`` the choice was made from.
        selection: the ``Selection`` (who goes, and why).
    """

    image: np.ndarray
    erase_mask: np.ndarray
    keep_mask: np.ndarray
    report: ImageReport
    source: Image
    people: Instances
    selection: Selection

    def save(self, path: str | os.PathLike[str], *, metadata: MetadataPolicy = "keep", overwrite: bool = False) -> Path:
        """Write the output atomically (format from the extension) under a metadata policy.

        ``report`` is then the saved output's report (a new one, with ``output`` and
        ``metadata_policy``; see ``report.finish_report``): a report taken before is not changed.

        Raises:
            InputError: bad extension, unwritable folder, or the path is the input (unless ``overwrite``).
        """
        from .io import check_output_path

        out = check_output_path(path, input_path=self.source.path, overwrite=overwrite)
        saved = save_image(self.image, out, like=self.source, metadata=metadata)
        # the report is frozen: this Result now holds the saved output's report (``report.finish_report``)
        object.__setattr__(self, "report", finish_report(self.report, output=str(saved), metadata_policy=metadata))
        return saved

    def save_masks(self, folder: str | os.PathLike[str], stem: str | None = None) -> tuple[Path, Path]:
        """Write ``<stem>.erase.png`` and ``<stem>.keep.png`` (0/255, output size) into ``folder``."""
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        stem = stem or (self.source.path.stem if self.source.path else "image")
        paths = []
        for name, m in (("erase", self.erase_mask), ("keep", self.keep_mask)):
            p = d / f"{stem}.{name}.png"
            save_image(np.repeat((m.astype(np.uint8) * 255)[:, :, None], 3, axis=2), p, metadata="strip-all")
            paths.append(p)
        return paths[0], paths[1]

    def before_after(self) -> np.ndarray:
        """(H, 2W+gap, 3) picture: input with numbered people | output."""
        from .overlay import draw_overlay, side_by_side

        labels = {i: "" for i in self.selection.erase}
        left = draw_overlay(self.people, self.source.pixels, erase=self.erase_mask, keep=self.keep_mask, labels=labels)
        return side_by_side(left, self.image, titles=["before", "after"])

    def _repr_png_(self) -> bytes:  # notebooks show before | after, at most PREVIEW_MAX_SIDE px wide
        from .overlay import preview_png

        return preview_png(self.before_after())


def _add_faces(pixels: np.ndarray, people: Instances, chosen: np.ndarray, pair: masks_mod.MaskPair, *,
               target: str, grow_bodies: bool) -> tuple[masks_mod.MaskPair, np.ndarray, list[FaceAdded]]:
    """The face pass of ``redact``: faces (CenterFace) outside the body region are added to it (or,
    for ``target="faces"``, faces and heads replace it); the keep mask still wins. Also returns the
    face-only part, which is redacted at ``face_regions.FACE_STRENGTH``."""
    from dataclasses import replace

    from .face_regions import find_faces, plan_faces

    faces = find_faces(pixels, people)
    body = pair.erase if target == "body" else np.zeros_like(pair.erase)
    plan = plan_faces(faces, people, chosen, body, target=target, grow_bodies=grow_bodies and target == "body")
    erase = (body | plan.region) & ~pair.keep
    rows = [FaceAdded(**row) for row in plan.added]
    return replace(pair, erase=erase), plan.region & ~body & ~pair.keep, rows


#: Selections under which the person net adds people: those that hide everyone not kept (a person the
#: segmentation missed is nobody's subject); ``select`` and ``largest:N`` name exactly who goes.
NET_POLICIES = ("all", "keep", "passersby", "passersby+group")


def _add_people(pixels: np.ndarray, people: Instances, chosen: np.ndarray, pair: masks_mod.MaskPair, *,
                margin: float, box_below: int) -> tuple[masks_mod.MaskPair, list[PersonAdded]]:
    """The person net of ``redact`` (``person_net.plan_people``): people the segmentation missed are
    added to the body region like segmented ones; the keep mask still wins."""
    from dataclasses import replace

    from .person_net import plan_people

    net = plan_people(pixels, people, chosen, pair.erase, pair.keep, radius=pair.dilate, margin=margin,
                      box_below=box_below)
    if not net.added:
        return pair, []
    return replace(pair, erase=pair.erase | (net.region & ~pair.keep)), [PersonAdded(**row) for row in net.added]


def _face_eraser(eng: Eraser, plan: Plan) -> Eraser:
    """The redaction engine for face regions: the same style, at least ``FACE_STRENGTH`` of the region."""
    from .face_regions import FACE_STRENGTH

    style = plan.eraser_spec.name
    if style not in FACE_STRENGTH:
        return eng
    given = plan.eraser_options.get("strength")
    strength = max(float(given), FACE_STRENGTH[style]) if given is not None else FACE_STRENGTH[style]
    return get_eraser(style, **{**plan.eraser_options, "strength": strength})


def _run(plan: Plan, image: Any, people: Instances | None, progress: Progress | None) -> Result:
    """One photo through ``plan`` (checked already: nothing here is a bad value the plan could refuse)."""
    from .compose import apply_eraser, count_changed_outside

    mode = plan.mode
    say = progress or (lambda _msg: None)
    timer = _Timer()
    eng = get_eraser(plan.eraser, **plan.eraser_options)
    with timer.stage("load"):
        img = load_image(image)
    dilate = plan.dilate_for(img.height, img.width)  # and what needs only the photo's size
    seg_name = plan.segmenter_spec.name
    if people is None:
        say("finding people")
        with timer.stage("segment"):
            people = get_segmenter(plan.segmenter).segment(img.pixels)
    else:
        seg_name = people.info.engine or "given"
    if people.shape != (img.height, img.width):
        raise InputError(
            f"the instances are {people.shape[1]}x{people.shape[0]} but the photo is {img.width}x{img.height}; "
            "segment this photo (or pass a label map of the same size)"
        )
    with timer.stage("select"):
        sel = select_people(people, select=plan.select, keep=plan.keep, policy=plan.policy, image=img.pixels)
    positions = sel.positions(people)
    with timer.stage("masks"):
        pair = masks_mod.build_masks(people, positions, dilate_px=dilate, privacy_margin=plan.margin,
                                     box_below_px=plan.box_below)
    chosen = np.zeros(len(people), bool)  # per row of ``people``: goes (the redaction passes keep the rest)
    chosen[positions] = True
    people_added: list[PersonAdded] = []
    if mode == "redact" and plan.person_net and plan.target == "body" and sel.policy in NET_POLICIES:
        say("looking for people the segmentation missed")
        with timer.stage("person_net"):
            pair, people_added = _add_people(img.pixels, people, chosen, pair, margin=plan.margin,
                                             box_below=plan.box_below)
    faces_added: list[FaceAdded] = []
    face_only = None
    if mode == "redact" and (plan.face_net or plan.target == "faces"):
        say("looking for faces")
        with timer.stage("faces"):
            pair, face_only, faces_added = _add_faces(img.pixels, people, chosen, pair,
                                                      target=plan.target, grow_bodies=plan.face_net)
    raw_outside = 0
    erased: list[EraseInfo] = []  # what each eraser call did
    if pair.erase.any():
        n = len(sel.erase)
        say(
            f"{'erasing' if mode == 'erase' else 'redacting'} {n} {'person' if n == 1 else 'people'} with "
            f"{plan.eraser_spec.name}"
        )
        with timer.stage("erase"):
            body = pair.erase if face_only is None else pair.erase & ~face_only
            out = img.pixels
            if body.any():
                out, stats = apply_eraser(eng, out, body, pair.keep, spec=plan.eraser_spec)
                raw_outside, erased = stats.raw_outside_changed_px, [*erased, *stats.infos]
            if face_only is not None and face_only.any():
                # faces on their own are small regions: the body rule (a share of the region's height)
                # would blur a face by a share of the face; FACE_STRENGTH is tuned for a face
                out, stats = apply_eraser(_face_eraser(eng, plan), out, face_only, pair.keep, spec=plan.eraser_spec)
                raw_outside, erased = raw_outside + stats.raw_outside_changed_px, [*erased, *stats.infos]
            if out is img.pixels:
                out = img.pixels.copy()
    else:
        out = img.pixels.copy()
    with timer.stage("check"):
        outside = count_changed_outside(img.pixels, out, pair.erase)
    if outside:
        # compose guarantees this; a non-zero count is a bug, never a user's problem to ignore
        raise RuntimeError(f"internal error: {outside} pixels changed outside the erase mask")
    verification = None
    if plan.verify:
        say("verifying: looking for people again")
        with timer.stage("verify"):
            vseg = plan.segmenter if plan.verify is True else plan.verify
            verification = verify_removal(out, pair.erase, vseg, mode=mode, original=img.pixels)
    task_ids: dict[str, list[str]] = {}
    for key, ids in (("segment", people.info.task_ids), ("erase", [t for i in erased for t in i.task_ids])):
        if ids:
            task_ids[key] = list(ids)
    params: dict[str, Any] = {"dilate_px": pair.dilate}
    if mode == "redact":
        params.update(margin=plan.margin, box_below_px=plan.box_below, face_net=plan.face_net,
                      person_net=plan.person_net, target=plan.target)
    params.update({k: v for k, v in plan.eraser_options.items() if isinstance(v, (int, float, str, bool))})
    for info in erased:  # what the cloud eraser sent explicitly (dilate_flag, fast_mode, add_watermark)
        params.update({k: v for k, v in info.parameters.items() if isinstance(v, (int, float, str, bool))})
    if people.info.quality is not None:
        params["segment_quality"] = people.info.quality
    models = _model_files(people, erased)
    report = ImageReport(
        mode=mode,
        input=InputInfo(name=img.name, sha256=img.sha256, width=img.width, height=img.height,
                        orientation=img.metadata.orientation, format=img.metadata.format),
        instances=instance_rows(people, sel),
        policy=sel.policy,
        notes=[*people.info.notes, *sel.notes],
        erase_area_px=int(pair.erase.sum()),
        keep_area_px=int(pair.keep.sum()),
        overlap_resolved_px=pair.overlap_resolved_px,
        segmenter=seg_name,
        eraser=plan.eraser_spec.name,
        models=models,
        parameters=params,
        cloud_task_ids=task_ids,
        timings_ms=timer.ms,
        outside_mask_changed_px=outside,
        engine_outside_changed_px=raw_outside,
        verification=verification,
        target=plan.target if mode == "redact" else None,
        faces_added=faces_added,
        people_added=people_added,
    )
    out.setflags(write=False)
    return Result(
        image=out, erase_mask=pair.erase, keep_mask=pair.keep, report=report, source=img, people=people, selection=sel
    )


def erase(
    image: Any,
    people: Instances | None = None,
    *,
    select: Sequence[int] | str | None = None,
    keep: Sequence[int] | str | None = None,
    policy: str | None = None,
    eraser: str | Eraser = "patchmatch",
    segmenter: str | Segmenter = "local",
    dilate: int | None = None,
    verify: bool | str | Segmenter = False,
    progress: Progress | None = None,
    **eraser_options: Any,
) -> Result:
    """Erase people and fill the background back in.

    Args:
        image: a path, ``pe.Image`` or (H, W, 3) uint8 RGB array.
        people: instances from ``segment``; found with ``segmenter`` when None.
        select: person numbers to erase (e.g. ``[0, 2]`` or ``"0,2"``).
        keep: person numbers to keep; everyone else is erased.
        policy: ``"all"`` (default), ``"largest:N"``, ``"passersby"``, ``"passersby+group"``.
        eraser: ``"patchmatch"`` (default), ``"telea"``, ``"dashscope"``, a redaction style, or an eraser object.
        segmenter: used only when ``people`` is None.
        dilate: erase-mask dilation in px (default scales with the photo: 9 px at 1 MP).
        verify: re-run a segmenter on the output and report residues (True = the same segmenter).
        progress: called with a short message at each stage.
        **eraser_options: passed to the eraser's constructor (e.g. ``patch_size=7``).

    Returns:
        Result; pixels outside ``result.erase_mask`` are byte-identical to the input.

    Raises:
        InputError, SelectionError, EngineError (CloudError): with a message that says what to do.
    """
    # everything that can be wrong without the people is checked before looking for them (which may be
    # a billed cloud call): the choice of people, the growth, the engines and their options
    plan = Plan.build("erase", eraser=eraser, segmenter=segmenter, select=select, keep=keep, policy=policy,
                      dilate=dilate, verify=verify, eraser_options=eraser_options)
    return _run(plan, image, people, progress)


def redact(
    image: Any,
    people: Instances | None = None,
    *,
    style: str = "blur",
    select: Sequence[int] | str | None = None,
    keep: Sequence[int] | str | None = None,
    policy: str | None = None,
    segmenter: str | Segmenter = "local",
    dilate: int | None = None,
    verify: bool | str | Segmenter = False,
    progress: Progress | None = None,
    margin: float = REDACT_MARGIN,
    box_below: int = REDACT_BOX_BELOW,
    face_net: bool = True,
    person_net: bool = True,
    target: str = "body",
    **style_options: Any,
) -> Result:
    """Hide people with a mask-shaped blur, pixelation or solid fill (for privacy).

    Same arguments as ``erase``, plus:

    Args:
        style: ``"blur"`` (default), ``"pixelate"`` or ``"solid"``.
        dilate: grow every mask by this many px (default for redaction: 2 % of the photo's diagonal,
            ``masks.default_redact_dilate``).
        margin: grow each person's mask by this share of their height when that is more than
            ``dilate`` (default 0.05). Masks miss hands, hair and bags, and the miss grows with the person.
        box_below: people shorter than this (px, default 96) are covered by their whole box: no
            model draws a 40 px person's outline, and a tiny passerby still needs hiding.
        face_net: also hide every face the face detector (CenterFace, bundled) finds outside the
            region, as a grown ellipse in the same style; a face no segmented person accounts for
            also gets a body grown below it (``face_regions.body_from_face``). Faces of kept people are
            never touched. Each face added is listed in ``report.faces_added``. Default True.
        person_net: look again for people the segmentation missed (the bundled detector at up to 1280 px,
            from score 0.07; ``person_net``) and hide them like segmented people. Applies to
            ``target="body"`` under ``policy`` all / passersby / passersby+group and ``keep`` (not to
            ``select`` or ``largest:N``, which name who goes); kept people are never touched. Each person
            added is listed in ``report.people_added``. Default True.
        target: ``"body"`` (default) hides whole people; ``"faces"`` hides only faces (the face
            detector's, and the head of every chosen person), leaving bodies visible.
        **style_options: ``strength`` (blur sigma or pixel block as a share of the region's height;
            defaults 0.08 and 0.10) and ``color`` (solid fill RGB).

    These defaults cover far more of each person than the erase mask's dilation would, at about twice
    the area beyond the people (``benchmarks/README.md``, masks; measured by ``bench_privacy.py``).
    """
    if style not in REDACT_STYLES:
        raise SelectionError(f"unknown redaction style {style!r}; choose one of: {', '.join(REDACT_STYLES)}",
                             param="style")
    plan = Plan.build("redact", eraser=style, segmenter=segmenter, select=select, keep=keep, policy=policy,
                      dilate=dilate, margin=margin, box_below=box_below, face_net=face_net, person_net=person_net,
                      target=target,
                      verify=verify, eraser_options=style_options)
    return _run(plan, image, people, progress)
