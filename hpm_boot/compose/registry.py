"""Registry directories -> manifests by normalized name.

Every ``*.yaml``/``*.yml`` below a registry directory is a manifest, except overlays
(``NAME.dev.yaml``, ``NAME.local.yaml``) and ``hpm-registry.yaml``. Directories are
layered: a later one overrides an earlier one for the same package name; two
manifests with one name in one directory is an error. Loading gathers every problem
before raising, so ``hpm validate`` can report them all in one run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from packaging.utils import canonicalize_name

from hpm_boot.compose import yamlpos
from hpm_boot.compose.manifest import (
    MODES,
    GitSource,
    LocalSource,
    Manifest,
    Mode,
    Problem,
    ProblemError,
    RegistryConfig,
    Source,
    check_manifest,
    check_partial,
    convert,
    merge,
)
from hpm_boot.compose.yamlpos import Position, Positions, YamlError
from hpm_boot.errors import DataError, NotFoundError

CONFIG_NAMES = ("hpm-registry.yaml", "hpm-registry.yml")
_OVERLAY = re.compile(r"^(?P<stem>.+)\.(?P<kind>dev|local)\.ya?ml$")


@dataclass(frozen=True)
class Entry:
    """One package of the registry: its merged manifest and where it came from."""

    manifest: Manifest
    file: Path
    overlays: tuple[Path, ...]
    positions: Positions = field(compare=False, repr=False)
    overrides: tuple[Path, ...] = ()  # same-named manifests of earlier directories

    @property
    def name(self) -> str:
        return canonicalize_name(self.manifest.name)

    def source(self, mode: Mode) -> tuple[Source, Mode]:
        """The source the mode asks for, and the mode whose source it is."""
        sources = self.manifest.sources
        if mode == "dev" and sources.dev is not None:
            return sources.dev, "dev"
        return sources.prod, "prod"

    def local_path(self, source: Source) -> Path | None:
        if isinstance(source, LocalSource):
            return Path(os.path.abspath(self.file.parent / source.path))
        return None

    def dev_checkout(self) -> Path | None:
        """The dev source's directory when it is a local path (whether or not it exists)."""
        if self.manifest.sources.dev is None:
            return None
        return self.local_path(self.manifest.sources.dev)

    def where(self, *path: str | int) -> str:
        return str(self.positions.find(path) or self.file)


@dataclass(frozen=True)
class Registry:
    dirs: tuple[Path, ...]
    mode: Mode
    entries: dict[str, Entry]
    config: RegistryConfig
    config_files: tuple[Path, ...] = ()
    config_positions: Positions = field(default_factory=Positions, compare=False, repr=False)

    def get(self, name: str) -> Entry | None:
        """The entry named ``name`` (any spelling that normalizes alike), or None."""
        return self.entries.get(canonicalize_name(name))

    def virtuals(self) -> dict[str, list[str]]:
        """Virtual name -> sorted names of the packages that provide it."""
        out: dict[str, list[str]] = {}
        for name, entry in self.entries.items():
            for virtual in entry.manifest.provides:
                out.setdefault(canonicalize_name(virtual), []).append(name)
        return {v: sorted(p) for v, p in sorted(out.items())}

    def groups(self) -> dict[str, list[str]]:
        """Group -> sorted member names (packages or virtuals), from manifests and config."""
        out: dict[str, set[str]] = {}
        for name, entry in self.entries.items():
            for group in entry.manifest.groups:
                out.setdefault(canonicalize_name(group), set()).add(name)
        for group, members in self.config.groups.items():
            out.setdefault(canonicalize_name(group), set()).update(canonicalize_name(m) for m in members)
        return {g: sorted(m) for g, m in sorted(out.items())}


@dataclass
class _Files:
    bases: list[Path] = field(default_factory=list)
    overlays: dict[Path, dict[str, Path]] = field(default_factory=dict)  # base -> kind -> file
    configs: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _scan(directory: Path) -> _Files:
    found = _Files()
    paths: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths.extend(Path(root, f) for f in files if f.endswith((".yaml", ".yml")) and not f.startswith("."))
    paths.sort(key=lambda p: p.parts)  # never the file system's listing order
    bases = {p for p in paths if p.name not in CONFIG_NAMES and not _OVERLAY.match(p.name)}
    for path in paths:
        if path.name in CONFIG_NAMES:
            if path.parent == directory:
                found.configs.append(path)
            else:
                found.problems.append(
                    Problem(path, "", f"{path.name} belongs at the top of the registry directory {directory}")
                )
            continue
        m = _OVERLAY.match(path.name)
        if m is None:
            found.bases.append(path)
            continue
        base = next(
            (b for b in (path.with_name(m["stem"] + ext) for ext in (".yaml", ".yml")) if b in bases),
            None,
        )
        if base is None:
            found.problems.append(
                Problem(
                    path,
                    "",
                    f"overlay without a base manifest: expected {m['stem']}.yaml beside it",
                )
            )
            continue
        found.overlays.setdefault(base, {})[m["kind"]] = path
    return found


