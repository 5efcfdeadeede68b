"""Engine specs and registries: capabilities readable before building, one test per capability."""

from __future__ import annotations

import ast
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import person_erase as pe
from person_erase.engines import EngineSpec, Registry, engine_name
from person_erase.erasers import ERASERS, REDACT_STYLES
from person_erase.errors import CloudError, EngineError, InputError, SelectionError
from person_erase.segmenters import SEGMENTERS

PACKAGE = Path(pe.__file__).parent

# built-in engine -> the class the spec builds (the class attributes must agree with the spec)
_CLASSES = {
    ("segmenter", "local"): "person_erase.segmenters.local:LocalSegmenter",
    ("segmenter", "dashscope"): "person_erase.segmenters.dashscope:DashScopeSegmenter",
    ("segmenter", "labels"): "person_erase.segmenters.labels:LabelSegmenter",
    ("eraser", "patchmatch"): "person_erase.erasers.patchmatch:PatchMatchEraser",
    ("eraser", "telea"): "person_erase.erasers.telea:TeleaEraser",
    ("eraser", "dashscope"): "person_erase.erasers.dashscope:DashScopeEraser",
    ("eraser", "blur"): "person_erase.erasers.redact:RedactEraser",
    ("eraser", "pixelate"): "person_erase.erasers.redact:RedactEraser",
    ("eraser", "solid"): "person_erase.erasers.redact:RedactEraser",
}


def _builtin(what: str, name: str) -> EngineSpec:
    return (SEGMENTERS if what == "segmenter" else ERASERS).spec(name)


