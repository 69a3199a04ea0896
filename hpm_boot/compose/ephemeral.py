"""The plan as an ephemeral environment: a generated ``pyproject.toml``, synced by uv.

``generate`` writes the project (``[tool.uv.sources]`` with git at the locked SHA, local
paths, per-package indexes); its directory under the ephemeral root is named by a
digest of that text, so an unchanged plan finds its directory again and a changed plan
(even a moved tag) gets a new one. ``prepare`` creates it, syncs it once with
``uv sync`` and returns the record that lets ``hpm_boot.reuse`` skip all of this next
time.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpm_boot import __version__, reuse
from hpm_boot.compose.manifest import GitSource, LocalSource, PypiSource, UrlSource
from hpm_boot.errors import InstallerFailedError, InstallerMissingError, NotWritableError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from hpm_boot.compose.resolve import Plan, Selection
    from hpm_boot.install import InstallerOptions
    from hpm_boot.log import Log


def _toml_str(value: str) -> str:
    import json

    return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes


def generate(plan: Plan, python: str, uv_args: Sequence[str],
             names: Mapping[str, str] | None = None, commits: Mapping[str, str] | None = None,
             minor: str | None = None) -> str:
    """The ``pyproject.toml`` of the plan's ephemeral environment (deterministic text).

    ``names``: package -> the distribution its source builds, when not the package's
    name (``lockmod.discover``); ``commits``: git package -> its ref's commit, and
    ``minor``: the Python version of ``python``, when the caller has them already."""
    commits = commits if commits is not None else git_commits(plan)
    deps: list[str] = []
    sources: list[str] = []
    indexes: list[str] = []
    for p in plan.packages:
        extras = f"[{','.join(p.extras)}]" if p.extras else ""
        if p.manager == "conda":
            raise InstallerMissingError(
                f"{p.name} asks for manager: conda, which ephemeral environments (made by uv) cannot use",
                "run without --ephemeral, or give the package a uv/pip source",
            )
        source = p.source
        dist = (names or {}).get(p.name) or getattr(source, "package", None) or p.name
        if isinstance(source, GitSource):
            sha = commits[p.name]
            deps.append(f"{dist}{extras}")
            fields = [f"git = {_toml_str(source.url)}", f"rev = {_toml_str(sha)}"]
            if source.subdirectory:
                fields.append(f"subdirectory = {_toml_str(source.subdirectory)}")
            sources.append(f"{dist} = {{ {', '.join(fields)} }}")
        elif isinstance(source, PypiSource):
            dist = source.package or p.name
            deps.append(f"{dist}{extras}{source.version or '==' + p.version}")
            if source.index:
                index_name = f"hpm-{len(indexes) + 1}"
                indexes.append(f"[[tool.uv.index]]\nname = {_toml_str(index_name)}\n"
                               f"url = {_toml_str(source.index)}\nexplicit = true\n")
                sources.append(f"{dist} = {{ index = {_toml_str(index_name)} }}")
        elif isinstance(source, UrlSource):
            frag = f"#sha256={source.sha256}" if source.sha256 else ""
            deps.append(f"{dist}{extras} @ {source.url}{frag}")
        else:
            assert isinstance(source, LocalSource)
            path = p.path or source.path
            deps.append(f"{dist}{extras}")
            editable = ", editable = true" if source.editable and os.path.isdir(path) else ""
            sources.append(f"{dist} = {{ path = {_toml_str(path)}{editable} }}")
    minor = minor or _python_minor(python)
    lines = [
        "# An hpm ephemeral environment, generated from the plan: do not edit.",
        "# Its directory name is a digest of this file; `hpm gc` removes stale ones.",
        f"# python: {python}",
        f"# uv options: {' '.join(uv_args) or '-'}",
        "",
        "[project]",
        'name = "hpm-ephemeral"',
        'version = "0"',
        f'requires-python = ">={minor}"',
        "dependencies = [",
        *(f"    {_toml_str(d)}," for d in deps),
        "]",
        "",
        "[tool.uv]",
        "package = false",
        *_registry_lists(plan),
        "",
        *indexes,
        "[tool.uv.sources]",
        *sources,
    ]
    return "\n".join(lines) + "\n"


def _registry_lists(plan: Plan) -> list[str]:
    """hpm-registry.yaml's constraints and overrides, as uv project settings."""
    out = []
    for key, setting in (("constraints", "constraint-dependencies"), ("overrides", "override-dependencies")):
        entries = [e.requirement for e in getattr(plan, key)]
        if entries:
            out.append(f"{setting} = [{', '.join(_toml_str(e) for e in entries)}]")
    return out


def git_commits(plan: Plan) -> dict[str, str]:
    """Each git package of the plan -> the commit its ref points at (``git ls-remote``)."""
    from hpm_boot.compose.lock import resolve_git_ref

    return {p.name: resolve_git_ref(p.source.url, p.source.ref, p.name)
            for p in plan.packages if isinstance(p.source, GitSource)}


def _names(plan: Plan, uv: str, uv_args: Sequence[str], minor: str, commits: Mapping[str, str],
           environ: Mapping[str, str]) -> dict[str, str]:
    """The distributions of the plan's sources that do not name theirs (cached: lock.discover)."""
    from hpm_boot.compose import lock as lockmod

    unnamed = [p for p in plan.packages
               if p.manager != "conda" and lockmod.explicit(p.source, p.name) is None]
    if not unnamed:
        return {}
    return lockmod.discover([(p, commits.get(p.name)) for p in unnamed], uv, uv_args, minor, environ)