def _read_entry(base: Path, overlays: dict[str, Path], mode: Mode) -> Entry:
    data, positions = yamlpos.load(base)
    used: list[Path] = []
    kinds = ("dev", "local") if mode == "dev" else ("local",)
    for kind in kinds:
        overlay = overlays.get(kind)
        if overlay is None:
            continue
        over, over_pos = yamlpos.load(overlay)
        if over is None:
            continue
        if not isinstance(over, dict):
            raise ProblemError(
                [Problem(overlay, "", f"expected a mapping at the top level, got {yamlpos.type_name(over)}")]
            )
        if isinstance(data, dict):
            data = merge(data, over, positions, over_pos)
        used.append(overlay)
    try:
        manifest = convert(data, positions, base, Manifest)
    except ProblemError as exc:
        raise ProblemError(exc.problems + check_partial(data, positions, base)) from None
    problems = list(check_manifest(manifest, positions, base))
    if problems:
        raise ProblemError(problems)
    return Entry(_with_git_paths(manifest, base), base, tuple(used), positions)


def _with_git_paths(manifest: Manifest, file: Path) -> Manifest:
    """A git ``url`` that is a relative path (``./x``, ``../x``) names a repository
    relative to the manifest file, as a local ``path`` does; it becomes a ``file://`` URL,
    which git, uv and the lock understand wherever hpm runs."""

    def absolute(source: Source | None) -> Source | None:
        if isinstance(source, GitSource) and source.url.startswith(("./", "../")):
            url = Path(os.path.abspath(file.parent / source.url)).as_uri()
            return msgspec.structs.replace(source, url=url)
        return source

    sources = manifest.sources
    prod, dev = absolute(sources.prod), absolute(sources.dev)
    if prod is sources.prod and dev is sources.dev:
        return manifest
    assert prod is not None
    return msgspec.structs.replace(manifest, sources=msgspec.structs.replace(sources, prod=prod, dev=dev))


def _read_config(files: Sequence[Path]) -> tuple[RegistryConfig, Positions, list[Problem]]:
    """Merge every ``hpm-registry.yaml`` in registry order (later directories win)."""
    data: dict[str, Any] = {}
    positions = Positions()
    problems: list[Problem] = []
    for path in files:
        try:
            raw, pos = yamlpos.load(path)
            if raw is None:
                continue
            # Check each file on its own; a null is legal (it removes what an earlier
            # directory's file set), so it is left out of this check.
            convert(_without_nulls(raw), pos, path, RegistryConfig)
            data = merge(data, raw, positions, pos)
        except ProblemError as exc:
            problems.extend(exc.problems)
        except YamlError as exc:
            problems.append(Problem(exc.where, "", exc.problem))
    if problems or not data:
        return RegistryConfig(), positions, problems
    return convert(data, positions, files[-1], RegistryConfig), positions, problems


def _without_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_nulls(v) for k, v in data.items() if v is not None}
    return data


def _check_registry(registry: Registry) -> list[Problem]:
    problems: list[Problem] = []
    virtuals = registry.virtuals()
    names = set(registry.entries) | set(virtuals)
    for virtual in virtuals:
        if virtual in registry.entries and virtuals[virtual] != [virtual]:
            entry = registry.entries[virtual]
            problems.append(
                Problem(
                    entry.positions.find(("name",)) or entry.file,
                    "name",
                    f"{virtual} is both a package and a virtual provided by {', '.join(virtuals[virtual])}",
                )
            )
    for entry in registry.entries.values():
        for dep in entry.manifest.requires:
            if canonicalize_name(dep) not in names:
                problems.append(
                    Problem(
                        entry.positions.find(("requires", dep)) or entry.file,
                        f"requires.{dep}",
                        f"no package or virtual named {dep!r} in the registry",
                    )
                )
    if not registry.config_files:
        return problems
    fallback = registry.config_files[-1]

    def at(*path: str | int) -> Position | Path:
        return registry.config_positions.find(path) or fallback

    for key in ("constraints", "overrides"):
        for i, text in enumerate(getattr(registry.config, key)):
            why = requirement_problem(text)
            if why:
                problems.append(Problem(at(key, i), f"{key}[{i}]", why))
    groups = registry.groups()
    for group, members in registry.config.groups.items():
        for i, member in enumerate(members):
            if canonicalize_name(member) not in names:
                problems.append(
                    Problem(
                        at("groups", group, i),
                        f"groups.{group}[{i}]",
                        f"unknown package or virtual {member!r}",
                    )
                )
    defaults = registry.config.defaults
    for i, name in enumerate(defaults.with_):
        if canonicalize_name(name) not in names:
            problems.append(
                Problem(
                    at("defaults", "with", i), f"defaults.with[{i}]", f"unknown package or virtual {name!r}"
                )
            )
    for i, name in enumerate(defaults.groups):
        if canonicalize_name(name) not in groups:
            problems.append(
                Problem(at("defaults", "groups", i), f"defaults.groups[{i}]", f"unknown group {name!r}")
            )
    for virtual, provider in defaults.providers.items():
        where, field_name = at("defaults", "providers", virtual), f"defaults.providers.{virtual}"
        if canonicalize_name(virtual) not in virtuals:
            problems.append(Problem(where, field_name, f"{virtual!r} is not a virtual of the registry"))
        elif canonicalize_name(provider) not in virtuals[canonicalize_name(virtual)]:
            problems.append(
                Problem(
                    where,
                    field_name,
                    f"{provider!r} does not provide {virtual!r} "
                    f"(its providers: {', '.join(virtuals[canonicalize_name(virtual)])})",
                )
            )
    return problems


