"""Settings: every environment variable validated, unknown PERSON_ERASE_* refused, one clean line per command."""

from __future__ import annotations

import pytest

from person_erase.errors import InputError
from person_erase.settings import Settings, get_settings, known_variables


@pytest.mark.parametrize(("value", "expected"), [("1e9", 1_000_000_000), ("100_000_000", 100_000_000),
                                                 ("5000", 5000), (" 2e3 ", 2000)])
def test_max_pixels_accepts_whole_numbers_in_any_spelling(value, expected):
    assert get_settings({"PERSON_ERASE_MAX_PIXELS": value}).max_pixels == expected


@pytest.mark.parametrize(("env", "fragment"), [
    ({"PERSON_ERASE_MAX_PIXELS": "-1"},
     "PERSON_ERASE_MAX_PIXELS must be a whole number of pixels >= 1 (e.g. 100000000 or 1e8), got '-1'"),
    ({"PERSON_ERASE_MAX_PIXELS": "0"}, "PERSON_ERASE_MAX_PIXELS must be a whole number of pixels >= 1"),
    ({"PERSON_ERASE_MAX_PIXELS": "1.5"}, "got '1.5'"),
    ({"PERSON_ERASE_MAX_PIXELS": "inf"}, "got 'inf'"),
    ({"PERSON_ERASE_MAX_PIXELS": "lots"}, "got 'lots'"),
    ({"PERSON_ERASE_CLOUD_TIMEOUT_S": "nan"}, "PERSON_ERASE_CLOUD_TIMEOUT_S must be a finite number, got 'nan'"),
    ({"PERSON_ERASE_CLOUD_TIMEOUT_S": "-5"}, "PERSON_ERASE_CLOUD_TIMEOUT_S must be greater than 0, got '-5'"),
    ({"PERSON_ERASE_DEBUG": "maybe"}, "PERSON_ERASE_DEBUG must be a valid boolean"),
    ({"PERSON_ERASE_DILATE_PX": "5"}, "PERSON_ERASE_DILATE_PX is not a setting (known: PERSON_ERASE_CLOUD_POLL_S,"),
    ({"PERSON_ERASE_MAX_PIXEL": "5"}, "PERSON_ERASE_MAX_PIXEL is not a setting"),
])
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(InputError) as info:
        get_settings(env)
    assert str(info.value).startswith("bad setting in the environment: ")
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert info.value.param == next(iter(env))


def test_the_key_is_never_shown():
    s = get_settings({"DASHSCOPE_API_KEY": "sk-secret-123"})
    assert s.dashscope_api_key is not None and s.dashscope_api_key.get_secret_value() == "sk-secret-123"
    assert "sk-secret" not in repr(s) and "sk-secret" not in str(s.model_dump())


def test_every_field_has_one_documented_variable():
    import person_erase.settings as S

    names = known_variables()
    assert len(names) == len(Settings.model_fields)
    for name in names:
        assert f"``{name}``" in (S.__doc__ or ""), name


def test_the_development_tools_variables_are_not_refused():
    """The test suite's data folder and the notebook builder's flag are read by dev tools, not refused."""
    s = get_settings({"PERSON_ERASE_SHARED": "/tmp", "PERSON_ERASE_NOTEBOOK_BUILD": "1"})
    assert s.max_pixels >= 1
