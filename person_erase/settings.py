"""Settings: one pydantic ``Settings`` class, read only at the edges (CLI, engine factories).

Priority: explicit arguments / CLI flags > environment > defaults. Environment names are the ones the
``dashscope`` SDK already uses (``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL``) plus
``PERSON_ERASE_*`` for ours. The key is a ``SecretStr``: it never shows in a repr, log or report.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DASHSCOPE_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
#: Largest photo accepted by default, in pixels (decompression-bomb guard); ``PERSON_ERASE_MAX_PIXELS``.
DEFAULT_MAX_PIXELS = 100_000_000


class Settings(BaseSettings):
    """person_erase configuration from the environment."""

    model_config = SettingsConfigDict(env_prefix="PERSON_ERASE_", extra="ignore", populate_by_name=True)

    dashscope_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DASHSCOPE_API_KEY", "dashscope_api_key")
    )
    dashscope_base_url: str = Field(
        default=DEFAULT_DASHSCOPE_BASE_URL,
        validation_alias=AliasChoices("DASHSCOPE_HTTP_BASE_URL", "dashscope_base_url"),
    )
    #: Seconds one cloud call may take in total, submit to downloaded result (finite, > 0).
    cloud_timeout_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    #: Extra host names DashScope results may come from (comma-separated; ``*.`` matches sub-domains).
    cloud_result_hosts: str = ""
    #: ``host=ip`` pairs (comma-separated) that pin a result host's address, like curl's ``--resolve``.
    cloud_resolve: str = ""
    #: Largest photo accepted, in pixels (decompression-bomb guard).
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: The model store folder (``PERSON_ERASE_MODELS``; default: the platform's user data dir).
    models: str | None = None

    def __repr__(self) -> str:  # SecretStr already hides the key; keep the repr short
        return f"Settings(dashscope_base_url={self.dashscope_base_url!r}, api_key={'set' if self.dashscope_api_key else 'unset'})"


def get_settings() -> Settings:
    """Fresh settings from the current environment.

    Raises:
        InputError: a ``PERSON_ERASE_*`` variable holds a value of the wrong kind (named in the message).
    """
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        from .errors import InputError

        bad = "; ".join(f"PERSON_ERASE_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors() if e.get("loc"))
        raise InputError(f"bad setting in the environment ({bad or exc})") from None
