"""DashScope protocol constants shared by the client (``cloud/``) and the fake server (``fakecloud/``).

Everything here comes from the team's DashScope reference notes, ``reference/dashscope.md`` (§1–§3, corrections in §9);
``tests/test_cloud_protocol.py`` checks these values against that file, so the client and the fake can
never drift apart from each other or from the reference.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone

SEGMENT_MODEL = "image-instance-segmentation"
ERASE_MODEL = "image-erase-completion"
MODELS = (SEGMENT_MODEL, ERASE_MODEL)

#: Submit path (both models), relative to the API base ``…/api/v1``; SDK names for it.
SUBMIT_PATH = "/services/aigc/image2image/image-synthesis"
TASK_GROUP, TASK, FUNCTION = "aigc", "image2image", "image-synthesis"
TASKS_PATH = "/tasks"  # GET /tasks/{id}, GET /tasks?… (batch query), POST /tasks/{id}/cancel
UPLOADS_PATH = "/uploads"
ASYNC_HEADER = "X-DashScope-Async"
OSS_RESOLVE_HEADER = "X-DashScope-OssResourceResolve"

#: Input limits of both models: each side 512..4096 px, at most 10 MB (read strictly: 10,000,000 bytes).
MIN_SIDE = 512
MAX_SIDE = 4096
MAX_FILE_BYTES = 10_000_000
ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "WEBP")

#: Documented per-model limits (root account incl. RAM users), free quota, result lifetime.
SUBMITS_PER_SECOND = 2.0
MAX_IN_FLIGHT = 1
FREE_QUOTA_IMAGES = 500
RESULT_TTL_S = 24 * 3600
TASK_QUERY_QPS = 20

#: Task states. ``CANCELED`` is the SDK's spelling; only PENDING tasks can be cancelled.
PENDING, RUNNING, SUSPENDED, SUCCEEDED, FAILED, CANCELED, UNKNOWN = (
    "PENDING", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")
ACTIVE_STATES = (PENDING, RUNNING, SUSPENDED)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELED, UNKNOWN)
ALL_STATES = ACTIVE_STATES + FINAL_STATES

#: Documented error codes (platform table §1.7/§9 and the segmentation table §2.4).
THROTTLING = "Throttling"
RATE_QUOTA = "Throttling.RateQuota"
ALLOCATION_QUOTA = "Throttling.AllocationQuota"
FREE_TIER_ONLY = "AllocationQuota.FreeTierOnly"
TOO_LARGE = "BadRequest.TooLarge"
MODEL_UNAVAILABLE = "ModelUnavailable"
INTERNAL_TIMEOUT = "InternalError.Timeout"
INVALID_API_KEY = "InvalidApiKey"
INVALID_PARAMETER = "InvalidParameter"
JSON_PHRASE = "InvalidParameter.JsonPhrase"
FILE_DOWNLOAD = "InvalidParameter.FileDownload"
IMAGE_FORMAT = "InvalidParameter.ImageFormat"
ALGO_ERROR = "InternalError.Algo"

#: Messages of the documented 429 rows. "Free allocated quota exceeded." is the free quota running out;
#: "Allocated quota exceeded…" is a (paid) allocation limit, i.e. throttling.
FREE_QUOTA_MESSAGE = "Free allocated quota exceeded."
ALLOCATION_MESSAGE = "Allocated quota exceeded, please increase your quota limit."
RATE_MESSAGE = "Requests rate limit exceeded, please try again later."
FREE_TIER_ONLY_MESSAGE = "The free tier of the model has been exhausted."

#: Codes that mean "slow down and try again" (when their message does not say the quota is gone).
THROTTLE_CODES = (THROTTLING, RATE_QUOTA, ALLOCATION_QUOTA)


def is_quota_exhausted(code: object, message: object) -> bool:
    """True when an answer says the model's free quota is used up (by code *and* message).

    ``AllocationQuota.FreeTierOnly`` always means it; ``Throttling.AllocationQuota`` only with the
    documented message "Free allocated quota exceeded." — the same code with "Allocated quota exceeded…"
    is an allocation (rate) limit and is retried like throttling.
    """
    c = str(code or "")
    m = str(message or "").strip().lower()
    if c == FREE_TIER_ONLY:
        return True
    return c == ALLOCATION_QUOTA and m.startswith("free allocated quota exceeded")


def is_throttled(status: int | None, code: object, message: object) -> bool:
    """True for a rate-limit answer that may be retried later (never for quota exhaustion)."""
    if is_quota_exhausted(code, message):
        return False
    return str(code or "") in THROTTLE_CODES or (status == 429 and not code)


#: Task ids the client accepts (the service's are UUIDs): short, letters, digits and dashes only.
TASK_ID_RE = re.compile(r"[A-Za-z0-9-]{1,64}")


def valid_task_id(value: object) -> bool:
    return isinstance(value, str) and TASK_ID_RE.fullmatch(value) is not None


#: Hosts DashScope serves result files from (Beijing OSS result buckets). Names with a leading ``*.``
#: match any sub-domain. Configurable with ``PERSON_ERASE_CLOUD_RESULT_HOSTS``.
RESULT_HOSTS = (
    "dashscope-result-bj.oss-cn-beijing.aliyuncs.com",
    "*.oss-cn-beijing.aliyuncs.com",
    "*.oss-accelerate.aliyuncs.com",
)

#: Batch task query (``GET {base}/tasks?page_no=&page_size=[&start_time=][&end_time=][&model_name=][&status=]``).
#: Request: the Python SDK's ``dashscope/client/base_api.py`` (``BaseAsyncApi.list`` / ``.cancel``, which
#: documents the time window as e.g. ``20230420000000``; read here as UTC+8 like the service's other times).
LIST_TIME_FORMAT = "%Y%m%d%H%M%S"
#: The service's time zone (task times such as ``submit_time`` are UTC+8, Beijing).
CST = timezone(timedelta(hours=8))
LIST_PAGE_SIZE = 10
#: Answer: the Python SDK hands back the JSON body minus ``request_id`` and names no field. The names are
#: those of the dashscope Java SDK's ``com/alibaba/dashscope/task/AsyncTaskListResult.java`` (the page) and
#: ``com/alibaba/dashscope/common/AsyncTaskInfo.java`` (one task), whose mock answer in
#: ``TestBatchTextEmbedding.testListParameters`` gives the times as epoch milliseconds
#: (``"gmt_create":1691561394828``). The same test sends ``start_time`` as epoch milliseconds, so the
#: window's format is not settled: the client retries without ``start_time`` when it is refused, and
#: judges "created since the intent" by ``gmt_create`` itself.
LIST_PAGE_FIELDS = ("data", "total", "total_page", "page_no", "page_size")
LIST_TASK_FIELDS = ("task_id", "status", "model_name", "gmt_create", "start_time", "end_time", "region",
                    "request_id", "api_key_id", "caller_uid", "caller_parent_id", "user_api_unique_key")
