"""Plan -> Lock: git refs frozen to commit SHAs, the closure pinned by ``uv pip compile``.

The lock is plain JSON (``docs/lock-format.md``). Everything an install needs is in
it: the direct requirements per installer, the pinned transitive closure with hashes
where the index has them, entrypoints, mode and the interpreter it was made for. It
holds no timestamp, so the same plan and pins give the same bytes. The distribution
each source builds is named in the lock, found out when the manifest does not say
(section "distribution names" below).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from packaging.utils import canonicalize_name

from hpm_boot import __version__, contract, payload
from hpm_boot.compose.manifest import GitSource, LocalSource, PypiSource, Source, UrlSource
from hpm_boot.compose.resolve import Plan, PlannedPackage
from hpm_boot.errors import (
    DataError,
    HpmError,
    InstallerFailedError,
    InstallerMissingError,
    NotFoundError,
    ResolutionError,
    UsageError,
)
from hpm_boot.log import mask_credentials, strip_credentials
from hpm_boot.uvbin import find_uv

LOCK_VERSION = 2
READS_VERSIONS = (2,)  # lock format versions this hpm reads
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
    distribution: str | None = None  # the distribution it installs, when not named ``name``
    extras: list[str] = msgspec.field(default_factory=list)
    entrypoints: dict[str, str] = msgspec.field(default_factory=dict)
    channels: list[str] = msgspec.field(default_factory=list)  # conda only


class File(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """One file a pin may be installed from: a wheel its target accepts, or the sdist."""

    name: str  # the file name, e.g. "pyyaml-6.0.2-cp312-cp312-manylinux_2_17_x86_64.whl"
    hash: str  # "sha256:<hex>"
    size: int | None = None  # bytes, when the index says


class Pin(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """One distribution of the transitive closure, exactly as ``uv pip compile`` pinned it."""

    name: str
    version: str | None = None  # None for direct references (git, url, path)
    url: str | None = None  # direct reference: git+…@sha, file://…, https://…
    editable: bool = False
    hashes: list[str] = msgspec.field(default_factory=list)  # direct references with a hash
    files: list[File] = msgspec.field(default_factory=list)  # index / --find-links distributions
    targets: list[int] = msgspec.field(default_factory=list)  # indexes into Lock.targets; empty: all
    markers: str | None = None


class Target(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """An interpreter a lock was made for (uv's ``--python-version``/``--python-platform``)."""

    python_version: str  # "3.12"
    python_platform: str | None = None  # uv's --python-platform (hpm lock always records one)


class Lock(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """A frozen plan: the schema of ``hpm.lock.json`` (``docs/lock-format.md``)."""

    version: int
    hpm: str
    mode: str
    targets: list[Target]
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


# ---------------------------------------------------------------- distribution names
# The distribution a package's source builds: named by the manifest, or found out.
#
# A manifest's name is the plugin's name in the registry; the distribution its source
# builds may be called otherwise (manifest ``vlm-adapter-qwen``, project
# ``qwen-adapter``, module ``api_wrapper``). ``sources.*.package`` names it; when a git,
# url or local source does not, hpm finds the name out once and remembers it:
#
# - a local checkout whose ``pyproject.toml`` states ``[project] name`` statically: read
#   from that file, no build;
# - otherwise one ``uv pip compile --no-deps`` of the unnamed requirements (uv builds
#   their metadata, and names them in its output), its answers cached in
#   ``HPM_CACHE/distribution-names.json`` keyed by what fixes the name: the commit SHA of
#   a git source (and its subdirectory), the URL and sha256 of a url source, the path and
#   the size and mtime of ``pyproject.toml``/``setup.cfg``/``setup.py`` of a local one.
#
# So a name costs a build only the first time a commit or a source tree state is seen;
# ``hpm run`` with the same locked commit starts no build for it (docs/manifest.md).

CACHE_FILE = "distribution-names.json"
BUILD_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
#: uv 0.13's words for a package: name that disagrees with what the source builds
_MISMATCH = (
    re.compile(r"Package metadata name `(?P<built>[^`]+)` does not match given name `(?P<given>[^`]+)`"),
    re.compile(r"Requested package name `(?P<given>[^`]+)` does not match `(?P<built>[^`]+)` in the "
               r"distribution filename"),
)
NOT_A_PROJECT = ("does not appear to be a Python project", "neither `pyproject.toml` nor `setup.py`")


def explicit(source: Source, name: str) -> str | None:
    """The distribution ``source`` names (``package:``), normalized; pypi defaults to ``name``."""
    package = getattr(source, "package", None)
    if package:
        return canonicalize_name(package)
    return canonicalize_name(name) if isinstance(source, PypiSource) else None


def direct_url(p: PlannedPackage, commit: str | None) -> str:
    """The unnamed direct reference of a git, url or local source (what uv is asked to name)."""
    source = p.source
    if isinstance(source, GitSource):
        sub = f"#subdirectory={source.subdirectory}" if source.subdirectory else ""
        return f"git+{source.url}@{commit or source.ref}{sub}"
    if isinstance(source, UrlSource):
        return source.url  # uv reads no fragment on an unnamed file: URL; the pin checks the hash
    assert isinstance(source, LocalSource)
    return Path(p.path or source.path).as_uri()


def static_name(path: str) -> str | None:
    """``[project] name`` of ``path/pyproject.toml`` when it is stated there (not dynamic)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: uv answers instead
        return None
    try:
        with open(os.path.join(path, "pyproject.toml"), "rb") as f:
            project = tomllib.load(f).get("project")
    except (OSError, ValueError):
        return None
    if not isinstance(project, dict) or "name" in project.get("dynamic", []):
        return None
    name = project.get("name")
    return canonicalize_name(name) if isinstance(name, str) and name else None


def cache_key(p: PlannedPackage, commit: str | None) -> str | None:
    """What fixes the name of ``p``'s distribution, or None when nothing does."""
    source = p.source
    if isinstance(source, GitSource):
        return direct_url(p, commit) if commit else None
    if isinstance(source, UrlSource):
        return _url_key(source)
    if isinstance(source, LocalSource):
        path = p.path or source.path
        stats = []
        for name in BUILD_FILES:
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(path, name))
                stats.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        return f"{Path(path).as_uri()}|{'|'.join(stats)}" if stats else None
    return None


def _url_key(source: UrlSource) -> str:
    return source.url + (f"#sha256={source.sha256}" if source.sha256 else "")


def _shown_key(source: Source) -> str | None:
    """The key of the name last found for a git ref, for display (``hpm plan``, ``why``)
    only: a ref may move, so locking never trusts it."""
    if isinstance(source, GitSource):
        return f"shown:git+{source.url}@{source.ref}#{source.subdirectory or ''}"
    return None


def known(source: Source, name: str, path: str | None, cache: Mapping[str, str]) -> str | None:
    """The distribution ``source`` builds as far as it is known without building: named
    by ``package:``, stated in a local ``pyproject.toml``, or found out before (``cache``,
    from ``cached_names``)."""
    found = explicit(source, name)
    if found is None and isinstance(source, LocalSource):
        found = static_name(path or source.path)
    if found is None:
        key = _url_key(source) if isinstance(source, UrlSource) else _shown_key(source)
        found = cache.get(key) if key else None
    return found


def cached_names(environ: Mapping[str, str]) -> dict[str, str]:
    """The names found out before (``distribution-names.json``), for ``known``."""
    return _read_cache(cache_file(environ))


def cache_file(environ: Mapping[str, str]) -> str | None:
    """``distribution-names.json`` in HPM_CACHE, else XDG_CACHE_HOME/hpm, else ~/.cache/hpm."""
    if environ.get(contract.CACHE):
        base = environ[contract.CACHE]
    elif environ.get("XDG_CACHE_HOME"):
        base = os.path.join(environ["XDG_CACHE_HOME"], "hpm")
    elif environ.get("HOME"):
        base = os.path.join(environ["HOME"], ".cache", "hpm")
    else:
        return None
    return os.path.join(base, CACHE_FILE)


def _read_cache(path: str | None) -> dict[str, str]:
    try:
        with open(path or "", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _write_cache(path: str | None, data: Mapping[str, str]) -> None:
    if path is None:
        return
    from hpm_boot.fsutil import write_atomic

    with contextlib.suppress(OSError):  # best effort: without it the next lock asks uv again
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, json.dumps(dict(sorted(data.items())), indent=1).encode())


def discover(
    packages: Sequence[tuple[PlannedPackage, str | None]],
    uv: str,
    uv_args: Sequence[str],
    python_version: str,
    environ: Mapping[str, str],
) -> dict[str, str]:
    """Package name -> the normalized name of the distribution its source builds.

    ``packages`` are (planned package, locked commit or None). Names given by
    ``package:`` (and pypi's default) are taken as they are; the others come from the
    project file, the cache, or one ``uv pip compile --no-deps`` for all that remain.
    """
    out: dict[str, str] = {}
    asks: dict[str, tuple[PlannedPackage, str | None]] = {}  # direct URL -> package
    path = cache_file(environ)
    cache = None
    for p, commit in packages:
        name = explicit(p.source, p.name)
        if isinstance(p.source, LocalSource):
            # uv checks a named requirement against its metadata, but not an editable path
            built = static_name(p.path or p.source.path)
            if name is not None and built is not None and built != name:
                raise DataError(
                    f"{p.name}: {p.manifest}: sources.{p.source_mode}.package says {name!r}, but "
                    f"{p.path or p.source.path} builds {built!r}",
                    f"set package: {built} (or remove it: hpm finds the name out)")
            name = name or built
        if name is None:
            cache = _read_cache(path) if cache is None else cache
            key = cache_key(p, commit)
            name = cache.get(key) if key else None
        if name is not None:
            out[p.name] = name
        else:
            asks[direct_url(p, commit)] = (p, commit)
    if not asks:
        return out
    found = _ask_uv(asks, uv, uv_args, python_version, environ)
    cache = dict(cache or {})
    for url, (p, commit) in asks.items():
        out[p.name] = found[url]
        for key in (cache_key(p, commit), _shown_key(p.source)):
            if key:
                cache[key] = found[url]
    _write_cache(path, cache)
    return out


def _normal_url(url: str) -> str:
    return url.strip().rstrip("/")


def _ask_uv(asks: Mapping[str, tuple[PlannedPackage, str | None]], uv: str, uv_args: Sequence[str],
            python_version: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Direct URL -> distribution name, from uv's compile of the unnamed requirements."""
    cmd = compile_cmd(uv, python_version, None, uv_args, "--no-deps", "--no-annotate")
    try:
        out = subprocess.run(cmd, input="\n".join(asks) + "\n", capture_output=True, text=True,
                             env=dict(environ))
    except OSError:
        raise InstallerMissingError(f"uv not found at {uv}", "install uv or set HPM_UV") from None
    if out.returncode != 0:
        raise build_error(out.stderr, [p for p, _ in asks.values()], out.returncode)
    found: dict[str, str] = {}
    for line in out.stdout.splitlines():
        name, sep, url = line.partition(" @ ")
        if sep:
            found[_normal_url(url.split(" ;", 1)[0])] = canonicalize_name(name.split("[", 1)[0])
    missing = [u for u in asks if _normal_url(u) not in found]
    if missing:
        p = asks[missing[0]][0]
        raise InstallerFailedError(
            f"{p.name}: uv did not name the distribution of {mask_credentials(missing[0])}",
            "give it in the manifest: sources.<mode>.package: NAME\n" + mask_credentials(out.stdout))
    return {u: found[_normal_url(u)] for u in asks}


def build_error(stderr: str, packages: Sequence[PlannedPackage],
                code: int) -> InstallerFailedError | DataError:
    """uv failed to build or name a source: say which package, and of what source."""
    text = mask_credentials(stderr.strip())
    culprit = next((p for p in packages if _mentions(text, p)), packages[0] if len(packages) == 1 else None)
    label = f"{culprit.name} ({describe(culprit)})" if culprit else "a git, url or local source"
    if any(words in text for words in NOT_A_PROJECT):
        return DataError(f"{label} builds no Python distribution: no pyproject.toml or setup.py there",
                         "point the manifest at a Python project (sources.*.path, url, subdirectory)\n"
                         + text)
    first = next((line.strip().removeprefix("error: ") for line in text.splitlines() if line.strip()), "")
    return InstallerFailedError(f"uv could not build {label} to read its name (exit {code}): {first}", text)


def describe(p: PlannedPackage) -> str:
    """The source of ``p`` in a message: its type and where (credentials masked)."""
    source = p.source
    if isinstance(source, GitSource):
        return mask_credentials(f"git {source.url}@{source.ref}")
    if isinstance(source, UrlSource):
        return mask_credentials(f"url {source.url}")
    if isinstance(source, LocalSource):
        return f"local {p.path or source.path}"
    return "pypi"


def _mentions(text: str, p: PlannedPackage) -> bool:
    source = p.source
    if isinstance(source, GitSource | UrlSource):
        return mask_credentials(source.url) in text
    if isinstance(source, LocalSource):
        return (p.path or source.path) in text
    return False


def mismatch_error(stderr: str, packages: Sequence[PlannedPackage]) -> DataError | None:
    """uv's "metadata name X does not match given name Y" as the manifest's error, or None."""
    m = next((m for m in (r.search(stderr) for r in _MISMATCH) if m), None)
    if m is None:
        return None
    built, given = canonicalize_name(m["built"]), canonicalize_name(m["given"])
    p = next((p for p in packages if explicit(p.source, p.name) == given), None)
    where = f"{p.manifest}: sources.{p.source_mode}.package" if p else "sources.*.package"
    who = p.name if p else given
    return DataError(f"{who}: {where} says {given!r}, but its source builds {built!r}",
                     f"set package: {built} (or remove it: hpm finds the name out)\n"
                     f"{mask_credentials(stderr.strip())}")


# ---------------------------------------------------------------- requirements


def _extras(p: PlannedPackage) -> str:
    return f"[{','.join(p.extras)}]" if p.extras else ""


def lock_package(p: PlannedPackage, *, commit: str | None = None, dist: str | None = None) -> LockedPackage:
    """Freeze one planned package: git refs become SHAs, paths stay absolute paths.

    ``commit`` is the SHA a git source's ref points at (``resolve_git_ref``); ``dist``
    the distribution its source builds (``discover``): the requirement names it, so uv
    checks it against the built metadata.
    """
    dist = dist or explicit(p.source, p.name) or p.name
    common: dict[str, Any] = {
        "name": p.name, "version": p.version, "manager": p.manager, "source_mode": p.source_mode,
        "extras": p.extras, "entrypoints": p.entrypoints,
        "channels": p.channels, "distribution": dist if dist != p.name else None,
    }
    source = p.source
    if isinstance(source, GitSource):
        assert commit is not None, "a git source is locked at the commit its ref resolved to"
        sub = f"#subdirectory={source.subdirectory}" if source.subdirectory else ""
        return LockedPackage(**common, requirement=f"{dist}{_extras(p)} @ git+{source.url}@{commit}{sub}",
                             source="git", commit=commit, ref=source.ref)
    if isinstance(source, PypiSource):
        spec = source.version or f"=={p.version}"
        if p.manager == "conda":  # conda names are not PEP 503 names: as the manifest spells it
            return LockedPackage(**common, requirement=f"{source.package or p.name}{spec}", source="pypi")
        # the lock keeps the index without credentials: the installing environment has its
        # own (uv's UV_INDEX_* variables, netrc, keyring)
        return LockedPackage(**common, requirement=f"{dist}{_extras(p)}{spec}", source="pypi",
                             index=strip_credentials(source.index) if source.index else None)
    if isinstance(source, UrlSource):
        frag = f"#sha256={source.sha256}" if source.sha256 else ""
        return LockedPackage(**common, requirement=f"{dist}{_extras(p)} @ {source.url}{frag}",
                             source="url")
    assert isinstance(source, LocalSource)
    path = p.path or source.path
    if source.editable:
        return LockedPackage(**common, requirement=f"-e {path}{_extras(p)}", source="local",
                             path=path, editable=True)
    return LockedPackage(**common, requirement=f"{dist}{_extras(p)} @ {Path(path).as_uri()}",
                         source="local", path=path)


def dist_name(requirement_name: str) -> str:
    """The normalized distribution name of ``name[extras]``."""
    return canonicalize_name(requirement_name.split("[", 1)[0].strip())


# ---------------------------------------------------------------- compile


def compile_cmd(uv: str, python_version: str, python_platform: str | None, extra_args: Sequence[str],
                *flags: str) -> list[str]:
    """``uv pip compile`` of requirements on stdin, quiet and headerless, for a Python
    version (and platform), with ``flags`` saying what to write."""
    cmd = [uv, "pip", "compile", "-", *flags, "--no-header", "--quiet", "--python-version", python_version,
           *extra_args]
    return [*cmd, "--python-platform", python_platform] if python_platform else cmd


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        if line and not line.startswith(("Resolved", "Using", "warning:")):
            return line.removeprefix("error: ").removeprefix("×").strip()
    return "see the output above"


def plan_digest(plan: Plan) -> str:
    """A digest of what the lock was made from, independent of where the registry lives.

    The plan minus the registry directories, the manifest file names and the warnings
    (and the files and lines of the registry's constraints and overrides, but not the
    requirements): a registry copied elsewhere gives the same digest. Local source paths stay in (the
    lock records them), so a dev plan moved elsewhere does not.
    """
    data = msgspec.to_builtins(plan)
    data.pop("registry", None)
    data.pop("warnings", None)
    for p in data["packages"]:
        p.pop("manifest", None)
    for key in ("constraints", "overrides"):  # the requirements, not where they were written
        entries = [c["requirement"] for c in data.pop(key, [])]
        if entries:  # absent when empty: digests of plans without them are unchanged
            data[key] = entries
    return payload.digest(data)


def default_targets(python_version: str | Sequence[str] | None,
                    python_platforms: Sequence[str] | None) -> list[Target]:
    """The targets ``hpm lock`` makes a lock for: ``--python-version`` (default the running
    Python's X.Y) with each ``--python-platform`` (repeatable; default this machine's, in
    uv's spelling). A platform hpm cannot tell the tags of is a usage error (2) naming it."""
    from hpm_boot.platforms import host_platform, host_platform_name, known_platforms, parse_platform

    if python_version is not None and not isinstance(python_version, str):
        versions = list(dict.fromkeys(python_version))
        if len(versions) > 1:
            raise UsageError(f"--python-version given {len(versions)} times ({', '.join(versions)}): a lock "
                             "is for one --python-version", "make one lock per Python version")
        python_version = versions[0] if versions else None
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    if not re.fullmatch(r"3\.\d+(\.\d+)?", version):
        raise UsageError(f"--python-version {version!r}: expected a version like 3.12")
    platforms = list(dict.fromkeys(python_platforms or [host_platform_name(host_platform())]))
    for platform in platforms:
        if parse_platform(platform) is None:
            raise UsageError(f"--python-platform {platform!r}: not a platform hpm knows the wheel tags of",
                             f"use one of: {', '.join(known_platforms())}")
    return [Target(python_version=version, python_platform=platform) for platform in platforms]


def default_target(python_version: str | None, python_platform: str | None) -> Target:
    """One target (``default_targets`` with at most one platform)."""
    return default_targets(python_version, [python_platform] if python_platform else None)[0]


def describe_targets(targets: Sequence[Target]) -> str:
    return "; ".join(f"Python {t.python_version} {t.python_platform}" for t in targets)


def parse_pylock(text: str) -> dict[str, Any]:
    """uv's ``pylock.toml`` as TOML data; text that is not TOML is 74 saying so."""
    loads: Callable[[str], Any]
    try:
        from tomllib import loads
    except ModuleNotFoundError:  # Python 3.10: msgspec reads TOML with tomli
        loads = msgspec.toml.decode
    try:
        return loads(text)
    except ImportError:
        raise InstallerMissingError("hpm lock on Python 3.10 needs tomli to read uv's pylock.toml",
                                    "pip install tomli, or run hpm lock with Python 3.11+") from None
    except ValueError as exc:
        raise InstallerFailedError(f"uv pip compile wrote a pylock.toml hpm cannot read: {exc}") from None


def package_files(package: Mapping[str, Any]) -> list[File]:
    """The files uv's ``pylock.toml`` lists for one package: its wheels (uv lists exactly
    those the target's tags accept, in its own order), else its sdist. A file without a
    well-formed sha256 is 74 naming it: a lock file hpm cannot verify is not written."""
    entries = package.get("wheels") or ([package["sdist"]] if package.get("sdist") else [])
    files = []
    for entry in entries:
        where = entry.get("url") or entry.get("path") or ""
        name = entry.get("name") or where.rstrip("/").rpartition("/")[2]
        sha = entry.get("hashes", {}).get("sha256") if isinstance(entry.get("hashes"), dict) else None
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise InstallerFailedError(
                mask_credentials(f"pylock.toml: {package['name']} {package['version']}: the file "
                                 f"{name or where or '?'} has {'no' if sha is None else 'a malformed'} "
                                 "sha256 hash"),
                "the index must give every file's sha256 (PEP 503 #sha256= or PEP 691 hashes)")
        files.append(File(name=name.partition("#")[0], hash=f"sha256:{sha}", size=entry.get("size")))
    return files


def pylock_pins(data: Mapping[str, Any], requirements: Sequence[str] = (),
                editable_names: Mapping[str, str] | None = None) -> list[Pin]:
    """The pins of uv's ``pylock.toml`` (parsed), sorted by name, as uv's requirements.txt
    output names them.

    A package from an index or a wheelhouse is its name and version with its files
    (``package_files``, in uv's order). A direct reference is its URL, without a version:
    ``git+URL@COMMIT#subdirectory=...`` of a ``vcs``; the ``file://`` URL of a
    ``directory``, or its path when editable (named by ``editable_names``, path -> the
    name it was asked for, else by uv); an ``archive``'s URL, with its hashes.

    pylock.toml normalizes a reference (a ``file:`` archive becomes a path, a
    ``#sha256=`` fragment moves to ``hashes``) where requirements.txt writes it as it was
    asked for: so a reference that ``requirements`` (what was compiled) ask for under the
    same name, the same up to the fragment, keeps the requirement's text. A package's
    ``marker`` (why the resolution took it) is left out: it holds on the target compiled
    for, and requirements.txt of one target writes none.
    """
    asked: dict[str, str] = {}
    for line in requirements:
        name, sep, url = line.partition(" @ ")
        if sep and not line.startswith("-"):
            asked[dist_name(name)] = url.strip()
    editables = {os.path.normpath(k): (k, v) for k, v in (editable_names or {}).items()}
    pins: list[Pin] = []
    for package in data.get("packages", []):
        name = dist_name(package["name"])
        vcs, directory, archive = (package.get(k) for k in ("vcs", "directory", "archive"))
        if isinstance(directory, Mapping) and directory.get("editable"):
            path, asked_name = editables.get(os.path.normpath(directory["path"]), (directory["path"], name))
            pins.append(Pin(name=asked_name, url=path, editable=True))
            continue
        hashes: list[str] = []
        if isinstance(vcs, Mapping):
            sub = f"#subdirectory={vcs['subdirectory']}" if vcs.get("subdirectory") else ""
            url = f"{vcs.get('type', 'git')}+{vcs['url']}@{vcs['commit-id']}{sub}"
        elif isinstance(directory, Mapping):
            url = Path(os.path.abspath(directory["path"])).as_uri()
        elif isinstance(archive, Mapping):
            url = archive.get("url") or Path(os.path.abspath(archive["path"])).as_uri()
            hashes = sorted(f"{alg}:{value}" for alg, value in (archive.get("hashes") or {}).items())
        elif "version" in package:
            pins.append(Pin(name=name, version=str(package["version"]), files=package_files(package)))
            continue
        else:
            raise InstallerFailedError(f"pylock.toml: {name} has neither a version nor a direct reference",
                                       "this uv writes a pylock.toml hpm does not read; report it")
        if name in asked and asked[name].partition("#")[0] == url.partition("#")[0]:
            url = asked[name]
        pins.append(Pin(name=name, url=url, hashes=hashes))
    return sorted(pins, key=lambda pin: pin.name)


def run_compile(cmd: list[str], requirements: Sequence[str], environ: Mapping[str, str] | None,
                 target: Target | None = None) -> str:
    try:
        out = subprocess.run(cmd, input="\n".join(requirements) + "\n", capture_output=True, text=True,
                             env=dict(environ if environ is not None else os.environ))
    except FileNotFoundError:
        raise InstallerMissingError(f"uv not found at {cmd[0]}", "install uv or set HPM_UV") from None
    except PermissionError:
        raise InstallerMissingError(f"uv at {cmd[0]} is not executable", "install uv or set HPM_UV") from None
    if out.returncode != 0:
        nowheel = re.search(r"Because (\S+?)==(\S+) has no wheels with a matching platform tag", out.stderr)
        if nowheel and target is not None:
            raise ResolutionError(
                f"{nowheel.group(1)} {nowheel.group(2)} has no file for the target Python "
                f"{target.python_version} {target.python_platform}: no wheel its tags accept, and no sdist",
                mask_credentials(out.stderr.strip()))
        raise InstallerFailedError(
            mask_credentials(f"uv pip compile failed (exit {out.returncode}): {_first_error(out.stderr)}"),
            mask_credentials(out.stderr.strip()),
        )
    return out.stdout


def lock_target(
    requirements: Sequence[str],
    target: Target,
    uv: str,
    extra_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    editable_names: Mapping[str, str] | None = None,
    pylocks: list[dict[str, Any]] | None = None,
) -> list[Pin]:
    """The closure of ``requirements`` for one target, from one ``uv pip compile --format
    pylock.toml`` (PEP 751; ``pylock_pins``): each pin from an index or wheelhouse with
    the files the target can install, best first (``best_first``), and no other hash; a
    pin without one is 78 naming it and the target. ``editable_names``: path -> the name
    of an editable requirement; ``pylocks``, when given, receives uv's pylock.toml.

    uv missing: InstallerMissingError (69); uv failing: InstallerFailedError (74) whose
    message is uv's first error line and whose details are uv's whole stderr.
    """
    cmd = compile_cmd(uv, target.python_version, target.python_platform, extra_args, "--format",
                      "pylock.toml")
    data = parse_pylock(run_compile(cmd, requirements, environ, target))
    if pylocks is not None:
        pylocks.append(data)
    rank = tag_rank(target)
    out = []
    for pin in pylock_pins(data, requirements, editable_names):
        if pin.version is None:
            out.append(pin)
            continue
        if not pin.files:
            raise ResolutionError(f"{pin.name} {pin.version} has no file for the target Python "
                                  f"{target.python_version} {target.python_platform}",
                                  "choose another --python-platform, or a version with a wheel for it")
        out.append(msgspec.structs.replace(pin, files=best_first(pin.files, rank)))
    return out


def target_tags(target: Target) -> list[Any]:
    """The wheel tags ``target`` accepts, best first, in ``packaging.tags`` order (as
    ``sys_tags`` would list them on such an interpreter): CPython's own ABI, abi3, none,
    then the pure tags; platforms from the target's manylinux/musllinux level down (with
    the legacy manylinux2014/2010/1 aliases where packaging puts them), macOS versions
    down from 13.0 (uv's default deployment target), Windows' one tag."""
    from packaging import tags

    from hpm_boot.platforms import parse_platform

    parsed = parse_platform(target.python_platform or "")
    if parsed is None:
        return []
    os_name, machine, libc, level = parsed
    platforms: list[str] = []
    if os_name == "linux" and libc == "glibc":
        floor = 5 if machine == "x86_64" else 17
        for minor in range(int(level.split(".")[1]), floor - 1, -1):
            platforms.append(f"manylinux_2_{minor}_{machine}")
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(minor)
            if legacy and (minor == 17 or machine == "x86_64"):
                platforms.append(f"{legacy}_{machine}")
    elif os_name == "linux":
        platforms = [f"musllinux_1_{minor}_{machine}" for minor in range(int(level.split(".")[1]), -1, -1)]
    elif os_name == "macos":
        platforms = list(tags.mac_platforms((13, 0), machine))
    else:
        platforms = [{"amd64": "win_amd64", "arm64": "win_arm64"}.get(machine, "win32")]
    major, minor = (int(x) for x in target.python_version.split(".")[:2])
    version = (major, minor)
    return [*tags.cpython_tags(version, [f"cp{major}{minor}"], platforms),
            *tags.compatible_tags(version, f"cp{major}{minor}", platforms)]


def tag_rank(target: Target) -> dict[Any, int]:
    """Each tag ``target`` accepts -> its place in ``target_tags`` (0 is best)."""
    return {tag: i for i, tag in reversed(list(enumerate(target_tags(target))))}


def best_first(files: Sequence[File], rank: Mapping[Any, int]) -> list[File]:
    """``files`` ordered by the best of each wheel's tags (``tag_rank`` of the target);
    the sdist, and anything hpm cannot rank, after the wheels, in uv's order."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    last = len(rank)

    def key(f: File) -> int:
        if not f.name.endswith(".whl"):
            return last + 1
        try:
            return min((rank.get(t, last) for t in parse_wheel_filename(f.name)[3]), default=last)
        except InvalidWheelFilename:
            return last
    return sorted(files, key=key)


def merge_targets(per_target: Sequence[Sequence[Pin]]) -> list[Pin]:
    """One pin list for several targets: a pin the same on every target once, with the
    union of its files (the first target's first); a pin only some targets have lists
    their indexes in ``targets``."""
    merged: dict[tuple[Any, ...], tuple[Pin, list[int], list[File]]] = {}
    for index, pins in enumerate(per_target):
        for pin in pins:
            key = (pin.name, pin.version, pin.url, pin.editable, pin.markers, tuple(pin.hashes))
            if key not in merged:
                merged[key] = (pin, [], [])
            _, indexes, files = merged[key]
            indexes.append(index)
            files.extend(f for f in pin.files if f not in files)
    everywhere = list(range(len(per_target)))
    out = [msgspec.structs.replace(pin, files=files, targets=[] if indexes == everywhere else indexes)
           for pin, indexes, files in merged.values()]
    return sorted(out, key=lambda pin: (pin.name, pin.version or "", pin.markers or "", pin.targets))


def source_index(p: PlannedPackage) -> str | None:
    """The index a planned pypi package names in its manifest, as given (credentials too)."""
    return p.source.index if isinstance(p.source, PypiSource) else None


def make_lock(
    plan: Plan,
    targets: Target | Sequence[Target],
    uv: str | None = None,
    uv_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    pylocks: list[dict[str, Any]] | None = None,
) -> Lock:
    """Freeze ``plan`` for ``targets``: resolve git SHAs, compile the closure with uv for
    each target, keep each pin's files its targets can install.

    Packages managed by uv or pip are compiled together (one closure, one resolution per
    target); conda packages are recorded as conda specs and not compiled. A pypi source
    with its own ``index`` adds that index to the compile (``--extra-index-url``). ``environ``
    is the environment of git and uv (default ``os.environ``); uv is ``uv``, else found in it.
    ``pylocks``, when given, receives uv's pylock.toml of each target (for ``compose.pylock``).
    """
    targets = [targets] if isinstance(targets, Target) else list(targets)
    commits = {p.name: resolve_git_ref(p.source.url, p.source.ref, p.name, environ)
               for p in plan.packages if isinstance(p.source, GitSource)}
    planned = [p for p in plan.packages if p.manager in ("uv", "pip")]
    # the manifests' own index URLs, credentials and all: the compile needs them; the lock does not keep them
    indexes = sorted({i for p in planned if (i := source_index(p))})
    extra = [*uv_args, *(a for i in indexes for a in ("--extra-index-url", i))]
    env = os.environ if environ is None else environ
    dists: dict[str, str] = {}
    if planned:
        uv = uv or find_uv(environ)
        dists = discover([(p, commits.get(p.name)) for p in planned], uv, extra,
                         targets[0].python_version, env)
    packages = [lock_package(p, commit=commits.get(p.name), dist=dists.get(p.name))
                for p in plan.packages]
    compiled = [p for p in packages if p.manager in ("uv", "pip")]
    requirements = [p.requirement for p in compiled]
    editables = {p.path: p.distribution or p.name for p in compiled if p.editable and p.path}
    pins: list[Pin] = []
    if requirements:
        assert uv is not None
        with tempfile.TemporaryDirectory(prefix="hpm-lock-") as scratch:
            args = [*extra, *_registry_files(plan, scratch)]
            try:
                pins = merge_targets([lock_target(requirements, t, uv, args, environ, editables, pylocks)
                                      for t in targets])
            except InstallerFailedError as exc:
                raise explain_failure(exc, plan, dists) from None
    return Lock(
        version=LOCK_VERSION,
        hpm=__version__,
        mode=plan.mode,
        targets=targets,
        plan_digest=plan_digest(plan),
        packages=packages,
        pins=pins,
    )


def _registry_files(plan: Plan, scratch: str) -> list[str]:
    """uv's ``--constraints``/``--overrides`` files for the registry's lists (in ``scratch``)."""
    args: list[str] = []
    for key, flag in (("constraints", "--constraints"), ("overrides", "--overrides")):
        entries = getattr(plan, key)
        if entries:
            path = os.path.join(scratch, f"{key}.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(f"{e.requirement}\n" for e in entries))
            args += [flag, path]
    return args


def explain_failure(exc: InstallerFailedError, plan: Plan, dists: Mapping[str, str]) -> HpmError:
    """uv's failure to pin the closure, as hpm's own error when hpm can say more:
    a ``package:`` that disagrees with the built metadata (65), a source that builds
    nothing (65), packages or a registry constraint that collide (78, ``explain_conflict``);
    else uv's error as it is (74)."""
    stderr = exc.details or ""
    mismatch = mismatch_error(stderr, plan.packages)
    if mismatch is not None:
        return mismatch
    if any(words in stderr for words in NOT_A_PROJECT):
        return build_error(stderr, plan.packages, 1)
    return explain_conflict(exc, plan, dists)


def explain_conflict(exc: InstallerFailedError, plan: Plan, dists: Mapping[str, str]) -> HpmError:
    """uv's "no solution" as a collision of the plan's packages or a registry constraint
    (78, ``conflicts.explain``), else ``exc`` as it is. ``dists``: package -> the
    distribution its source builds, for those whose manifest does not say (``discover``)."""
    from hpm_boot.compose import conflicts

    members = []
    for p in plan.packages:
        dist = dists.get(p.name) or explicit(p.source, p.name) or p.name
        members.append(conflicts.Member(p.name, canonicalize_name(dist), p.manifest, tuple(p.provides)))
    rules = [conflicts.Rule(c.requirement, c.where) for c in plan.constraints]
    rules += [conflicts.Rule(o.requirement, o.where, "override") for o in plan.overrides]
    virtuals = {prov.virtual: prov.candidates for prov in plan.providers}
    explained = conflicts.explain(exc.details or "", members, rules, virtuals)
    if explained is None:
        return exc
    explained.details = mask_credentials(explained.details or "")
    return explained


def registry_notes(plan: Plan, lock: Lock) -> tuple[list[str], list[str]]:
    """(information, warnings) about the registry's constraints and overrides in ``lock``:
    which pins they apply to, and overrides that name nothing in the closure."""
    from packaging.requirements import Requirement

    pins = {p.name: p for p in lock.pins}
    info: list[str] = []
    warnings: list[str] = []
    for key, word in (("constraints", "constraint"), ("overrides", "override")):
        for entry in getattr(plan, key):
            name = canonicalize_name(Requirement(entry.requirement).name)
            pin = pins.get(name)
            if pin is not None:
                info.append(f"{word} {entry.requirement} [{entry.where}] applies to the pin "
                            f"{name}=={pin.version or pin.url}")
            elif key == "overrides":
                warnings.append(f"override {entry.requirement} [{entry.where}] names {name}, which is not in "
                                "the closure of this plan: it changes nothing here")
    return info, warnings


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
    if version not in READS_VERSIONS or isinstance(version, bool):
        reads = ", ".join(map(str, READS_VERSIONS))
        raise DataError(f"{source}: lock format version {version!r}; this hpm reads lock format "
                        f"version{'s' if len(READS_VERSIONS) > 1 else ''} {reads}",
                        "make the lock again with this hpm (hpm lock), or use the hpm that made it")
    try:
        return msgspec.convert(data, Lock, strict=True)
    except msgspec.ValidationError as exc:
        raise DataError(f"{source}: not a valid lock: {exc}",
                        "docs/lock-format.md has the lock schema; make it again with `hpm lock`") from None
