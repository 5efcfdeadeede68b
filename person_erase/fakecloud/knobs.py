"""``Knobs``: behaviour and fault knobs of the fake DashScope service (validated, settable at run time)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..cloud import protocol as P


class Knobs(BaseModel):
    """Behaviour and fault knobs of the fake service (all settable at start and at run time).

    ``person-erase serve-dashscope`` generates one option per field from this model (``--latency-seg`` …),
    with the field's description as its help.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_seg: float = Field(default=0.3, ge=0, allow_inf_nan=False,
                               description="seconds a segmentation task takes from submit to its final state")
    latency_erase: float = Field(default=0.6, ge=0, allow_inf_nan=False, description="seconds an erase task takes")
    failure_rate: float = Field(
        default=0.0, ge=0, le=1, description="probability a task ends FAILED (InternalError.Algo)"
    )
    fail_next_tasks: int = Field(default=0, ge=0, description="the next N tasks end FAILED (InternalError.Algo)")
    throttle_next_submits: int = Field(
        default=0, ge=0, description="answer the next N submits 429 Throttling.RateQuota (no task created)"
    )
    drop_after_submit: int = Field(default=0, ge=0, description="the next N submits create their task, then the "
                                   "connection is closed without an answer")
    error_next_submits: int = Field(
        default=0, ge=0, description="answer the next N submits with error_status (no task)"
    )
    error_next_queries: int = Field(default=0, ge=0, description="answer the next N task queries with error_status")
    error_status: int = Field(
        default=500,
        ge=500,
        le=599,
        description="status of injected errors (503 answers ModelUnavailable, else InternalError)",
    )
    drop_next_downloads: int = Field(default=0, ge=0, description="send half of the next N result downloads, then drop")
    result_ttl_s: float = Field(default=float(P.RESULT_TTL_S), ge=0, allow_inf_nan=False,
                                description="seconds result URLs stay valid after a task ends (DashScope: 24 h)")
    submits_per_second: float = Field(
        default=P.SUBMITS_PER_SECOND,
        gt=0,
        allow_inf_nan=False,
        description="per-model submits per second; more are answered 429 Throttling.RateQuota",
    )
    max_in_flight: int = Field(default=P.MAX_IN_FLIGHT, ge=1, le=16, description="per-model tasks running at once (set "
                               "at start); later tasks wait PENDING — nothing documents a rejection")
    free_quota: int = Field(default=P.FREE_QUOTA_IMAGES, ge=0, description="free quota per model in successful images "
                            "(DashScope: 500); then submits get the quota-exhausted answer")
    quota_answer: str = Field(
        default="allocation",
        pattern="^(allocation|free_tier_only)$",
        description="quota-exhausted answer: 429 Throttling.AllocationQuota 'Free allocated quota "
        "exceeded.' (allocation) or 403 AllocationQuota.FreeTierOnly",
    )
    result_host: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]{1,253}$",
                                    description="host name in result URLs (default: the bound address; never the "
                                    "request's Host header); clients pin it with PERSON_ERASE_CLOUD_RESOLVE")
    api_key: str | None = Field(default=None, repr=False, description="accept only this key, on every route "
                                "including /_fake/* (default: any non-empty key, /_fake/* open)")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="largest JSON body, bytes"
    )
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                  description="largest temporary upload, bytes")
    result_format: str = Field(
        default="png",
        pattern="^(png|jpeg)$",
        description="erase result format: png (lossless) or jpeg (changes pixels outside the mask)",
    )
    seed: int | None = Field(default=None, description="seed of the failure-rate dice (default: random)")

    def public(self) -> dict[str, Any]:
        data = self.model_dump()
        data["api_key"] = "set" if self.api_key else None
        return data

