"""Manifests: YAML with positions, the v1 schema, overlay merging, every bad input.

User-facing behaviour goes through the real CLI (``hpm validate``/``hpm plan``
in-process); the merge semantics and hostile YAML are also checked on the functions.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpm_boot.compose import registry, yamlpos
from hpm_boot.compose.manifest import GitSource, LocalSource, PypiSource, merge
from hpm_boot.compose.yamlpos import Positions
from hpm_boot.errors import DataError, HpmError
from tests.support.registry_cli import run, write

OK = """
name: {name}
version: 1.0.0
sources:
  prod: {{type: pypi}}
"""


def validate_one(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, list[str], str]:
    """``hpm validate`` of a registry holding only ``a.yaml`` with ``text``: (exit code, the
    lines of stderr with the registry's path removed, stderr)."""
    (tmp_path / "a.yaml").write_text(text)
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    return rc, [line.removeprefix(f"{tmp_path}/") for line in err.splitlines()], err


@pytest.fixture
def chdir_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- the exact error format


def test_wrong_type_names_file_line_and_field_exactly(chdir_tmp: Path, capsys) -> None:
    write(
        chdir_tmp,
        {
            "registry/qdrant.yaml": """
        name: qdrant
        version: 1.0.0
        description: Qdrant adapter
        sources:
          prod:
            type: git
            ref: [v1, v2]
            url: https://example.invalid/qdrant.git
        """
        },
    )
    rc, _, err = run(capsys, "plan")
    assert rc == 65
    first = err.splitlines()[0]
    assert first == "hpm: error: registry/qdrant.yaml:7: sources.prod.ref: expected a string, got a list"
    rc, _, err = run(capsys, "validate")
    assert rc == 65
    assert "registry/qdrant.yaml:7: sources.prod.ref: expected a string, got a list" in err.splitlines()
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\ncolour: red\n",
            "a.yaml:4: colour: unknown field",
        ),
        (
            "name: a\nversion: 1.0.0\nsources:\n  prod: {type: pypi, pacakge: x}\n",
            "a.yaml:4: sources.prod.pacakge: unknown field",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {dev: {type: local, path: x}}\n",
            "a.yaml:3: sources.prod: required field is missing",
        ),
        ("name: a\nversion: 1.0.0\n", "a.yaml:1: sources: required field is missing"),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: svn, url: x}}\n",
            "a.yaml:3: sources.prod.type: invalid value 'svn' (expected git, pypi, url or local)",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\nprovides: vector-db\n",
            "a.yaml:4: provides: expected a list, got a string",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\nrequires: [b]\n",
            "a.yaml:4: requires: expected a mapping, got a list",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\ninstall_args: {manager: npm}\n",
            "a.yaml:4: install_args.manager: invalid value 'npm'",
        ),
        (
            "name: 12\nversion: 1.0.0\nsources: {prod: {type: pypi}}\n",
            "a.yaml:1: name: expected a string, got an integer",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: local, path: x, editable: maybe}}\n",
            "a.yaml:3: sources.prod.editable: expected a boolean, got a string",
        ),
    ],
)
def test_schema_errors_name_file_line_and_field(tmp_path: Path, capsys, text: str, expected: str) -> None:
    rc, lines, err = validate_one(tmp_path, capsys, text)
    assert rc == 65
    assert any(line.startswith(expected) for line in lines), err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: 'bad name!'\nversion: 1.0.0\nsources: {prod: {type: pypi}}\n",
            "a.yaml:1: name: invalid package name 'bad name!'",
        ),
        (
            "name: -a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\n",
            "a.yaml:1: name: invalid package name '-a'",
        ),
        (
            "name: a\nversion: 1.0.x\nsources: {prod: {type: pypi}}\n",
            "a.yaml:2: version: invalid PEP 440 version '1.0.x'",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\nrequires: {b: '>>1'}\n",
            "a.yaml:4: requires.b: invalid PEP 440 specifier '>>1'",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\nconflicts: {b: 'lots'}\n",
            "a.yaml:4: conflicts.b: invalid PEP 440 specifier 'lots'",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi, version: '=1'}}\n",
            "a.yaml:3: sources.prod.version: invalid PEP 440 specifier '=1'",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: url, url: 'https://x/a.whl', sha256: abc}}\n",
            "a.yaml:3: sources.prod.sha256: expected 64 lowercase hex digits",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\nrequires: {a: '*'}\n",
            "a.yaml:4: requires: a names itself",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\nentrypoints: {serve: ' '}\n",
            "a.yaml:4: entrypoints.serve: empty command",
        ),
        (
            "name: a\nversion: 1.0.0\nsources: {prod: {type: pypi}}\nprovides: ['vector db']\n",
            "a.yaml:4: provides[0]: invalid name 'vector db'",
        ),
    ],
)
def test_semantic_errors(tmp_path: Path, capsys, text: str, expected: str) -> None:
    rc, lines, err = validate_one(tmp_path, capsys, text)
    assert rc == 65
    assert any(line.startswith(expected) for line in lines), err


