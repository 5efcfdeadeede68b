import numpy as np
import pytest

from person_erase import Instances, select_people
from person_erase.errors import SelectionError


def _people(n=4):
    labels = np.zeros((50, 100), np.uint8)
    for k in range(n):
        labels[10 : 10 + 5 * (k + 1), 5 + 22 * k : 20 + 22 * k] = k + 1  # person k is bigger with k
    return Instances.from_label_map(labels)


def test_default_is_everyone_with_reasons():
    s = select_people(_people())
    assert s.erase == (0, 1, 2, 3) and s.keep == () and s.policy == "all"
    assert all(r.startswith("erased") for r in s.reasons.values())


def test_select_and_keep_lists():
    s = select_people(_people(), select=[0, 2])
    assert s.erase == (0, 2) and s.keep == (1, 3)
    s = select_people(_people(), keep="1")
    assert s.erase == (0, 2, 3) and s.keep == (1,)
    assert s.reasons[1] == "kept: asked to keep"


def test_largest_n():
    s = select_people(_people(), policy="largest:2")
    assert s.erase == (2, 3)
    assert "#1 by size" in s.reasons[3]


@pytest.mark.parametrize(
    "kwargs, message, param",
    [
        (dict(select=[4]), "no person 4 in this photo; valid person numbers are 0..3", "select"),
        (dict(select="0,0"), "person 0 is named more than once", "select"),
        (dict(select="a"), "whole numbers like 0,2", "select"),
        (dict(keep="a"), "whole numbers like 0,2", "keep"),
        (dict(keep=[7]), "no person 7 in this photo", "keep"),
        (dict(select="-1"), "start at 0", "select"),
        # library messages name the Python parameters (the CLI turns them into --select, ...)
        (dict(select=[0], keep=[1]), "use only one of `select`, `keep` and `policy`", ("select", "keep")),
        (dict(policy="everyone"), "unknown policy 'everyone'; choose one of: all, largest:N", "policy"),
        (dict(policy="largest:x"), "largest:N needs a whole number", "policy"),
    ],
)
def test_bad_choices_name_the_valid_ones(kwargs, message, param):
    with pytest.raises(SelectionError, match=message) as info:
        select_people(_people(), **kwargs)
    assert info.value.param == param and "--" not in str(info.value)


def test_no_people_is_not_an_error():
    s = select_people(Instances.empty(10, 10))
    assert s.erase == () and "no people" in s.notes[0]