def _python_minor(python: str) -> str:
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    from hpm_boot.install import describe_interpreter

    return describe_interpreter(python).python_version


def env_id(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_project(root: str, text: str) -> str:
    """The directory of the project ``text``, created atomically when missing."""
    target = os.path.join(root, env_id(text))
    if os.path.isfile(os.path.join(target, reuse.PROJECT)):
        return target
    try:
        os.makedirs(root, exist_ok=True)
        tmp = os.path.join(root, f".tmp-{env_id(text)}-{os.getpid()}")
        os.makedirs(tmp, exist_ok=True)
        with open(os.path.join(tmp, reuse.PROJECT), "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            import shutil  # another process made it first: same content, keep theirs

            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise reuse.not_writable(root, exc) from None
    return target


def sync(directory: str, uv: str, python: str, uv_args: Sequence[str], locals_: Sequence[str],
         environ: Mapping[str, str], log: Log) -> None:
    """``uv sync`` the project unless the marker says it is done; serialized by a lock."""
    import fcntl

    from hpm_boot import install

    try:
        fd = os.open(os.path.join(directory, reuse.SYNC_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if reuse.is_synced(directory, locals_):
            return
        raise reuse.not_writable(directory, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if reuse.is_synced(directory, locals_):
            return
        fingerprint = reuse.local_fingerprint(locals_)  # before the sync: a change during it resyncs
        started = time.perf_counter()
        log.info(f"syncing ephemeral environment {os.path.basename(directory)}")
        argv = [uv, "sync", "--project", directory, "--python", python, *uv_args]
        install.run_installer(argv, "uv", reuse.uv_environ(environ), log)
        try:
            reuse.write_record(os.path.join(directory, reuse.SYNCED),
                               {"locals": fingerprint, "hpm": __version__})
        except OSError as exc:
            raise reuse.not_writable(directory, exc) from None
        log.info(f"synced {os.path.basename(directory)} ({time.perf_counter() - started:.2f} s)")
    finally:
        os.close(fd)


def prepare(command: str, opts: Mapping[str, Any], dirs: Sequence[Path], selection: Selection,
            options: InstallerOptions, python: str | None, entrypoint: str | None,
            environ: Mapping[str, str], log: Log) -> tuple[str, int, dict[str, Any]]:
    """Resolve, generate, create, lock and sync: (directory, in-use fd, reuse record).

    The record is kept for the next run of ``command`` with ``opts`` (``reuse.opts_of``),
    unless a git source is remote (its tag can move unseen). ``python``: the environment's
    interpreter (None: the one running hpm)."""
    from hpm_boot.compose import registry, resolve
    from hpm_boot.uvbin import find_uv

    paths = [os.path.abspath(d) for d in dirs]
    watch = reuse.watch_registry(paths)  # before reading: a change after this misses the fast path
    reg = registry.load([Path(p) for p in paths], selection.mode)
    kinds: list[list[Any]] = []
    remote_git = False
    for entry in reg.entries.values():
        checkout = entry.dev_checkout()
        if checkout is not None:
            kinds.append([str(checkout), reuse.kind(str(checkout))])
        prod = entry.manifest.sources.prod
        if isinstance(prod, GitSource):
            files = reuse.watch_git(prod.url, prod.ref)
            if files is None:
                remote_git = True
            else:
                watch.extend(files)
    plan = resolve.resolve(reg, selection)
    for warning in plan.warnings:
        log.warning(warning)
    uv_args = options.uv_args()
    python = os.path.abspath(python) if python else sys.executable
    uv = find_uv(environ)
    commits, minor = git_commits(plan), _python_minor(python)
    names = _names(plan, uv, uv_args, minor, commits, environ)
    text = generate(plan, python, uv_args, names, commits, minor)
    locals_ = sorted({p.path for p in plan.packages if isinstance(p.source, LocalSource) and p.path})
    root = reuse.ephemeral_root(environ)
    for _attempt in range(5):
        directory = ensure_project(root, text)
        try:
            fd = reuse.hold(directory)
            break
        except reuse.Gone:
            continue
    else:
        raise NotWritableError(f"{root}: the ephemeral environment kept disappearing (is `hpm gc` looping?)")
    try:
        sync(directory, uv, python, uv_args, locals_, environ, log)
    except InstallerFailedError as exc:
        os.close(fd)
        from hpm_boot.compose.lock import explain_conflict

        raise explain_conflict(exc, plan, names) from None
    except BaseException:
        os.close(fd)
        raise
    entry_argv: list[str] | None = None
    if entrypoint:
        from hpm_boot.handover import choose_command

        packages = [{"name": p.name, "entrypoints": p.entrypoints} for p in plan.packages]
        entry_argv = choose_command({"packages": packages}, entrypoint, [])
    record = {"dir": directory, "uv": uv, "python": python, "uv_args": uv_args, "locals": locals_,
              "watch": watch, "kinds": kinds, "entry": entry_argv, "warnings": list(plan.warnings),
              "mode": plan.mode}
    if not remote_git:
        reuse.remember(command, opts, environ, record)
    return directory, fd, record