def test_schema_error_and_field_errors_of_one_file_all_reported(tmp_path: Path, capsys) -> None:
    write(
        tmp_path,
        {
            "e.yaml": """
        name: "bad name!"
        version: "1.0.x"
        sources: {}
        requires: {a: ">>1"}
        """
        },
    )
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/e.yaml:3: sources.prod: required field is missing" in err
    assert f"{tmp_path}/e.yaml:1: name: invalid package name" in err
    assert f"{tmp_path}/e.yaml:2: version: invalid PEP 440 version" in err
    assert f"{tmp_path}/e.yaml:4: requires.a: invalid PEP 440 specifier" in err


def test_every_schema_error_of_one_file_is_reported(tmp_path: Path, capsys) -> None:
    """A type error does not hide the file's other problems (docs/manifest.md: validate
    reports every problem of every file in one run)."""
    write(
        tmp_path,
        {
            "e.yaml": """
        name: e
        version: 1.0.0
        colour: red
        sources:
          prod: {type: git, url: "https://example.invalid/e", ref: [a]}
        groups: [g, {x: 1}]
        install_args: {manager: npm}
        """
        },
    )
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/e.yaml:3: colour: unknown field" in err
    assert f"{tmp_path}/e.yaml:5: sources.prod.ref: expected a string, got a list" in err
    assert f"{tmp_path}/e.yaml:6: groups" in err
    assert f"{tmp_path}/e.yaml:7: install_args.manager: invalid value" in err
    assert "4 problem(s)" in err.splitlines()[0], err
    # as every error: one JSON record with the problems as details, the line in the termination log
    tlog = tmp_path / "termination-log"
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path),
                     env={"HPM_LOG_FORMAT": "json", "HPM_TERMINATION_LOG": str(tlog)})
    (record,) = [json.loads(line) for line in err.splitlines()]
    assert rc == 65 and record["exit_code"] == 65 and record["details"].count("e.yaml:") == 4, record
    assert tlog.read_text() == f"hpm: 4 problem(s) in {tmp_path}, listed below as file:line: field: problem\n"


def test_a_required_field_of_the_wrong_type_is_reported_once(tmp_path: Path, capsys) -> None:
    write(tmp_path, {"e.yaml": 'name: e\nversion: [1]\ncolour: red\nsources:\n  prod: {type: pypi}\n'})
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/e.yaml:2: version: expected a string" in err, err
    assert "required field is missing" not in err, err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\n  version: 1\n", "a.yaml:2: invalid YAML"),
        ("name: [a\n", "a.yaml:2: invalid YAML"),
        ("- a\n- b\n", "a.yaml: expected a mapping at the top level, got a list"),
        ("just a string\n", "a.yaml: expected a mapping at the top level, got a string"),
        ("", "a.yaml: the file is empty; expected a mapping"),
        ("# only a comment\n", "a.yaml: the file is empty; expected a mapping"),
        ("name: a\nname: b\n", "a.yaml:2: name: key given twice"),
        ("? [a, b]\n: 1\n", "a.yaml:1: top level: mapping keys must be strings"),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", "a.yaml:3: YAML merge keys (<<) are not supported"),
        ("a: !!python/object:os.system x\n", "a.yaml:1: invalid YAML"),
        ("a: b\n---\nc: d\n", "a.yaml:2: invalid YAML: but found another document"),
    ],
)
def test_malformed_yaml(tmp_path: Path, capsys, text: str, expected: str) -> None:
    rc, lines, err = validate_one(tmp_path, capsys, text)
    assert rc == 65
    assert any(line.startswith(expected) for line in lines), err
    assert "Traceback" not in err
    rc, _, err = run(capsys, "plan", "-r", str(tmp_path))
    assert rc == 65
    assert err.startswith("hpm: error: ")


