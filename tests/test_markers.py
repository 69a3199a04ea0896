"""``hpm_boot.markers.evaluate`` against packaging: it answers as ``Marker(m).evaluate(env)``
does, or None (and None wherever packaging raises)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.markers import Marker, default_environment

from hpm_boot.markers import evaluate

RAISES = "raises"

WINDOWS = {"implementation_name": "cpython", "implementation_version": "3.9.13", "os_name": "nt",
           "platform_machine": "AMD64", "platform_release": "10", "platform_system": "Windows",
           "platform_version": "10.0.19045", "python_full_version": "3.9.13",
           "platform_python_implementation": "CPython", "python_version": "3.9", "sys_platform": "win32"}
MACOS = {"implementation_name": "cpython", "implementation_version": "3.12.4", "os_name": "posix",
         "platform_machine": "arm64", "platform_release": "23.5.0", "platform_system": "Darwin",
         "platform_version": "Darwin Kernel Version 23.5.0", "python_full_version": "3.12.4",
         "platform_python_implementation": "CPython", "python_version": "3.12", "sys_platform": "darwin"}
PYPY = {"implementation_name": "pypy", "implementation_version": "7.3.15", "os_name": "posix",
        "platform_machine": "aarch64", "platform_release": "6", "platform_system": "Linux",
        "platform_version": "#1 SMP", "python_full_version": "3.10.13",
        "platform_python_implementation": "PyPy", "python_version": "3.10", "sys_platform": "linux"}
PARTIAL = {"python_version": "3.8", "python_full_version": "3.8.0", "sys_platform": "linux"}
FAKES = [WINDOWS, MACOS, PYPY, PARTIAL]


def packaging(marker: str, environment: dict[str, str] | None) -> bool | str:
    try:
        return Marker(marker).evaluate(environment)
    except Exception:  # InvalidMarker, UndefinedComparison, UndefinedEnvironmentName, ...
        return RAISES


def agrees(marker: str, environment: dict[str, str] | None) -> bool | None:
    """Our answer, after asserting that it is None or packaging's."""
    ours, theirs = evaluate(marker, environment), packaging(marker, environment)
    assert ours is None or ours == theirs, (marker, environment, ours, theirs)
    return ours


# (marker, whether it is decided in every fake environment: True, False, or None for "depends")
TABLE = [
    ("sys_platform == 'win32'", True),
    ('sys_platform != "win32"', True),
    ("python_version < '3.11'", True),
    ("python_version<'3.11'", True),
    ('python_version>"3.8"', True),
    ("python_version >= '3.8' and python_version < '3.12'", True),
    ("platform_machine in 'x86_64 aarch64'", True),
    ("platform_machine not in 'x86_64 aarch64'", True),
    ("'arm' in platform_machine", True),
    ('implementation_name == "cpython" and python_full_version >= "3.8.1"', True),
    ("(os_name == 'nt' or sys_platform == 'darwin') and python_version >= '3.9'", True),
    ("os_name == 'nt' or sys_platform == 'darwin' and python_version >= '3.9'", True),
    ("( ( sys_platform == 'linux' ) )\tor\tos_name == 'nt'", True),
    ("python_version ~= '3.10'", True),
    ("python_full_version ~= '3.9.1'", True),
    ("python_version == '3.*'", True),
    ("python_full_version != '3.12.*'", True),
    ("python_version == '3.10.0'", True),
    ("'3.9' <= python_version", True),
    ("os.name == 'posix' and sys.platform != 'cygwin'", True),
    ("platform.machine == 'arm64' or platform.python_implementation == 'PyPy'", True),
    ("python_implementation == 'CPython'", True),
    ("platform_system == 'Windows' and implementation_version >= '3'", True),
    ("platform_release >= '5'", None),
    ("platform_release == '6'", None),
    ("extra == 'x'", False),
    ("sys_platform == 'linux' or extra == 'test'", False),
    ("python_version >= '3.11rc1'", False),
    ("python_version === '3.10'", False),
    ("python_version ~= '3'", False),
    ("python_version < 'abc'", False),
    ("sys_platform < 'linux'", False),
    ("platform_machine == '1'", False),
    ("python_version == '3.11' or sys_platform ~= 'linux'", False),
    ("'a' == 'a'", False),
    ("python_version == python_full_version", False),
    ("sys_platform == 'lin\\x75x'", False),
    ("", False),
    ("python_version", False),
    ("python_version >", False),
    ("python_version = '3.8'", False),
    ("(python_version > '3.8'", False),
    ("python_version > '3.8')", False),
    ("python_version > '3.8", False),
    ("python_version > '3.8' and", False),
    ("python_version > '3.8' AND os_name == 'nt'", False),
    ("python_version not  in '3.8'", True),
    ("python_version notin '3.8'", False),
    ("python_versionin '3.8'", False),
    ("platform.release == '10'", False),
    ("python_version > '3.8'\n", False),
    ("os_name == 'nt'andos_name == 'nt'", False),
    ("sys_platform == 'x'orsys_platform == 'y'", False),
    ("(" * 60 + "os_name == 'nt'" + ")" * 60, False),
]