def test_capabilities_are_readable_without_importing_the_engine():
    code = (
        "import sys; from person_erase.erasers import ERASERS; from person_erase.segmenters import SEGMENTERS; "
        "assert ERASERS.spec('dashscope').needs_network and SEGMENTERS.spec('dashscope').needs_network; "
        "assert not ERASERS.spec('patchmatch').needs_network and ERASERS.spec('patchmatch').crops; "
        "heavy = [m for m in ('person_erase.erasers.dashscope', 'person_erase.segmenters.local', "
        "'person_erase.segmenters.dashscope', 'person_erase.cloud', 'onnxruntime', 'mediapipe') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("what, name", list(_CLASSES))
def test_spec_target_is_the_class_and_agrees_with_its_attributes(what, name):
    spec = _builtin(what, name)
    assert spec.target == _CLASSES[(what, name)]
    cls = spec.load()
    assert cls.needs_network is spec.needs_network
    assert spec.two_phase is (callable(getattr(cls, "submit", None)) and callable(getattr(cls, "collect", None)))
    if what == "eraser":
        assert cls.crops is spec.crops and cls.honours_keep_mask is spec.honours_keep_mask
        assert {"inpaint": "erase", "redact": "redact"}[cls.kind] == spec.kind


@pytest.mark.parametrize("what, name, expected", [
    ("segmenter", "local", False), ("segmenter", "labels", False), ("segmenter", "dashscope", True),
    ("eraser", "patchmatch", False), ("eraser", "telea", False), ("eraser", "blur", False),
    ("eraser", "dashscope", True),
])
def test_capability_needs_network(what, name, expected):
    assert _builtin(what, name).needs_network is expected


@pytest.mark.parametrize("name, kind", [("patchmatch", "erase"), ("telea", "erase"), ("dashscope", "erase"),
                                        ("blur", "redact"), ("pixelate", "redact"), ("solid", "redact")])
def test_capability_kind(name, kind):
    assert ERASERS.spec(name).kind == kind
    assert all(s.kind == "segment" for s in SEGMENTERS.values())
    assert REDACT_STYLES == ("blur", "pixelate", "solid")


@pytest.mark.parametrize("name, expected", [("patchmatch", True), ("telea", True), ("blur", True),
                                            ("dashscope", False)])
def test_capability_crops(name, expected):
    assert ERASERS.spec(name).crops is expected


@pytest.mark.parametrize("name, expected", [("patchmatch", True), ("dashscope", True), ("solid", True),
                                            ("telea", False)])
def test_capability_honours_keep_mask(name, expected):
    assert ERASERS.spec(name).honours_keep_mask is expected


def test_capability_path_argument(tmp_path):
    labels = SEGMENTERS.spec("labels")
    assert labels.arg == "PATH" and labels.label == "labels:PATH" and "labels:PATH" in SEGMENTERS.labels()
    spec, arg = SEGMENTERS.parse(f"labels:{tmp_path}")
    assert spec is labels and arg == str(tmp_path)
    with pytest.raises(EngineError, match=r"needs a path: use labels:PATH"):
        pe.get_segmenter("labels")
    with pytest.raises(EngineError, match="takes no ':' argument"):
        pe.get_segmenter("local:x.onnx")
    with pytest.raises(EngineError, match="takes no ':' argument"):
        pe.get_eraser("telea:x")


def test_capability_options_declared_and_read_from_the_signature():
    assert SEGMENTERS.spec("local").takes("quality") and SEGMENTERS.spec("local").takes("score_threshold")
    assert not SEGMENTERS.spec("dashscope").takes("quality")  # only **client_options: not a named option
    assert ERASERS.spec("dashscope").takes("fast_mode") and not ERASERS.spec("patchmatch").takes("fast_mode")
    assert ERASERS.spec("blur").takes("strength") and not ERASERS.spec("solid").takes("strength")
    with pytest.raises(
        InputError, match=r"the patchmatch eraser has no option `dilat`; its options: .*`patch_size`"
    ) as e:
        pe.get_eraser("patchmatch", dilat=3)  # a typo is a clear error, not a TypeError from inside
    assert e.value.param == ("dilat",)
    with pytest.raises(InputError, match="the solid eraser has no option `strength`"):
        pe.get_eraser("solid", strength=0.2)


class _PlainEraser:
    """A plugin eraser that declares no options: its constructor's signature says which it takes."""

    name, kind, needs_network, crops, honours_keep_mask = "plain", "inpaint", False, True, True

    def __init__(self, radius: int = 3) -> None:
        self.radius = radius

    def erase(self, image, erase, *, keep):  # pragma: no cover - never run here
        return image


@pytest.mark.parametrize("eraser, typo, valid", [
    ("patchmatch", "dilat", "`patch_size`"),  # declared options
    ("dashscope", "fast_mod", "`fast_mode`"),  # declared by signature, **kwargs forwarded to the client
    ("plain", "radios", "`radius`"),  # a plugin that declares none: read from its signature
    ("telea", "radious", "`radius`"),
])
def test_every_eraser_refuses_an_option_typo_with_param(scene, eraser, typo, valid):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    pe.register_eraser("plain", _PlainEraser)
    try:
        assert ERASERS.spec("plain").options is None and ERASERS.spec("plain").accepted_options() == {"radius"}
        with pytest.raises(InputError, match=rf"the {eraser} eraser has no option `{typo}`; its options: .*{valid}") \
                as e:
            pe.erase(img, people, eraser=eraser, **{typo: 3})  # refused by the plan, before any engine is built
        assert e.value.param == (typo,)
    finally:
        ERASERS.pop("plain")


def test_options_with_an_engine_object_are_refused(scene):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    with pytest.raises(InputError, match="`radius` go to the eraser's constructor") as e:
        pe.erase(img, people, eraser=pe.get_eraser("telea"), radius=3)
    assert e.value.param == ("radius",)
    with pytest.raises(InputError, match="go to the segmenter's constructor"):
        pe.get_segmenter(object(), quality="best")


def test_dashscope_options_are_its_own_and_its_clients():
    import inspect

    from person_erase.cloud.client import DashScopeClient

    client = {n for n in inspect.signature(DashScopeClient).parameters if n != "self"}
    accepted = ERASERS.spec("dashscope").accepted_options()
    assert accepted is not None and {"dilate_flag", "fast_mode", "add_watermark", "compose"} | client <= accepted
    seg = SEGMENTERS.spec("dashscope")
    assert seg.accepted_options() >= client and not seg.takes("quality")


def test_capability_square_crops_and_two_phase():
    assert ERASERS.spec("lama").square_crops and ERASERS.spec("migan").square_crops
    assert not ERASERS.spec("patchmatch").square_crops
    assert ERASERS.spec("dashscope").two_phase and SEGMENTERS.spec("dashscope").two_phase
    assert not ERASERS.spec("patchmatch").two_phase and not SEGMENTERS.spec("local").two_phase
    assert ERASERS.spec("lama").load().square_crops is True


def test_describe_gives_an_engine_object_a_spec():
    class Mine:
        name, kind, crops = "mine", "redact", True

        def erase(self, image, erase, *, keep):  # pragma: no cover - never run here
            return image

    spec = ERASERS.describe(Mine())
    assert (spec.name, spec.kind, spec.crops, spec.honours_keep_mask, spec.needs_network) == (
        "mine", "redact", True, False, False)
    assert ERASERS.describe("pixelate") is ERASERS.spec("pixelate")


def test_a_wrapper_is_described_by_the_spec_it_carries():
    from dataclasses import replace

    from person_erase.batch.executors.cloud import JournaledEraser

    spec = ERASERS.spec("dashscope")
    wrapper = JournaledEraser(object(), spec, None, "a.jpg")  # inner, hooks: not called when described
    got = ERASERS.describe(wrapper)
    assert got == replace(spec, two_phase=False)  # it erases in one call: no submit/collect of its own
    assert (got.needs_network, got.honours_keep_mask, got.crops, engine_name(wrapper)) == (
        True, True, False, "dashscope")


def test_capability_defaults():
    assert dict(ERASERS.spec("pixelate").defaults) == {"style": "pixelate"}
    assert pe.get_eraser("pixelate").style == "pixelate"


def _listed(*names: str) -> str:
    """The built-in names in sorted order; engines other tests' plugins registered may sit between them."""
    return r"choose one of: " + r", (?:[\w:.-]+, )*".join(re.escape(n) for n in names)


def test_unknown_names_list_the_valid_ones():
    listed = _listed("dashscope", "labels:PATH", "local")
    with pytest.raises(EngineError, match=r"unknown segmenter 'x'; " + listed) as e:
        pe.get_segmenter("x")
    assert e.value.param == "segmenter"
    with pytest.raises(EngineError, match=r"unknown eraser 'x'; "
                       + _listed("blur", "dashscope", "lama:PATH", "migan:PATH", "patchmatch")):
        pe.get_eraser("x")


@pytest.mark.parametrize("text, fragment", [
    ("lama", "the lama eraser needs a path: use lama:PATH"),
    ("telea:x", "the telea eraser takes no ':' argument, got telea:x"),
    ("x", "unknown eraser 'x'"),
])
def test_check_refuses_what_build_would_without_building(text, fragment):
    with pytest.raises(EngineError, match=re.escape(fragment)) as e:
        ERASERS.check(text)
    assert e.value.param == "eraser"
    with pytest.raises(EngineError, match=re.escape(fragment)):
        ERASERS.build(text)
    assert ERASERS.check("lama:/no/such.onnx") is ERASERS.spec("lama")  # the file is the engine's to open


class _FakeCloudEraser:
    name = "fake-cloud"
    kind = "inpaint"
    needs_network = True
    crops = False
    honours_keep_mask = True

    def erase(self, image, erase, *, keep):  # pragma: no cover - never run here
        return image


def test_registering_a_plain_factory_reads_its_capabilities():
    spec = pe.register_eraser("fake-cloud", _FakeCloudEraser)
    try:
        assert "fake-cloud" in ERASERS and ERASERS["fake-cloud"] is spec
        assert spec.kind == "erase" and spec.needs_network and spec.honours_keep_mask and not spec.crops
        assert spec.module == __name__
        assert isinstance(pe.get_eraser("fake-cloud"), _FakeCloudEraser)
    finally:
        ERASERS.pop("fake-cloud")
    assert "fake-cloud" not in ERASERS
    lam = pe.register_segmenter("fake-seg", lambda **kw: None, needs_network=True)
    try:
        assert lam.kind == "segment" and lam.needs_network and lam.options is None
    finally:
        del SEGMENTERS["fake-seg"]


def test_registry_rejects_bad_specs():
    with pytest.raises(ValueError):
        EngineSpec("a:b", "erase", "x:y")
    with pytest.raises(ValueError):
        EngineSpec("a", "inpaint", "x:y")  # type: ignore[arg-type]
    reg = Registry("eraser")
    with pytest.raises(ValueError):
        reg["b"] = EngineSpec("a", "erase", "x:y")
    reg.register(EngineSpec("a", "erase", "no.such.module:Thing"))
    with pytest.raises(EngineError, match="the a engine is not available"):
        reg.build("a")


# --- errors carry param=, library messages name parameters, the CLI names flags ------------------


def test_errors_carry_param_across_processes():
    e = pickle.loads(pickle.dumps(InputError("`dilate` must be >= 0 px", param="dilate")))
    assert type(e) is InputError and e.param == "dilate" and e.params == ("dilate",) and str(e).startswith("`dilate`")
    c = pickle.loads(pickle.dumps(CloudError("boom", code="Throttling", task_id="t1", param="fast_mode")))
    assert str(c) == "[Throttling] boom (task t1)" and c.code == "Throttling" and c.param == "fast_mode"
    assert SelectionError("x").params == ()


def test_library_messages_name_parameters_not_flags(scene):
    img, labels = scene
    people = pe.Instances.from_label_map(labels)
    for kwargs, param in [(dict(dilate=-1), "dilate"), (dict(dilate=10 ** 6), "dilate"),
                          (dict(select=[0], keep=[1]), ("select", "keep")), (dict(policy="largest"), "policy")]:
        with pytest.raises(pe.PersonEraseError) as info:
            pe.erase(img, people, eraser="telea", **kwargs)
        assert info.value.param == param and "--" not in str(info.value), str(info.value)
        first = param if isinstance(param, str) else param[0]
        assert f"`{first}" in str(info.value)
    with pytest.raises(InputError) as info:
        pe.redact(img, people, margin=float("nan"))
    assert info.value.param == "margin" and "`margin`" in str(info.value)


def test_to_flags_rewrites_backticked_parameters():
    from person_erase.cli.helpers import to_flags

    flags = {"dilate": "--dilate", "overwrite": "--overwrite", "policy": "--policy", "min_score": "--min-score"}
    assert to_flags("`dilate` must be >= 0 px", flags) == "--dilate must be >= 0 px"
    assert to_flags("pass `overwrite=True` or choose", flags) == "pass --overwrite or choose"
    assert to_flags('e.g. `policy="largest:2"`', flags) == "e.g. --policy largest:2"
    assert to_flags("`score_threshold` must be in (0, 1)", flags) == "--min-score must be in (0, 1)"
    assert to_flags("`patch_size` is no flag", flags) == "patch_size is no flag"


# files outside person_erase/cli/ that hold flags / import the cli, each with its reason (exact: the
# test fails when one no longer does)
_FLAGS_ALLOWED = {
    "cloud/core.py": "the missing-key help quotes a shell command to run (person-erase serve-dashscope --port)",
}
_CLI_IMPORT_ALLOWED = {
    "__main__.py": "python -m person_erase is the CLI",
}


def test_flags_and_argparse_live_only_in_the_cli_package():
    flag = re.compile(r"(?<![\w-])--[a-z]")
    imports_cli = re.compile(r"^\s*(import argparse|from argparse |(from|import) person_erase\.cli\b|from \.+cli\b)",
                             re.M)
    found, flagged, importing = [], set(), set()
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli/"):
            continue
        text = f.read_text()
        if imports_cli.search(text):
            importing.add(rel)
            if rel not in _CLI_IMPORT_ALLOWED:
                found.append(f"{rel}: imports argparse or the cli")
        tree = ast.parse(text)
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and flag.search(node.value)):
                flagged.add(rel)
                if rel not in _FLAGS_ALLOWED:
                    found.append(f"{rel}:{node.lineno}: {node.value[:60]!r}")
    assert flagged >= set(_FLAGS_ALLOWED), f"no flags any more (drop them): {set(_FLAGS_ALLOWED) - flagged}"
    assert importing >= set(_CLI_IMPORT_ALLOWED), f"no cli import any more: {set(_CLI_IMPORT_ALLOWED) - importing}"
    assert not found, "\n".join(found)


def test_capability_needs_network_picks_the_batch_cloud_executor():
    from person_erase.batch import BatchParams

    assert BatchParams(segmenter="dashscope", eraser="telea").cloud
    assert not BatchParams(segmenter="local", eraser="patchmatch").cloud
    assert not BatchParams(mode="redact", segmenter="local", eraser="dashscope", style="blur").cloud
    pe.register_eraser("fake-cloud", _FakeCloudEraser)  # a plugin's cloud eraser: no list of names to extend
    try:
        assert BatchParams(segmenter="local", eraser="fake-cloud").cloud
    finally:
        ERASERS.pop("fake-cloud")


def test_no_test_engines_are_registered_outside_the_tests_that_ask_for_them():
    """Collecting or running other test files registers nothing here (the fake batch engines live in the
    ``fake_engines`` fixture's scope), so this file's outcomes do not depend on which files ran before."""
    foreign = [f"{reg.what} {name} ({spec.module})" for reg in (SEGMENTERS, ERASERS) for name, spec in reg.items()
               if not (spec.module or "").startswith("person_erase.")]
    assert foreign == []