def test_binary_file_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe\x00garbage\x00")
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/a.yaml" in err


def test_numbers_keep_their_digits_where_a_string_is_due(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": """
        name: a
        version: 1.10
        sources:
          prod: {type: git, url: "https://example.invalid/a", ref: 2.0}
        requires: {b: 1.0}
        """,
            "b.yaml": OK.format(name="b"),
        },
    )
    _reg, problems = registry.load_with_problems([tmp_path], "prod")
    assert [str(p) for p in problems] == [
        f'{tmp_path}/a.yaml:5: requires.b: invalid PEP 440 specifier \'1.0\' (e.g. ">=1.2,<2" or "*")'
    ]
    (tmp_path / "a.yaml").write_text((tmp_path / "a.yaml").read_text().replace("b: 1.0", "b: '*'"))
    entry = registry.load([tmp_path], "prod").entries["a"]
    assert entry.manifest.version == "1.10"
    assert entry.manifest.sources.prod == GitSource("https://example.invalid/a", "2.0")


def test_full_manifest_of_the_design_is_accepted(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "qwen.yaml": """
        name: vlm-adapter-qwen
        version: 0.2.0
        description: Adapter for Qwen2-VL models
        provides: [vlm-adapter]
        groups: [vision]
        requires: {app-core: ">=1.2,<2"}
        conflicts: {vlm-adapter-llava: "*"}
        sources:
          prod: {type: git, url: "https://github.com/vlm-bench/qwen-adapter", ref: v0.2.0, subdirectory: null}
          dev:  {type: local, path: ../packages/qwen_adapter, editable: true}
        install_args:
          manager: uv
          extras: [flash-attn, vision]
        entrypoints:
          serve: "python -m api_wrapper.serve --port 8001"
        """,
            "core.yaml": OK.format(name="app-core").replace("1.0.0", "1.2.0"),
        },
    )
    m = registry.load([tmp_path], "prod").entries["vlm-adapter-qwen"].manifest
    assert m.provides == ["vlm-adapter"]
    assert m.install_args.extras == ["flash-attn", "vision"]
    assert m.sources.dev == LocalSource("../packages/qwen_adapter", True)
    assert m.entrypoints == {"serve": "python -m api_wrapper.serve --port 8001"}


# ---------------------------------------------------------------- hostile input


def test_ten_megabyte_file_is_refused_without_parsing(tmp_path: Path, capsys) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("name: big\nversion: 1.0.0\nsources: {prod: {type: pypi}}\ndescription: |\n")
        line = "  " + "x" * 98 + "\n"
        f.write(line * (10 * 1024 * 1024 // len(line)))
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{big}: " in err and "refusing to parse it" in err
    with pytest.raises(DataError, match="larger than"):
        yamlpos.load(big)


BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS)
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/bomb.yaml: more than {yamlpos.MAX_NODES} YAML nodes" in err
    assert "alias bomb" in err


@pytest.mark.parametrize(
    "text",
    [
        "x: &a [*a]\n",  # a recursive alias
        "x: &a {y: *a}\n",
        "name: " + "[" * 5000 + "]" * 5000 + "\n",  # deep nesting
        "name: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
        "x:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
    ],
)
def test_recursive_or_deep_documents_are_refused(tmp_path: Path, capsys, text: str) -> None:
    (tmp_path / "deep.yaml").write_text(text)
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert "Traceback" not in err and "RecursionError" not in err
    assert f"{tmp_path}/deep.yaml" in err


def test_pure_python_loader_handles_hostile_input_too(tmp_path: Path, monkeypatch) -> None:
    """The zipapp may run without libyaml: the same caps hold with the pure-Python loader."""
    monkeypatch.setattr(yamlpos, "_Loader", yaml.SafeLoader)
    cases = {
        "bomb.yaml": BILLION_LAUGHS,
        "rec.yaml": "x: &a [*a]\n",
        "deep.yaml": "name: " + "[" * 20000 + "]" * 20000 + "\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError) as info:
            yamlpos.load(tmp_path / name)
        assert str(tmp_path / name) in info.value.message


# ---------------------------------------------------------------- overlays


def test_overlay_merge_semantics(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": """
            name: a
            version: 1.0.0
            description: base
            provides: [x, y]
            requires: {b: ">=1", c: "*"}
            sources:
              prod: {type: pypi, package: a-dist, version: "==1.0.0"}
            entrypoints: {serve: "python -m a", smoke: "python -m a check"}
            """,
            "a.dev.yaml": """
            description: dev
            provides: [z]
            requires: {b: ">=2"}
            sources:
              dev: {type: local, path: ../a, editable: true}
            entrypoints: {smoke: null}
            """,
            "a.local.yaml": """
            requires: {c: null}
            sources:
              prod: {version: "==1.0.1"}
            """,
            "b.yaml": OK.format(name="b").replace("1.0.0", "2.0.0"),
            "c.yaml": OK.format(name="c"),
            "x.yaml": OK.format(name="x-provider").replace("sources", "provides: [x]\nsources"),
        },
    )
    prod = registry.load([tmp_path], "prod").entries["a"]
    assert prod.overlays == (tmp_path / "a.local.yaml",)
    m = prod.manifest
    assert m.description == "base"  # the dev overlay is not applied in prod
    assert m.provides == ["x", "y"]
    assert m.requires == {"b": ">=1"}  # null removed c
    assert m.sources.prod == PypiSource("a-dist", "==1.0.1")  # maps merge key by key
    assert m.sources.dev is None
    assert m.entrypoints == {"serve": "python -m a", "smoke": "python -m a check"}

    dev = registry.load([tmp_path], "dev").entries["a"]
    assert dev.overlays == (tmp_path / "a.dev.yaml", tmp_path / "a.local.yaml")  # local last
    m = dev.manifest
    assert m.description == "dev"
    assert m.provides == ["z"]  # lists replace
    assert m.requires == {"b": ">=2"}
    assert m.sources.prod == PypiSource("a-dist", "==1.0.1")
    assert m.sources.dev == LocalSource("../a", True)
    assert m.entrypoints == {"serve": "python -m a"}


def test_local_overlay_wins_over_dev_overlay(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": OK.format(name="a"),
            "a.dev.yaml": "description: from dev\n",
            "a.local.yaml": "description: from local\n",
        },
    )
    assert registry.load([tmp_path], "dev").entries["a"].manifest.description == "from local"
    assert registry.load([tmp_path], "prod").entries["a"].manifest.description == "from local"


def test_errors_in_an_overlay_point_at_the_overlay(tmp_path: Path, capsys) -> None:
    write(
        tmp_path,
        {
            "a.yaml": OK.format(name="a"),
            "a.dev.yaml": "sources:\n  dev: {type: local, path: [x]}\n",
            "b.yaml": OK.format(name="b"),
            "b.local.yaml": "descripton: typo\n",
        },
    )
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/a.dev.yaml:2: sources.dev.path: expected a string, got a list" in err
    assert f"{tmp_path}/b.local.yaml:1: descripton: unknown field" in err
    # prod ignores the dev overlay, but not the local one
    rc, _, err = run(capsys, "plan", "-r", str(tmp_path), "--with", "a", "--mode", "prod")
    assert rc == 65 and "b.local.yaml:1: descripton" in err


@pytest.mark.parametrize("text", ["- a\n", "just text\n"])
def test_overlay_that_is_not_a_mapping(tmp_path: Path, capsys, text: str) -> None:
    write(tmp_path, {"a.yaml": OK.format(name="a"), "a.local.yaml": text})
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/a.local.yaml: expected a mapping at the top level" in err


def test_empty_overlay_changes_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": OK.format(name="a"), "a.local.yaml": "# nothing yet\n"})
    assert registry.load([tmp_path], "prod").entries["a"].manifest.version == "1.0.0"


@pytest.mark.parametrize("overlay", ["ghost.dev.yaml", "ghost.local.yaml", "sub/ghost.local.yml"])
def test_overlay_without_a_base_manifest(tmp_path: Path, capsys, overlay: str) -> None:
    write(tmp_path, {"a.yaml": OK.format(name="a"), overlay: "description: x\n"})
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/{overlay}: overlay without a base manifest" in err


# ---------------------------------------------------------------- merge: properties

_keys = st.sampled_from(["a", "b", "c", "d"])
_scalars = st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["x", "y"]))
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_keys, children, max_size=4)),
    max_leaves=12,
)
_maps = st.dictionaries(_keys, _values, max_size=4)


def _no_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def _reference_merge(base: Any, over: Any) -> Any:
    """The provider rules of docs/manifest.md, written as plainly as possible."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return _no_nulls(over)
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = _reference_merge(out[key], value)
        else:
            out[key] = _no_nulls(value)
    return out


def _positions_of(data: Any, file: str, path: tuple = ()) -> Positions:
    pos = Positions({path: yamlpos.Position(Path(file), 1)})
    if isinstance(data, dict):
        for k, v in data.items():
            pos.update(_positions_of(v, file, (*path, k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            pos.update(_positions_of(v, file, (*path, i)))
    return pos


def _paths(data: Any, path: tuple = ()) -> set[tuple]:
    out = {path}
    if isinstance(data, dict):
        for k, v in data.items():
            out |= _paths(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out |= _paths(v, (*path, i))
    return out


@given(base=_maps, over=_maps)
def test_merge_follows_the_rule(base: dict, over: dict) -> None:
    bpos, opos = _positions_of(base, "base"), _positions_of(over, "over")
    import copy

    base_copy, over_copy = copy.deepcopy(base), copy.deepcopy(over)
    merged = merge(base, over, bpos, opos)
    assert merged == _reference_merge(base_copy, over_copy)
    assert base == base_copy and over == over_copy  # inputs are not mutated
    # Positions describe the result: every path of it is known, and nothing else;
    # what the overlay supplied points at the overlay.
    assert set(bpos) == _paths(merged)
    for path, position in bpos.items():
        if path and position.file == Path("over"):
            assert path in _paths(over_copy)


def _lookup(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


@given(base=_maps, over1=_maps, over2=_maps)
def test_merge_never_removes_what_an_overlay_does_not_mention(base, over1, over2) -> None:
    merged = merge(merge(base, over1, Positions(), Positions()), over2, Positions(), Positions())
    for key in base:
        if key not in over1 and key not in over2:
            assert merged[key] == base[key]


# ---------------------------------------------------------------- random manifests


_yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "version",
                    "sources",
                    "prod",
                    "dev",
                    "type",
                    "path",
                    "url",
                    "ref",
                    "requires",
                    "provides",
                    "groups",
                    "conflicts",
                    "install_args",
                    "extras",
                    "entrypoints",
                    "x",
                ]
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_yaml_values, overlay=st.one_of(st.none(), _yaml_values))
def test_random_manifests_raise_nothing_but_hpm_errors(doc: Any, overlay: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "m.yaml").write_text(yaml.safe_dump(doc))
        if overlay is not None:
            (root / "m.dev.yaml").write_text(yaml.safe_dump(overlay))
        for mode in ("prod", "dev"):
            try:
                registry.load([root], mode)
            except HpmError as exc:
                assert exc.exit_code == 65
                assert exc.message.startswith(str(root))
        problems, _warnings = registry.validate([root])
        assert all(str(p).startswith(str(root)) for p in problems)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_raises_nothing_but_data_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_text(text)
        try:
            registry.load([Path(tmp)], "prod")
        except HpmError as exc:
            assert exc.exit_code == 65
