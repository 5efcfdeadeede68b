"""Reports: pydantic models for one image (JSON sidecar) and for a batch summary.

Nothing here holds pixels or secrets: a report is safe to write next to the output and share.

An ``ImageReport`` is built once, by the pipeline, and is frozen: what is known only after it is
built (where the output was written, under which metadata policy, what the batch measured around
the pipeline) goes into a new report made by ``finish_report``, which ``Result.save`` and the batch
both use; the report they started from is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .instances import Instances
    from .selection import Selection


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputInfo(_Model):
    """The input photo."""

    name: str
    sha256: str
    width: int
    height: int
    orientation: int = Field(1, description="EXIF orientation the file had (1 = upright); already applied")
    format: str | None = None


class InstanceRow(_Model):
    """One person and what happened to them."""

    index: int
    score: float
    box: list[int] = Field(description="x0, y0, x1, y1 (exclusive), pixels")
    area_px: int
    area_pct: float
    selected: bool = Field(description="erased or redacted")
    kept: bool
    reason: str
    cues: dict[str, float] = Field(default_factory=dict, description="policy cue scores, e.g. main-subject cues")


def instance_rows(people: Instances, selection: Selection | None = None) -> list[InstanceRow]:
    """One row per person (in ``people`` order): score, box, area and, with ``selection``, what
    happened to them and why. Used by the pipeline's report and by ``person-erase segment``."""
    h, w = people.shape
    areas = people.areas
    rows = []
    for k, i in enumerate(people.index.tolist()):
        sel = selection
        rows.append(InstanceRow(
            index=i,
            score=round(float(people.scores[k]), 4),
            box=[int(v) for v in people.boxes[k]],
            area_px=int(areas[k]),
            area_pct=round(100.0 * float(areas[k]) / max(1, h * w), 3),
            selected=sel is not None and i in sel.erase,
            kept=sel is not None and i in sel.keep,
            reason="" if sel is None else sel.reasons.get(i, ""),
            cues={} if sel is None else {kk: round(float(v), 4) for kk, v in sel.scores.get(i, {}).items()},
        ))
    return rows


class Residue(_Model):
    """Something found again in the output where someone was erased or redacted.

    ``kind``: ``person`` — a person re-detected where someone was erased or redacted; ``face`` — a
    face still detectable inside a redacted region (the redaction is too weak to hide who it is).
    """

    kind: Literal["person", "face"] = "person"
    box: list[int]
    score: float
    overlap_px: int
    overlap_share: float = Field(description="share of the re-detected person (or face) inside the region")


class FaceAdded(_Model):
    """A face the redaction hid beyond the segmented bodies (the face net), or in face-only mode."""

    box: list[int] = Field(description="x0, y0, x1, y1 of the face (the painted ellipse is grown from it)")
    score: float = Field(description="face detector score, or the person's score for a head from segmentation")
    source: Literal["centerface", "head"] = Field("centerface", description="centerface: the face detector; "
                                                  "head: the top of a segmented person (target=faces)")
    body_box: list[int] | None = Field(None, description="a body grown below a face no segmented person "
                                       "accounts for (x0, y0, x1, y1), or None")


class PersonAdded(_Model):
    """A person the redaction's person net hid beyond the segmented people (``person_net``)."""

    box: list[int] = Field(description="x0, y0, x1, y1 of the detector's box (the region is grown from it)")
    score: float = Field(description="detector score (the net accepts from person_net.NET_SCORE)")
    new_px: int = Field(description="pixels this person added to the redacted region")
    person: int | None = Field(None, description="the segmented person whose box this is (the net completed "
                               "their mask), or None for someone the segmentation did not report")


class Verification(_Model):
    """Result of re-running the segmenter on the output (``verify=True``)."""

    segmenter: str
    people_found: int
    residues: list[Residue] = Field(description="what makes the verification fail (ok is False when there is any)")
    silhouettes: list[Residue] = Field(
        default_factory=list,
        description="redact only: people re-detected on a redacted region; a blurred or filled body keeps its "
        "outline, so these are expected and informational (faces are what counts)",
    )
    ok: bool