def requirement_problem(text: str) -> str | None:
    """Why ``text`` is not a PEP 508 requirement for ``constraints``/``overrides``, or None."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        return f"invalid PEP 508 requirement {text!r} (e.g. \"numpy<2\" or \"setuptools<81\"): {exc}"
    if req.extras:
        return f"{text!r}: extras mean nothing in a constraint or override; name the distribution alone"
    return None


def load_with_problems(dirs: Sequence[Path], mode: Mode) -> tuple[Registry, list[Problem]]:
    """Read every directory; return the registry and all problems found on the way."""
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        raise NotFoundError(
            f"registry directory {missing[0]} does not exist",
            "give one with --registry DIR (repeatable) or HPM_REGISTRY=DIR[:DIR...]; "
            "the default is ./registry",
        )
    entries: dict[str, Entry] = {}
    configs: list[Path] = []
    problems: list[Problem] = []
    for directory in dirs:
        files = _scan(directory)
        problems.extend(files.problems)
        configs.extend(files.configs)
        here: dict[str, Entry] = {}
        for base in files.bases:
            try:
                entry = _read_entry(base, files.overlays.get(base, {}), mode)
            except ProblemError as exc:
                problems.extend(exc.problems)
                continue
            except YamlError as exc:
                problems.append(Problem(exc.where, "", exc.problem))
                continue
            twin = here.get(entry.name)
            if twin is not None:
                problems.append(
                    Problem(
                        entry.positions.find(("name",)) or base,
                        "name",
                        f"package {entry.name} is also defined in {twin.file}; "
                        "one name, one manifest per directory",
                    )
                )
                continue
            earlier = entries.get(entry.name)
            if earlier is not None:
                entry = Entry(
                    entry.manifest,
                    entry.file,
                    entry.overlays,
                    entry.positions,
                    (*earlier.overrides, earlier.file),
                )
            here[entry.name] = entry
        entries.update(here)
    config, config_positions, config_problems = _read_config(configs)
    problems.extend(config_problems)
    registry = Registry(
        tuple(dirs), mode, dict(sorted(entries.items())), config, tuple(configs), config_positions
    )
    problems.extend(_check_registry(registry))
    return registry, problems


def load(dirs: Sequence[Path], mode: Mode) -> Registry:
    """The registry for ``mode``; any problem raises DataError (65) listing them all."""
    registry, problems = load_with_problems(dirs, mode)
    if problems:
        raise problems_error(problems)
    return registry


def problems_error(problems: Sequence[Problem]) -> DataError:
    first = str(problems[0])
    more = f" (and {len(problems) - 1} more; run `hpm validate` for all)" if len(problems) > 1 else ""
    return DataError(first + more, "\n".join(map(str, problems[1:])) or None)


def validate(dirs: Sequence[Path]) -> tuple[list[Problem], list[str]]:
    """Problems in every mode (deduplicated), and warnings such as missing dev checkouts."""
    seen: dict[str, Problem] = {}
    warnings: list[str] = []
    for mode in MODES:
        registry, problems = load_with_problems(dirs, mode)
        for problem in problems:
            seen.setdefault(str(problem), problem)
        if mode == "dev":
            warnings.extend(_missing_checkouts(registry.entries.values()))
        else:
            warnings.extend(_missing_local_repositories(registry.entries.values()))
    return list(seen.values()), warnings


def _missing_local_repositories(entries: Iterable[Entry]) -> list[str]:
    """Git sources on this machine (``file://``, relative urls) whose directory is missing:
    locking, running and ``hpm dev checkout`` would exit 66 on them."""
    from urllib.parse import unquote, urlparse

    out = []
    for entry in entries:
        source = entry.manifest.sources.prod
        if isinstance(source, GitSource) and source.url.startswith("file://"):
            path = unquote(urlparse(source.url).path)
            if not os.path.isdir(path):
                out.append(f"{entry.where('sources', 'prod', 'url')}: {entry.name}: no git repository at "
                           f"{path}; lock, run and dev checkout of {entry.name} exit 66 until it exists")
    return out


def _missing_checkouts(entries: Iterable[Entry]) -> list[str]:
    out = []
    for entry in entries:
        path = entry.dev_checkout()
        if path is not None and not path.exists():
            out.append(
                f"{entry.where('sources', 'dev', 'path')}: {entry.name}: dev checkout {path} does not "
                f"exist; dev mode uses its prod source (hpm dev checkout {entry.name})"
            )
    return out
