"""Settings: one pydantic ``Settings`` class, read only at the edges (CLI, engine factories).

Priority: explicit arguments / CLI flags > environment > defaults. Environment names are the ones the
``dashscope`` SDK already uses (``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL``) plus
``PERSON_ERASE_*`` for ours. The key is a ``SecretStr``: it never shows in a repr, log or report.

Every value is validated (``get_settings`` turns a bad one into one ``InputError`` naming the
variable), and a ``PERSON_ERASE_*`` variable that is not a setting is refused rather than silently
ignored (a typo such as ``PERSON_ERASE_MAX_PIXEL`` would otherwise look like it worked).

=============================== ============================================================
variable                        meaning
=============================== ============================================================
``DASHSCOPE_API_KEY``           the DashScope key (secret)
``DASHSCOPE_HTTP_BASE_URL``     the service's base URL (the SDK's own setting)
``PERSON_ERASE_CLOUD_TIMEOUT_S`` seconds one cloud call may take in total (finite, > 0)
``PERSON_ERASE_CLOUD_POLL_S``   first pause between a cloud task's status queries (default 1 s)
``PERSON_ERASE_CLOUD_RESULT_HOSTS`` extra host names results may come from
``PERSON_ERASE_CLOUD_RESOLVE``  ``host=ip`` pairs pinning a result host's address
``PERSON_ERASE_MAX_PIXELS``     largest photo accepted, pixels (whole number >= 1; ``1e8`` works)
``PERSON_ERASE_MODELS``         the model store folder
``PERSON_ERASE_DEBUG``          ``1``: the CLI shows tracebacks
=============================== ============================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DASHSCOPE_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
#: Largest photo accepted by default, in pixels (decompression-bomb guard); ``PERSON_ERASE_MAX_PIXELS``.
DEFAULT_MAX_PIXELS = 100_000_000
ENV_PREFIX = "PERSON_ERASE_"
#: ``PERSON_ERASE_*`` names read by the development tools, not the package: the test suite's data folder,
#: and the flag ``notebooks/_build.py`` sets in the kernel while it executes the notebooks.
DEV_VARIABLES = frozenset({"PERSON_ERASE_SHARED", "PERSON_ERASE_NOTEBOOK_BUILD"})


class Settings(BaseSettings):
    """person_erase configuration from the environment (see the module docstring for the variables)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    dashscope_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DASHSCOPE_API_KEY", "dashscope_api_key")
    )
    dashscope_base_url: str = Field(
        default=DEFAULT_DASHSCOPE_BASE_URL,
        validation_alias=AliasChoices("DASHSCOPE_HTTP_BASE_URL", "dashscope_base_url"),
    )
    #: Seconds one cloud call may take in total, submit to downloaded result (finite, > 0).
    cloud_timeout_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    #: First pause between a cloud task's status queries, seconds (grows x1.5 up to 5 s; the SDK's own
    #: ``wait`` starts at 1 s too). Shorter answers sooner for short tasks and queries more often.
    cloud_poll_s: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    #: Extra host names DashScope results may come from (comma-separated; ``*.`` matches sub-domains).
    cloud_result_hosts: str = ""
    #: ``host=ip`` pairs (comma-separated) that pin a result host's address, like curl's ``--resolve``.
    cloud_resolve: str = ""
    #: Largest photo accepted, in pixels (decompression-bomb guard): a whole number >= 1.
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: The model store folder (``PERSON_ERASE_MODELS``; default: the platform's user data dir).
    models: str | None = None
    #: The CLI shows tracebacks instead of one-line errors (``PERSON_ERASE_DEBUG=1``).
    debug: bool = False

    @field_validator("max_pixels", mode="before")
    @classmethod
    def _whole_pixels(cls, value: Any) -> int:
        """A whole number >= 1, also written as ``1e8`` or ``100_000_000``."""
        number: float
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number of pixels >= 1, got {value!r}")
        if isinstance(value, int):
            number = value
        else:
            try:
                number = float(str(value).strip().replace("_", ""))
            except ValueError:
                raise ValueError(
                    f"must be a whole number of pixels >= 1 (e.g. 100000000 or 1e8), got {value!r}"
                ) from None
        if not math.isfinite(number) or number != int(number) or number < 1:
            raise ValueError(f"must be a whole number of pixels >= 1 (e.g. 100000000 or 1e8), got {value!r}")
        return int(number)

    def __repr__(self) -> str:  # SecretStr already hides the key; keep the repr short
        return (
            f"Settings(dashscope_base_url={self.dashscope_base_url!r}, "
            f"api_key={'set' if self.dashscope_api_key else 'unset'})"
        )


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return ENV_PREFIX + field.upper()


def known_variables() -> list[str]:
    """Every environment variable ``Settings`` reads, sorted."""
    return sorted(_env_name(f) for f in Settings.model_fields)


def get_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Validated settings from the environment (``os.environ`` unless ``environ`` is given).

    Raises:
        InputError: a variable holds a bad value, or a ``PERSON_ERASE_*`` variable is not a setting;
            one line naming the variable (never its value when it is the key).
    """
    from pydantic import ValidationError

    from .errors import InputError

    env = os.environ if environ is None else environ
    known = set(known_variables()) | DEV_VARIABLES
    unknown = sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
    if unknown:
        ours = ", ".join(k for k in known_variables() if k.startswith(ENV_PREFIX))
        raise InputError(f"bad setting in the environment: {unknown[0]} is not a setting (known: {ours}); "
                         "unset it or fix its name", param=unknown[0])
    try:
        if environ is None:
            return Settings()
        values = {f: env[_env_name(f)] for f in Settings.model_fields if _env_name(f) in env}
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        names = []
        for e in exc.errors():
            field = str(e["loc"][0]) if e.get("loc") else ""
            name = _env_name(field) if field in Settings.model_fields else (field.upper() or "a setting")
            names.append(name)
            msg = str(e["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
            shown = "" if field == "dashscope_api_key" or "got" in msg else f", got {e.get('input')!r}"
            problems.append(f"{name} {msg[0].lower() + msg[1:] if msg else 'is invalid'}{shown}")
        raise InputError(f"bad setting in the environment: {'; '.join(problems)}",
                         param=names[0] if len(names) == 1 else tuple(names)) from None
