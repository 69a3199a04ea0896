"""The manifest (v1) and ``hpm-registry.yaml`` schemas, overlay merging, and checking.

A manifest is read as data with positions (``yamlpos``), overlays are deep-merged
over it (maps key by key, lists and scalars replace, ``null`` removes), and the
result is converted to msgspec Structs. Every problem found is a ``Problem`` that
names file, line and field; ``check_manifest`` returns all of them, not the first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from hpm_boot.compose import yamlpos
from hpm_boot.compose.yamlpos import FieldPath, Position, Positions

Mode = Literal["prod", "dev"]
MODES: tuple[Mode, ...] = ("prod", "dev")

_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_STRING_PATHS: frozenset[FieldPath] = frozenset(
    {
        ("version",),
        ("sources", "*", "ref"),
        ("sources", "*", "version"),
        ("requires", "*"),
        ("conflicts", "*"),
    }
)


class _Struct(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True):
    pass


class GitSource(_Struct, tag="git", tag_field="type"):
    url: str
    ref: str
    subdirectory: str | None = None
    package: str | None = None  # the distribution it builds; found out when not given


class PypiSource(_Struct, tag="pypi", tag_field="type"):
    package: str | None = None  # the distribution name; defaults to the manifest's name
    version: str | None = None  # a PEP 440 specifier; defaults to "==<manifest version>"
    index: str | None = None  # an index URL for this package only


class UrlSource(_Struct, tag="url", tag_field="type"):
    url: str
    sha256: str | None = None
    package: str | None = None  # the distribution it builds; found out when not given


class LocalSource(_Struct, tag="local", tag_field="type"):
    path: str  # relative to the manifest file
    editable: bool = True
    package: str | None = None  # the distribution it builds; found out when not given


Source = GitSource | PypiSource | UrlSource | LocalSource


class Sources(_Struct):
    prod: Source
    dev: Source | None = None


class InstallArgs(_Struct):
    manager: Literal["uv", "pip", "conda"] = "uv"
    extras: list[str] = msgspec.field(default_factory=list)
    channels: list[str] = msgspec.field(default_factory=list)  # conda only


class Manifest(_Struct):
    name: str
    version: str
    sources: Sources
    description: str = ""
    provides: list[str] = msgspec.field(default_factory=list)
    groups: list[str] = msgspec.field(default_factory=list)
    requires: dict[str, str] = msgspec.field(default_factory=dict)
    conflicts: dict[str, str] = msgspec.field(default_factory=dict)
    install_args: InstallArgs = msgspec.field(default_factory=InstallArgs)
    entrypoints: dict[str, str] = msgspec.field(default_factory=dict)


class Defaults(_Struct):
    with_: list[str] = msgspec.field(default_factory=list, name="with")
    groups: list[str] = msgspec.field(default_factory=list)
    providers: dict[str, str] = msgspec.field(default_factory=dict)


class RegistryConfig(_Struct):
    groups: dict[str, list[str]] = msgspec.field(default_factory=dict)
    defaults: Defaults = msgspec.field(default_factory=Defaults)
    constraints: list[str] = msgspec.field(default_factory=list)  # PEP 508, uv's --constraints
    overrides: list[str] = msgspec.field(default_factory=list)  # PEP 508, uv's --overrides


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file: ``file:line: field: message``."""

    where: Position | Path
    field: str
    message: str

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.where}:{field} {self.message}"


def specifier(text: str) -> SpecifierSet:
    """A PEP 440 specifier set; ``*`` and the empty string mean any version."""
    return SpecifierSet("" if text.strip() in ("", "*") else text)


def merge(base: Any, over: Any, base_pos: Positions, over_pos: Positions) -> Any:
    """Deep-merge ``over`` onto ``base`` (the one merge rule of hpm) and return the result.

    Maps merge key by key; lists and scalars replace; a ``null`` value removes the
    key (and in a part the overlay adds, a ``null`` key is simply left out). The
    inputs are not changed. ``base_pos`` is updated to describe the result: parts
    taken from ``over`` point at the overlay's lines, removed parts are forgotten.
    """
    return _merge(base, over, base_pos, over_pos, ())


def _merge(base: Any, over: Any, bpos: Positions, opos: Positions, path: FieldPath) -> Any:
    if not (isinstance(base, dict) and isinstance(over, dict)):
        _forget(base, bpos, path)
        return _take(over, bpos, opos, path)
    out = dict(base)
    for key, value in over.items():
        sub = (*path, key)
        if value is None:
            if key in out:
                _forget(out.pop(key), bpos, sub)
        elif key in out:
            out[key] = _merge(out[key], value, bpos, opos, sub)
        else:
            out[key] = _take(value, bpos, opos, sub)
    return out