class ModelInfo(_Model):
    """A user-supplied model file an engine ran (``lama:``, ``migan:``, ``yolo-seg:`` or a model-store name)."""

    family: str
    name: str = Field(description="file name")
    size: int = Field(description="bytes")
    sha256: str


class ImageReport(_Model):
    """Everything about one processed photo (the per-image JSON sidecar). Frozen: see ``finish_report``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    mode: Literal["erase", "redact"]
    input: InputInfo
    output: str | None = None
    instances: list[InstanceRow]
    policy: str
    notes: list[str] = Field(default_factory=list)
    erase_area_px: int
    keep_area_px: int
    overlap_resolved_px: int
    segmenter: str
    eraser: str
    models: dict[str, ModelInfo] = Field(default_factory=dict, description="model files by role: segmenter, eraser")
    parameters: dict[str, Any] = Field(default_factory=dict)
    cloud_task_ids: dict[str, list[str]] = Field(default_factory=dict)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    outside_mask_changed_px: int = Field(
        description="pixels of the output that differ from the input outside the erase mask; always 0"
    )
    engine_outside_changed_px: int = Field(
        0, description="pixels the engine itself changed outside the mask (undone by compose)"
    )
    metadata_policy: str | None = None
    verification: Verification | None = None
    target: Literal["body", "faces"] | None = Field(None, description="redact only: what was hidden")
    faces_added: list[FaceAdded] = Field(default_factory=list, description="redact only: faces hidden beyond "
                                         "the segmented bodies (face net) or, for target=faces, every face hidden")
    people_added: list[PersonAdded] = Field(default_factory=list, description="redact only: people the person "
                                            "net found that the segmentation missed, hidden too")

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def finish_report(report: ImageReport, *, output: str, metadata_policy: str,
                  timings_ms: Mapping[str, float] | None = None,
                  parameters: Mapping[str, Any] | None = None) -> ImageReport:
    """The report of a written output: a new report (``report`` is not changed) with ``output`` and
    ``metadata_policy`` set.

    Args:
        timings_ms: replaces the timings (the batch adds its ``segment`` and ``save`` stages).
        parameters: added to the parameters (the batch's ``segment_cache``).
    """
    update: dict[str, Any] = {"output": output, "metadata_policy": metadata_policy}
    if timings_ms is not None:
        update["timings_ms"] = dict(timings_ms)
    if parameters:
        update["parameters"] = {**report.parameters, **parameters}
    return report.model_copy(update=update)


class BatchItem(_Model):
    """One row of a batch summary (paths relative to the input root / OUT_DIR)."""

    input: str
    output: str | None = None
    report: str | None = Field(default=None, description="the report JSON sidecar of the output")
    status: Literal["done", "failed", "skipped", "not_started"]
    stage: str | None = Field(default=None, description="where a failure happened: load, segment, erase, save")
    reason: str | None = None
    people: int | None = None
    erased: int | None = None
    ms: float | None = None
    cache_hit: bool | None = Field(default=None, description="the segmentation came from the cache")


class BatchSummary(_Model):
    """What a batch run did (``OUT_DIR/summary.json``)."""

    version: Literal[1] = 1
    input_dir: str
    output_dir: str
    total: int
    done: int = Field(description="processed by this run")
    failed: int = Field(description="failed in this run, or in an earlier one and not retried")
    skipped: int = Field(description="already done by an earlier run")
    non_images: int = 0
    cache_hits: int = 0
    pending: int = Field(default=0, description="not reached (the run was interrupted)")
    interrupted: bool = False
    stopped: str | None = Field(default=None, description="why the run stopped early, e.g. 'quota exhausted (model)'")
    seconds: float = 0.0
    images_per_s: float | None = None
    engine: str | None = Field(default=None, description="how the run was executed (process pool or cloud pipeline)")
    parameters: dict[str, Any] = Field(default_factory=dict)
    items: list[BatchItem] = Field(default_factory=list)
