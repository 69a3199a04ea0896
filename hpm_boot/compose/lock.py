"""Plan -> Lock: git refs frozen to commit SHAs, the closure pinned by ``uv pip compile``.

The lock is plain JSON (``docs/lock-format.md``). Everything an install needs is in
it: the direct requirements per installer, the pinned transitive closure with hashes
where the index has them, entrypoints, mode and the interpreter it was made for. It
holds no timestamp, so the same plan and pins give the same bytes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from hpm_boot import __version__, payload
from hpm_boot.compose.manifest import GitSource, LocalSource, PypiSource, UrlSource
from hpm_boot.compose.resolve import Plan, PlannedPackage
from hpm_boot.errors import (
    DataError,
    InstallerFailedError,
    InstallerMissingError,
    NotFoundError,
    UsageError,
)
from hpm_boot.log import mask_credentials
from hpm_boot.uvbin import find_uv

LOCK_VERSION = 1
_SHA = re.compile(r"^[0-9a-f]{40}$")


class LockedPackage(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """A package of the plan, as the installer will be asked for it."""

    name: str
    version: str
    manager: str
    requirement: str  # one requirements.txt line, e.g. "x @ git+https://h/x@<sha>" or "-e /p"
    source: str  # git | pypi | url | local
    source_mode: str
    commit: str | None = None  # git: the full SHA the ref pointed at when locked
    ref: str | None = None
    path: str | None = None  # local: absolute path
    editable: bool = False
    index: str | None = None  # pypi: the index URL this package comes from, when not the default
    extras: list[str] = msgspec.field(default_factory=list)
    entrypoints: dict[str, str] = msgspec.field(default_factory=dict)
    channels: list[str] = msgspec.field(default_factory=list)  # conda only


class Pin(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """One distribution of the transitive closure, exactly as ``uv pip compile`` pinned it."""

    name: str
    version: str | None = None  # None for direct references (git, url, path)
    url: str | None = None  # direct reference: git+…@sha, file://…, https://…
    editable: bool = False
    hashes: list[str] = msgspec.field(default_factory=list)
    markers: str | None = None


class Target(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """The interpreter a lock was made for (uv's ``--python-version``/``--python-platform``)."""

    python_version: str  # "3.12"
    python_platform: str | None = None  # uv's --python-platform, when given


class Lock(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """A frozen plan: the schema of ``hpm.lock.json`` (``docs/lock-format.md``)."""

    version: int
    hpm: str
    mode: str
    target: Target
    plan_digest: str
    packages: list[LockedPackage]
    pins: list[Pin]


# ---------------------------------------------------------------- git


def resolve_git_ref(url: str, ref: str, package: str, environ: Mapping[str, str] | None = None) -> str:
    """The full commit SHA ``ref`` (tag, branch or SHA) points at, asked of the remote.

    An annotated tag resolves to the commit it tags (the peeled ``^{}`` line), not to the
    tag object. Tags win over branches of the same name, as in git itself. A full
    40-hex SHA is taken as it is, without asking the remote.
    """
    if _SHA.match(ref):
        return ref
    where = mask_credentials(url)
    try:
        out = subprocess.run(
            ["git", "ls-remote", "--", url, f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}",
             f"refs/heads/{ref}", ref],
            capture_output=True, text=True, timeout=120,
            env={**(os.environ if environ is None else environ), "GIT_TERMINAL_PROMPT": "0"},
        )
    except FileNotFoundError:
        raise InstallerMissingError(f"{package}: git is not installed; it is needed to lock git sources",
                                    "install git, or lock where git is available") from None
    except subprocess.TimeoutExpired:
        raise InstallerFailedError(f"{package}: git ls-remote {where} timed out after 120 s") from None
    if out.returncode != 0:
        raise NotFoundError(
            f"{package}: cannot read git repository {where} (ref {ref!r})",
            mask_credentials(out.stderr.strip() or f"git ls-remote exited {out.returncode}"),
        )
    refs = dict(reversed(line.split("\t", 1)) for line in out.stdout.splitlines() if "\t" in line)
    for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if name in refs:
            return refs[name]
    hint = "give an existing tag, branch or full commit SHA in sources.prod.ref"
    if re.fullmatch(r"[0-9a-fA-F]{4,39}", ref):
        hint = "an abbreviated commit SHA cannot be looked up remotely: give all 40 hex digits"
    raise NotFoundError(f"{package}: git ref {ref!r} not found in {where}", hint)


# ---------------------------------------------------------------- requirements


def _extras(p: PlannedPackage) -> str:
    return f"[{','.join(p.extras)}]" if p.extras else ""


def lock_package(p: PlannedPackage, environ: Mapping[str, str] | None = None) -> LockedPackage:
    """Freeze one planned package: git refs become SHAs, paths stay absolute paths."""
    common: dict[str, Any] = {
        "name": p.name, "version": p.version, "manager": p.manager, "source_mode": p.source_mode,
        "extras": p.extras, "entrypoints": p.entrypoints,
        "channels": p.channels,
    }
    source = p.source
    if isinstance(source, GitSource):
        sha = resolve_git_ref(source.url, source.ref, p.name, environ)
        sub = f"#subdirectory={source.subdirectory}" if source.subdirectory else ""
        return LockedPackage(**common, requirement=f"{p.name}{_extras(p)} @ git+{source.url}@{sha}{sub}",
                             source="git", commit=sha, ref=source.ref)
    if isinstance(source, PypiSource):
        dist = source.package or p.name
        spec = source.version or f"=={p.version}"
        if p.manager == "conda":
            return LockedPackage(**common, requirement=f"{dist}{spec}", source="pypi")
        return LockedPackage(**common, requirement=f"{dist}{_extras(p)}{spec}", source="pypi",
                             index=source.index)
    if isinstance(source, UrlSource):
        frag = f"#sha256={source.sha256}" if source.sha256 else ""
        return LockedPackage(**common, requirement=f"{p.name}{_extras(p)} @ {source.url}{frag}",
                             source="url")
    assert isinstance(source, LocalSource)
    path = p.path or source.path
    if source.editable:
        return LockedPackage(**common, requirement=f"-e {path}{_extras(p)}", source="local",
                             path=path, editable=True)
    return LockedPackage(**common, requirement=f"{p.name}{_extras(p)} @ {Path(path).as_uri()}",
                         source="local", path=path)


def parse_compiled(text: str, editable_names: Mapping[str, str] | None = None) -> list[Pin]:
    """Parse ``uv pip compile`` output (requirements.txt with hashes) into pins.

    uv writes an editable requirement as ``-e PATH``, without the project's name;
    ``editable_names`` maps such paths to the names they were asked for (else the
    directory name is the best guess).
    """
    names = {os.path.normpath(k): v for k, v in (editable_names or {}).items()}
    pins: list[Pin] = []
    for raw in _logical_lines(text):
        parts = raw.split(" --hash=")
        line, hashes = parts[0].strip(), sorted(h.strip() for h in parts[1:])
        if not line:
            continue
        editable = line.startswith("-e ")
        if editable:
            url = line[3:].strip()
            name = names.get(os.path.normpath(url.removeprefix("file://"))) or _name_from_path(url)
            pins.append(Pin(name=name, url=url, editable=True, hashes=hashes))
            continue
        line, _, markers = line.partition(" ; ")
        if " @ " in line:
            name, _, url = line.partition(" @ ")
            pins.append(Pin(name=_dist_name(name), url=url.strip(), hashes=hashes, markers=markers or None))
        elif "==" in line:
            name, _, version = line.partition("==")
            pins.append(Pin(name=_dist_name(name), version=version.strip(), hashes=hashes,
                            markers=markers or None))
        else:
            raise InstallerFailedError(f"unexpected line in uv pip compile output: {mask_credentials(raw)}",
                                       "this uv writes a format hpm does not read; report it")
    return sorted(pins, key=lambda pin: (pin.name, pin.markers or ""))


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        # a comment starts at "#" after whitespace (as pip reads it): "#subdirectory=" and
        # "#sha256=" fragments of URLs are not comments
        stripped = re.split(r"\s#", line, maxsplit=1)[0]
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += " " + stripped.strip().rstrip("\\").strip()
        if not line.rstrip().endswith("\\"):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def _dist_name(requirement_name: str) -> str:
    """The normalized distribution name of ``name[extras]``."""
    from packaging.utils import canonicalize_name

    return canonicalize_name(requirement_name.split("[", 1)[0].strip())


def _name_from_path(url: str) -> str:
    return _dist_name(Path(url.removeprefix("file://").rstrip("/")).name)


# ---------------------------------------------------------------- compile


def compile_pins(
    requirements: Sequence[str],
    target: Target,
    uv: str,
    extra_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    editable_names: Mapping[str, str] | None = None,
) -> list[Pin]:
    """The pinned closure of ``requirements`` for ``target``, by ``uv pip compile``.

    uv missing: InstallerMissingError (69); uv failing: InstallerFailedError (74) whose
    message is uv's first error line and whose details are uv's whole stderr.
    """
    if not requirements:
        return []
    cmd = [uv, "pip", "compile", "-", "--generate-hashes", "--no-header", "--no-annotate",
           "--quiet", "--python-version", target.python_version, *extra_args]
    if target.python_platform:
        cmd += ["--python-platform", target.python_platform]
    try:
        out = subprocess.run(cmd, input="\n".join(requirements) + "\n", capture_output=True, text=True,
                             env=dict(environ if environ is not None else os.environ))
    except FileNotFoundError:
        raise InstallerMissingError(f"uv not found at {uv}", "install uv or set HPM_UV") from None
    except PermissionError:
        raise InstallerMissingError(f"uv at {uv} is not executable", "install uv or set HPM_UV") from None
    if out.returncode != 0:
        raise InstallerFailedError(
            mask_credentials(f"uv pip compile failed (exit {out.returncode}): {_first_error(out.stderr)}"),
            mask_credentials(out.stderr.strip()),
        )
    return parse_compiled(out.stdout, editable_names)


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        if line and not line.startswith(("Resolved", "Using", "warning:")):
            return line.removeprefix("error: ").removeprefix("×").strip()
    return "see the output above"


def plan_digest(plan: Plan) -> str:
    """A digest of what the lock was made from, independent of where the registry lives.

    The plan minus the registry directories, the manifest file names and the warnings:
    a registry copied elsewhere gives the same digest. Local source paths stay in (the
    lock records them), so a dev plan moved elsewhere does not.
    """
    data = msgspec.to_builtins(plan)
    data.pop("registry", None)
    data.pop("warnings", None)
    for p in data["packages"]:
        p.pop("manifest", None)
    return payload.digest(data)


def default_target(python_version: str | None, python_platform: str | None) -> Target:
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    if not re.fullmatch(r"3\.\d+(\.\d+)?", version):
        raise UsageError(f"--python-version {version!r}: expected a version like 3.12")
    if python_platform is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", python_platform):
        raise UsageError(f"--python-platform {python_platform!r}: expected a platform in uv's spelling, "
                         "like x86_64-manylinux_2_28")
    return Target(python_version=version, python_platform=python_platform)


def make_lock(
    plan: Plan,
    target: Target,
    uv: str | None = None,
    uv_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Lock:
    """Freeze ``plan`` for ``target``: resolve git SHAs, compile the closure with uv.

    Packages managed by uv or pip are compiled together (one closure, one resolution);
    conda packages are recorded as conda specs and not compiled. A pypi source with its
    own ``index`` adds that index to the compile (``--extra-index-url``). ``environ`` is the
    environment of git and uv (default ``os.environ``); uv is ``uv``, else found in it.
    """
    packages = [lock_package(p, environ) for p in plan.packages]
    compiled = [p for p in packages if p.manager in ("uv", "pip")]
    requirements = [p.requirement for p in compiled]
    indexes = sorted({p.index for p in compiled if p.index})
    extra = [*uv_args, *(a for i in indexes for a in ("--extra-index-url", i))]
    editables = {p.path: p.name for p in compiled if p.editable and p.path}
    pins = (compile_pins(requirements, target, uv or find_uv(environ), extra, environ, editables)
            if requirements else [])
    return Lock(
        version=LOCK_VERSION,
        hpm=__version__,
        mode=plan.mode,
        target=target,
        plan_digest=plan_digest(plan),
        packages=packages,
        pins=pins,
    )


def lock_warnings(lock: Lock) -> list[str]:
    """What to tell whoever carries ``lock`` elsewhere (``hpm lock``, ``hpm docker run``)."""
    local = [p.name for p in lock.packages if p.source == "local"]
    if not local:
        return []
    return [f"this lock has local paths ({', '.join(local)}): it installs only where those paths "
            "exist (mounted at the same place: in a container, -v PATH:PATH)"]


def to_dict(lock: Lock) -> dict[str, Any]:
    """The lock as plain JSON data (what the payload carries)."""
    return msgspec.to_builtins(lock)


def to_json(lock: Lock) -> bytes:
    """``hpm.lock.json``: sorted keys, two-space indent, a final newline; no timestamp."""
    return msgspec.json.format(msgspec.json.encode(lock, order="sorted"), indent=2) + b"\n"


def applicable(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a lock as JSON data) with only the pins whose environment markers hold for
    the interpreter running hpm, and those without their markers (``target.applicable``):
    markers decided by packaging, which decides them all."""
    from packaging.markers import InvalidMarker, Marker

    from hpm_boot.target import applicable as keep_applicable

    def holds(markers: str) -> bool:
        try:
            return Marker(markers).evaluate()
        except InvalidMarker as exc:
            raise DataError(f"the lock has an invalid environment marker {markers!r}", str(exc)) from None

    kept = keep_applicable(data, holds)
    assert kept is not None  # holds never answers None
    return kept


def from_dict(data: Any, source: str) -> Lock:
    """Check a decoded lock's shape; anything else is DataError (65) saying what was found."""
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a lock (a JSON object), found {payload.kind(data)}")
    if "version" not in data:
        found = ", ".join(sorted(map(str, data))[:6]) or "nothing"
        raise DataError(f"{source}: expected a lock with a 'version' field, found keys: {found}",
                        "is this a lock made by `hpm lock`? (`hpm plan --json` output is not a lock)")
    version = data["version"]
    if version != LOCK_VERSION or isinstance(version, bool):
        raise DataError(f"{source}: lock format version {version!r}; this hpm reads version {LOCK_VERSION}",
                        "make the lock again with this hpm (hpm lock), or use the hpm that made it")
    try:
        return msgspec.convert(data, Lock, strict=True)
    except msgspec.ValidationError as exc:
        raise DataError(f"{source}: not a valid lock: {exc}",
                        "docs/lock-format.md has the lock schema; make it again with `hpm lock`") from None