def _take(value: Any, bpos: Positions, opos: Positions, path: FieldPath) -> Any:
    """``value`` from the overlay, without null map entries; its positions go along."""
    if path in opos:
        bpos[path] = opos[path]
    if isinstance(value, dict):
        return {k: _take(v, bpos, opos, (*path, k)) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_take(v, bpos, opos, (*path, i)) for i, v in enumerate(value)]
    return value


def _forget(value: Any, positions: Positions, path: FieldPath) -> None:
    """Drop the positions of ``value`` (found at ``path``) and everything below it."""
    positions.pop(path, None)
    if isinstance(value, dict):
        for k, v in value.items():
            _forget(v, positions, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _forget(v, positions, (*path, i))


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
_MSGSPEC_ERROR = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")


def _parse_msgspec_path(text: str) -> FieldPath:
    # "$.sources.prod.ref", "$.groups[0]", "key in `$.requires`"
    text = text.split("`$")[-1] if "`$" in text else text.removeprefix("$")
    out: list[str | int] = []
    for m in _PATH_PART.finditer(text):
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
    return tuple(out)


def _problem_from_msgspec(exc: msgspec.ValidationError, positions: Positions, file: Path) -> Problem:
    m = _MSGSPEC_ERROR.match(str(exc))
    assert m is not None
    msg, path = m.group("msg"), _parse_msgspec_path(m.group("path") or "$")
    unknown = re.match(r"Object contains unknown field `(.+)`", msg)
    missing = re.match(r"Object missing required field `(.+)`", msg)
    if unknown:
        path = (*path, unknown.group(1))
        msg = "unknown field (check its spelling against the manifest format)"
    elif missing:
        path = (*path, missing.group(1))
        msg = "required field is missing"
    else:
        msg = re.sub(
            r"Expected `([^`]+)`, got `([^`]+)`",
            lambda t: f"expected {_words(t.group(1))}, got {_words(t.group(2))}",
            msg,
        )
        msg = re.sub(r"Invalid enum value (.+)", r"invalid value \1", msg)
        if path[-1:] == ("type",) and path[:1] == ("sources",):
            msg += " (expected git, pypi, url or local)"
        msg = msg[:1].lower() + msg[1:]
    return Problem(positions.find(path) or file, yamlpos.format_path(path), msg)


def _words(types: str) -> str:
    return " or ".join(_TYPE_WORDS.get(t.strip(), t.strip()) for t in types.split("|"))


def convert(data: Any, positions: Positions, file: Path, kind: type[_Struct]) -> Any:
    """Plain data -> ``kind``; raises ``ProblemError`` naming file, line and field."""
    if data is None:
        raise ProblemError([Problem(file, "", "the file is empty; expected a mapping")])
    if not isinstance(data, dict):
        raise ProblemError(
            [Problem(file, "", f"expected a mapping at the top level, got {yamlpos.type_name(data)}")]
        )
    data = yamlpos.unwrap_numbers(data, _STRING_PATHS)
    problems: list[Problem] = []
    removed: dict[FieldPath, Any] = {}  # field taken out -> a stand-in of its expected type
    # msgspec stops at the first error: take the faulty field out and convert again, so
    # that one run reports every problem of the file (docs/manifest.md, `hpm validate`)
    for _ in range(_MAX_PROBLEMS_PER_FILE):
        try:
            result = msgspec.convert(data, kind, strict=True)
        except msgspec.ValidationError as exc:
            path = _field_path(exc)
            if path in removed:  # a required field we took out: put a stand-in there
                if removed[path] is None:
                    break
                data = _with(data, path, removed.pop(path))
                removed[path] = None
                continue
            problems.append(_problem_from_msgspec(exc, positions, file))
            if not path:
                break
            data = _with(data, path, _REMOVE)
            removed[path] = _stand_in(str(exc))
            continue
        if not problems:
            return result
        break
    raise ProblemError(problems)


_MAX_PROBLEMS_PER_FILE = 100


def _field_path(exc: msgspec.ValidationError) -> FieldPath:
    """The field an error is about (for a list item, the list: its other items shift)."""
    m = _MSGSPEC_ERROR.match(str(exc))
    assert m is not None
    path = _parse_msgspec_path(m.group("path") or "$")
    named = re.match(r"Object (?:contains unknown|missing required) field `(.+)`", m.group("msg"))
    if named:
        path = (*path, named.group(1))
    while path and isinstance(path[-1], int):
        path = path[:-1]
    return path


_REMOVE = object()
_STAND_INS: dict[str, Any] = {"str": "0", "int": 0, "float": 0.0, "bool": False, "object": {}, "array": []}


def _stand_in(message: str) -> Any:
    """A value of the type an error expected (``Expected `str`, got ...``), or None."""
    m = re.search(r"Expected `([a-z]+)", message)
    value = _STAND_INS.get(m.group(1)) if m else None
    return type(value)() if isinstance(value, (dict, list)) else value


def _with(data: Any, path: FieldPath, value: Any) -> Any:
    """A copy of ``data`` with the field at ``path`` set to ``value`` (``_REMOVE``: taken
    out); ``data`` itself is not changed."""
    if not isinstance(data, dict) or (len(path) > 1 and path[0] not in data):
        return data
    out = dict(data)
    if len(path) > 1:
        out[path[0]] = _with(out[path[0]], path[1:], value)
    elif value is _REMOVE:
        out.pop(path[0], None)
    else:
        out[path[0]] = value
    return out


class ProblemError(Exception):
    """Problems found in manifests; the registry gathers them into one DataError."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def _check_fields(data: dict[str, Any], at: Any) -> Iterator[Problem]:
    """Checks of name, version, provides, groups, requires and conflicts.

    ``data`` may be raw YAML data that failed the schema elsewhere: a field of the
    wrong type is skipped here (the schema error reports it), so one run reports
    as many problems of a file as can be found.
    """
    name = data.get("name")
    if isinstance(name, str) and not _NAME.match(name):
        yield Problem(
            at("name"),
            "name",
            f"invalid package name {name!r} (PEP 508 names: "
            "letters, digits, '.', '-', '_', starting and ending alphanumeric)",
        )
    version = data.get("version")
    if isinstance(version, str):
        try:
            Version(version)
        except InvalidVersion:
            yield Problem(
                at("version"), "version", f"invalid PEP 440 version {version!r} (e.g. 1.2.0, 0.3.0rc1)"
            )
    for key in ("provides", "groups"):
        values = data.get(key)
        for i, value in enumerate(values if isinstance(values, list) else []):
            if isinstance(value, str) and not _NAME.match(value):
                yield Problem(at(key, i), f"{key}[{i}]", f"invalid name {value!r}")
    for key in ("requires", "conflicts"):
        deps = data.get(key)
        if not isinstance(deps, dict):
            continue
        for dep, spec in deps.items():
            if not _NAME.match(dep):
                yield Problem(at(key, dep), f"{key}.{dep}", f"invalid package name {dep!r}")
            if not isinstance(spec, str):
                continue
            try:
                specifier(spec)
            except InvalidSpecifier:
                yield Problem(
                    at(key, dep),
                    f"{key}.{dep}",
                    f'invalid PEP 440 specifier {spec!r} (e.g. ">=1.2,<2" or "*")',
                )
        if isinstance(name, str) and canonicalize_name(name) in {canonicalize_name(d) for d in deps}:
            yield Problem(at(key), key, f"{name} names itself")


def check_partial(data: Any, positions: Positions, file: Path) -> list[Problem]:
    """The field checks of ``check_manifest`` on raw data that failed the schema."""
    if not isinstance(data, dict):
        return []
    data = yamlpos.unwrap_numbers(data, _STRING_PATHS)
    return list(_check_fields(data, lambda *path: positions.find(path) or file))


def check_manifest(m: Manifest, positions: Positions, file: Path) -> Iterator[Problem]:
    """Semantic checks that the schema cannot express."""

    def at(*path: str | int) -> Position | Path:
        return positions.find(path) or file

    yield from _check_fields(
        {
            "name": m.name,
            "version": m.version,
            "provides": m.provides,
            "groups": m.groups,
            "requires": m.requires,
            "conflicts": m.conflicts,
        },
        at,
    )
    for mode in MODES:
        source = getattr(m.sources, mode)
        if isinstance(source, PypiSource) and source.version is not None:
            try:
                specifier(source.version)
            except InvalidSpecifier:
                yield Problem(
                    at("sources", mode, "version"),
                    f"sources.{mode}.version",
                    f'invalid PEP 440 specifier {source.version!r} (e.g. "==1.2.0")',
                )
        package = getattr(source, "package", None)
        if isinstance(package, str) and not _NAME.match(package):
            yield Problem(
                at("sources", mode, "package"),
                f"sources.{mode}.package",
                f"invalid distribution name {package!r}",
            )
        if (
            isinstance(source, UrlSource)
            and source.sha256 is not None
            and not re.fullmatch(r"[0-9a-f]{64}", source.sha256)
        ):
            yield Problem(
                at("sources", mode, "sha256"),
                f"sources.{mode}.sha256",
                "expected 64 lowercase hex digits",
            )
    for ep, cmd in m.entrypoints.items():
        if not cmd.strip():
            yield Problem(at("entrypoints", ep), f"entrypoints.{ep}", "empty command")
    for i, extra in enumerate(m.install_args.extras):
        if not _NAME.match(extra):
            yield Problem(
                at("install_args", "extras", i), f"install_args.extras[{i}]", f"invalid extra {extra!r}"
            )