@pytest.mark.parametrize(("marker", "decided"), TABLE)
def test_table_in_fake_environments(marker: str, decided: bool | None) -> None:
    answers = [agrees(marker, env) for env in FAKES]
    if decided is not None:
        assert [a is not None for a in answers] == [decided] * len(FAKES), answers


@pytest.mark.parametrize(("marker", "decided"), TABLE)
def test_table_for_this_interpreter(marker: str, decided: bool | None) -> None:
    ours = agrees(marker, None)
    if decided is False:
        assert ours is None


def test_table_answers_differ_between_environments() -> None:
    marker = "(os_name == 'nt' or sys_platform == 'darwin') and python_version >= '3.9'"
    assert [evaluate(marker, env) for env in FAKES] == [True, True, False, False]
    assert [evaluate("python_version ~= '3.10'", env) for env in FAKES] == [False, True, True, False]


@pytest.mark.parametrize("key", sorted(default_environment()))
def test_default_environment_is_packagings(key: str) -> None:
    value = str(default_environment()[key])  # type: ignore[literal-required]
    quote = "'" if "'" not in value else '"'
    if quote in value or "\\" in value or not value.isprintable():
        pytest.skip(f"{key} = {value!r} cannot be quoted in a marker")
    literal = f"{quote}{value}{quote}"
    assert evaluate(f"{key} in {literal} and {literal} in {key}") is True  # equal as strings
    assert evaluate(f"{key} in {quote}x{quote}") is (value in "x")


@pytest.mark.parametrize("version", [
    "3.14 (main, Jan  1 2026, 00:00:00) [GCC 14.2.0]",
    "3.11.7+ (heads/3.11:0123abc, Jan  1 2024, 00:00:00) [GCC 12.2.0]",
    "3.13.0rc1 (main, Aug  1 2024, 00:00:00)\n[Clang 15.0.0 ]",
])
def test_python_versions_as_platform_reads_them(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    monkeypatch.setattr(sys, "version", version)
    full, short = platform.python_version(), ".".join(platform.python_version_tuple()[:2])
    full += "local" if full.endswith("+") else ""  # as packaging repairs it
    for key, value in (("python_full_version", full), ("python_version", short)):
        assert evaluate(f"{key} in '{value}' and '{value}' in {key}") is True, (key, value)


def test_start_path_imports() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from hpm_boot import markers\n"
        "assert markers.evaluate(\"sys_platform == 'x' or python_full_version >= '3'\") is True\n"
        "assert markers.evaluate(\"implementation_version >= '0' and os_name != 'x'\") is True\n"
        "print(sorted(set(sys.modules) & {'platform', 're', 'typing', 'packaging'} - before))\n"
        "assert markers.evaluate(\"platform_machine != 'no such machine'\") is True\n"
        "print('platform' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]


@pytest.mark.parametrize(("marker", "environment", "expected"), [
    ("'local' in python_full_version", {"python_full_version": "3.11.7+"}, True),  # packaging's repair
    ("python_full_version >= '3.11'", {"python_full_version": "3.11.7+"}, None),
    ("python_version == '3.10.0'", {"python_version": "3.10"}, True),
    ("python_version == '3.1'", {"python_version": "3.10"}, False),
    ("python_version == '03.010'", {"python_version": "3.10"}, True),
    ("python_version == '3.1.*'", {"python_version": "3.10"}, False),
    ("python_version == '3.1.*'", {"python_version": "3.1"}, True),
    ("python_version == '3.0.*'", {"python_version": "3"}, True),
    ("python_version != '3.0.*'", {"python_version": "3"}, False),
    ("python_version ~= '3.10'", {"python_version": "3.11"}, True),
    ("python_version ~= '3.10'", {"python_version": "4.0"}, False),
    ("python_version ~= '3.10'", {"python_version": "3"}, False),
    ("python_version == 'v3.10'", {"python_version": "3.10"}, None),
    ("python_version == 'V3.10'", {"python_version": "3.10"}, None),
    ("python_version == ' 3.10'", {"python_version": "3.10"}, None),
    ("python_version == ''", {"python_version": ""}, True),  # not a specifier: strings
    ("python_version == 'abc'", {"python_version": "abc"}, True),
    ("python_version > 'abc'", {"python_version": "abc"}, None),
    ("platform_release == ''", {"platform_release": ""}, True),
    ("platform_release >= '5'", {"platform_release": "6.1.0-18-amd64"}, None),  # not a version
    ("platform_release >= '5'", {"platform_release": "6.1.0"}, True),
    ("os_name == '3.10.0'", {"os_name": "3.10"}, None),  # packaging 26: strings; earlier: versions
    ("os_name == 'posix'", {"os_name": "posix"}, True),
    ("python_version == '3'", {"python_version": None}, None),
])
def test_edge_cases(marker: str, environment: dict[str, str], expected: bool | None) -> None:
    assert agrees(marker, environment) is expected


releases = st.lists(st.integers(0, 12), min_size=1, max_size=4).map(lambda r: ".".join(map(str, r)))


@settings(max_examples=500)
@given(have=releases, op=st.sampled_from(["<", "<=", "==", "!=", ">=", ">", "~=", "==*", "!=*"]),
       want=releases, reverse=st.booleans())
def test_plain_releases_are_decided(have: str, op: str, want: str, reverse: bool) -> None:
    if op.endswith("*"):
        op, want = op[:-1], f"{want}.*"
    if op == "~=" and "." not in want:
        want += ".0"
    reverse = reverse and "*" not in want and (op != "~=" or "." in have)  # ``'3' ~= var``: no spec
    marker = f"'{want}' {op} python_full_version" if reverse else f"python_full_version {op} '{want}'"
    assert agrees(marker, {"python_full_version": have}) is not None


VARIABLES = ["python_version", "python_full_version", "os_name", "os.name", "sys_platform", "sys.platform",
             "platform_release", "platform_system", "platform_version", "platform.machine",
             "platform_machine", "platform_python_implementation", "python_implementation",
             "implementation_name", "implementation_version", "extra", "extras", "platform.release"]
KEYS = sorted(default_environment())
OPS = ["<", "<=", "==", "!=", ">=", ">", "~=", "in", "not in"] * 3 + ["===", "not  in", "=", "notin"]
VALUES = ["3", "3.8", "3.10", "3.11", "3.11.0", "3.11.7", "03.011", "4", "10", "3.11rc1", "3.11.post1",
          "3.11.dev0", "3.11+local", "3.11.7+", "1!2", "3.11.*", "3.*", "3..1", "v3.11", " 3.11", "3.11 ",
          "", "abc", "*", "linux", "win32", "posix", "nt", "cpython", "CPython", "x86_64", "arm64",
          "6.1.0-18-amd64", "Linux", "Windows", "a b", "\t", "\\x41", "local", "+local"]
SPACE = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def atoms(draw: st.DrawFn) -> str:
    var, op = draw(st.sampled_from(VARIABLES)), draw(st.sampled_from(OPS))
    value = draw(st.sampled_from(VALUES))
    quote = draw(st.sampled_from(["'", '"']))
    operands = [var, f"{quote}{value}{quote}"]
    form = draw(st.sampled_from(["var-first"] * 4 + ["value-first"] * 2 + ["var-var", "value-value"]))
    if form == "value-first":
        operands.reverse()
    elif form != "var-first":
        operands = [operands[form == "value-value"]] * 2
    return f"{operands[0]}{draw(SPACE)}{op}{draw(SPACE)}{operands[1]}"


markers = st.recursive(
    atoms(),
    lambda inner: st.tuples(inner, SPACE, st.sampled_from(["and", "or"]), SPACE, inner).map("".join)
    | st.tuples(st.just("("), SPACE, inner, SPACE, st.just(")")).map("".join),
    max_leaves=6,
)
environments = st.none() | st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=6)


@settings(max_examples=500)
@given(marker=st.tuples(SPACE, markers, SPACE).map("".join), environment=environments)
def test_agrees_with_packaging(marker: str, environment: dict[str, str] | None) -> None:
    ours, theirs = evaluate(marker, environment), packaging(marker, environment)
    if theirs == RAISES:
        assert ours is None, (marker, environment, ours)
    else:
        assert ours in (None, theirs), (marker, environment, ours, theirs)
