"""``hpm dev``: plugin checkouts for the developer loop (checkout, status, pin).

- ``checkout NAME...``: clone a plugin's prod git source, at its ref, into the dev path
  of its manifest (or ``--path``), so dev mode (``RUN_MODE=dev``) uses it editable.
- ``status``: per package, the source the current mode uses, whether the dev checkout
  exists, is dirty, and how far its HEAD is from the prod ref.
- ``pin NAME``: write the checkout's tag at HEAD (or its commit) into the base
  manifest's ``sources.prod.ref``, replacing that one scalar in the text, so comments
  and layout stay as they were.

Exit codes (docs/dev-loop.md): 2 usage (no dev path and no ``--path``), 65 the base
manifest has no git ``sources.prod.ref`` to edit, 66 a package, checkout, repository
or ref that is missing, or a prod source that is not git on checkout, 73 a checkout
target that exists and is not that repository, 1 ``pin`` refused on a dirty checkout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpm_boot.commands._options import add_selection, mode_of, registry_dirs, selection_of
from hpm_boot.commands._output import describe_source, display_path, print_table
from hpm_boot.errors import (
    DataError,
    DirtyCheckoutError,
    HpmError,
    InstallerMissingError,
    NotFoundError,
    NotWritableError,
    UsageError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from hpm_boot.compose.registry import Entry, Registry


# ---------------------------------------------------------------- git


def git(args: Sequence[str], cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git (never prompting for credentials); the caller checks the return code."""
    environ = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(["git", *(["-C", str(cwd)] if cwd else []), *args], capture_output=True,
                              text=True, env=environ, stdin=subprocess.DEVNULL, timeout=600)
    except FileNotFoundError:
        raise InstallerMissingError("git is not installed; hpm dev needs it") from None


def _out(args: Sequence[str], cwd: Path | str) -> str | None:
    proc = git(args, cwd)
    return proc.stdout.strip() if proc.returncode == 0 else None


def repo_root(path: Path) -> Path | None:
    """``path`` when it is the top of a git work tree (not merely inside one), else None."""
    if not path.is_dir():
        return None
    top = _out(["rev-parse", "--show-toplevel"], path)
    if top and os.path.realpath(top) == os.path.realpath(path):
        return path
    return None


def normalize_url(url: str) -> str:
    """A comparable form of a git URL: ``file://`` and plain paths become real paths."""
    url = url.strip().removeprefix("git+")
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        url = unquote(urlparse(url).path)
    if "://" not in url and not url.startswith("git@") and os.path.exists(url):
        url = os.path.realpath(url)
    url = url.rstrip("/")
    return url.removesuffix(".git").rstrip("/")


def remotes(repo: Path) -> list[str]:
    out = _out(["remote", "-v"], repo) or ""
    return sorted({line.split()[1] for line in out.splitlines() if len(line.split()) >= 2})


def dirty_files(repo: Path) -> list[str]:
    out = _out(["status", "--porcelain"], repo)
    return [line for line in (out or "").splitlines() if line.strip()]


def tags_at_head(repo: Path) -> list[str]:
    """Tags pointing at HEAD, the highest version first (unparseable names last)."""
    from packaging.version import InvalidVersion, Version

    tags = (_out(["tag", "--points-at", "HEAD"], repo) or "").split()

    def key(tag: str) -> tuple[int, Any, str]:
        try:
            return (0, Version(tag.removeprefix("v")), tag)
        except InvalidVersion:
            return (1, None, tag)

    parsed = sorted((t for t in tags if key(t)[0] == 0), key=lambda t: key(t)[1], reverse=True)
    return parsed + sorted(t for t in tags if key(t)[0] == 1)


def local_ref(repo: Path, ref: str) -> str | None:
    """The commit ``ref`` names in the checkout (tag, branch, remote branch, SHA)."""
    for name in (f"refs/tags/{ref}", ref, f"refs/remotes/origin/{ref}"):
        sha = _out(["rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], repo)
        if sha:
            return sha
    return None


# ---------------------------------------------------------------- registry helpers


def _registries(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Registry, Registry]:
    """(dev-mode registry, prod-mode registry): dev paths come from dev overlays."""
    from hpm_boot.compose import registry

    dirs = registry_dirs(args, environ)
    return registry.load(dirs, "dev"), registry.load(dirs, "prod")


def _entry(reg: Registry, name: str) -> Entry:
    entry = reg.get(name)
    if entry is None:
        from hpm_boot.compose.resolve import unknown_name_error

        raise unknown_name_error(name, reg.entries, f"no package {name!r} in the registry")
    return entry


# ---------------------------------------------------------------- checkout


@dataclass
class _Checkout:
    name: str
    url: str
    ref: str
    target: Path
    present: bool  # already a checkout of that repository


def _plan_checkout(name: str, dev: Registry, prod: Registry, path: str | None) -> _Checkout:
    from hpm_boot.compose.manifest import GitSource
    from hpm_boot.log import mask_credentials

    entry = _entry(dev, name)
    source = _entry(prod, name).manifest.sources.prod
    if not isinstance(source, GitSource):
        raise NotFoundError(
            f"{entry.name}: the prod source is {describe_source(source)}, not git: there is no "
            "repository to check out",
            f"get its code yourself into the dev path of {entry.file}, or give it a git prod source "
            "(sources.prod: {type: git, url: ..., ref: ...})",
        )
    dev_path = entry.dev_checkout()
    if path:
        target = Path(os.path.abspath(path))
    elif dev_path is not None:
        target = dev_path
    else:
        raise UsageError(
            f"{entry.name} has no dev source with a local path ({entry.file}); give --path DIR",
            "and add `dev: {type: local, path: DIR, editable: true}` under sources (or in "
            f"{entry.file.stem}.dev.yaml) so that dev mode uses the checkout",
        )
    url = source.url
    if target.exists() or target.is_symlink():
        repo = repo_root(target)
        if repo is not None and normalize_url(url) in {normalize_url(r) for r in remotes(repo)}:
            return _Checkout(entry.name, url, source.ref, target, True)
        if target.is_dir() and not repo and not any(target.iterdir()):
            return _Checkout(entry.name, url, source.ref, target, False)  # an empty directory
        if repo is not None:
            what = f"a git checkout of {', '.join(map(mask_credentials, remotes(repo))) or 'no remote'}"
        elif target.is_dir():
            what = f"a non-empty directory ({len(list(target.iterdir()))} entries) that is not a git checkout"
        else:
            what = "a file"
        raise NotWritableError(
            f"{entry.name}: {display_path(target)} exists and is not a checkout of {mask_credentials(url)}; "
            "refusing to touch it",
            f"it is {what}.\nmove it away, or check out somewhere else with --path DIR",
        )
    return _Checkout(entry.name, url, source.ref, target, False)


def _clone(job: _Checkout) -> str:
    """Clone into a temporary sibling, check out the ref, rename into place; the HEAD SHA."""
    import shutil

    from hpm_boot.log import mask_credentials

    parent = job.target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotWritableError(f"{job.name}: cannot create {parent}: {exc.strerror}") from None
    tmp = parent / f".{job.target.name}.hpm-clone-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        proc = git(["clone", "--quiet", "--no-checkout", "--", job.url, str(tmp)])
        if proc.returncode != 0:
            if not os.access(parent, os.W_OK):
                raise NotWritableError(f"{job.name}: cannot write into {parent}")
            raise NotFoundError(f"{job.name}: cannot clone {mask_credentials(job.url)}",
                                mask_credentials(proc.stderr.strip()))
        proc = git(["checkout", "--quiet", job.ref], tmp)
        if proc.returncode != 0:
            raise NotFoundError(f"{job.name}: ref {job.ref!r} not found in {mask_credentials(job.url)}",
                                "fix sources.prod.ref in the manifest; " + proc.stderr.strip())
        sha = _out(["rev-parse", "HEAD"], tmp) or "?"
        try:
            os.rename(tmp, job.target)  # a missing target, or an empty directory
        except OSError as exc:
            raise NotWritableError(f"{job.name}: cannot move the clone to {job.target}: "
                                   f"{exc.strerror}") from None
        return sha
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _say_distribution(job: _Checkout, prod: Any) -> None:
    """What the checkout builds, and whether the prod source's ``package:`` agrees."""
    from hpm_boot.compose import lock as lockmod

    sub = getattr(prod, "subdirectory", None)
    built = lockmod.static_name(str(job.target / sub if sub else job.target))
    if built is None:
        return
    named = lockmod.explicit(prod, job.name)
    print(f"{job.name}: the checkout builds the distribution {built}")
    if named is not None and named != built:
        print(f"{job.name}: warning: sources.prod.package says {named}, but the checkout builds {built}")


def cmd_checkout(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from hpm_boot.log import mask_credentials

    if args.path and len(args.names) > 1:
        raise UsageError("--path takes one package; check out one at a time")
    dev, prod = _registries(args, environ)
    jobs = [_plan_checkout(name, dev, prod, args.path) for name in args.names]  # all checks first
    for job in jobs:
        where = display_path(job.target)
        if job.present:
            head = _out(["describe", "--tags", "--always"], job.target) or "?"
            print(f"{job.name}: {where} is already a checkout of {mask_credentials(job.url)} "
                  f"(HEAD at {head}); left as it is")
            continue
        sha = _clone(job)
        detached = _out(["symbolic-ref", "-q", "HEAD"], job.target) is None
        print(f"{job.name}: checked out {mask_credentials(job.url)} at {job.ref} ({sha[:12]}) into {where}"
              + ("; detached HEAD: `git switch -c BRANCH` there before committing" if detached else ""))
        _say_distribution(job, _entry(prod, job.name).manifest.sources.prod)
        dev_path = _entry(dev, job.name).dev_checkout()
        if dev_path is not None and os.path.realpath(dev_path) != os.path.realpath(job.target):
            print(f"{job.name}: note: dev mode looks in {display_path(dev_path)}, not here; point "
                  "sources.dev.path at it (a NAME.local.yaml overlay keeps that personal)")
        elif dev_path is None:
            print(f"{job.name}: note: the manifest has no dev source, so dev mode will not use this "
                  "checkout until sources.dev points at it")
    if any(not j.present for j in jobs):
        print("dev mode now uses the checkout(s): RUN_MODE=dev hpm plan (or --mode dev)")
    return 0


# ---------------------------------------------------------------- status


def _status_row(entry: Entry, mode: str, prod_source: Any, cache: Mapping[str, str]) -> dict[str, Any]:
    from hpm_boot.compose import lock as lockmod
    from hpm_boot.compose.manifest import GitSource

    checkout = entry.dev_checkout()
    exists = checkout is not None and checkout.is_dir()
    source, source_mode = entry.source(mode)  # type: ignore[arg-type]
    note = None
    if source_mode == "dev" and not exists:
        source, source_mode, note = prod_source, "prod", "dev checkout missing: dev mode falls back to prod"
    row: dict[str, Any] = {
        "name": entry.name, "mode": mode, "uses": source_mode, "source": describe_source(source),
        "checkout": str(checkout) if checkout is not None else None, "exists": exists,
        "git": False, "dirty": None, "changes": 0, "head": None, "prod_ref": None,
        "ahead": None, "behind": None, "note": note,
        "distribution": lockmod.known(source, entry.name, str(entry.local_path(source) or "") or None,
                                       cache),
    }
    if isinstance(prod_source, GitSource):
        row["prod_ref"] = prod_source.ref
    repo = repo_root(checkout) if exists and checkout is not None else None
    if repo is None:
        return row
    changes = dirty_files(repo)
    row.update(git=True, dirty=bool(changes), changes=len(changes),
               head=_out(["describe", "--tags", "--always"], repo))
    if isinstance(prod_source, GitSource):
        sha = local_ref(repo, prod_source.ref)
        if sha is None:
            row["note"] = f"prod ref {prod_source.ref} is not in the checkout (git fetch --tags)"
        else:
            counts = (_out(["rev-list", "--left-right", "--count", f"{sha}...HEAD"], repo) or "").split()
            if len(counts) == 2:
                row["behind"], row["ahead"] = int(counts[0]), int(counts[1])
    return row


def _vs_prod(row: Mapping[str, Any]) -> str:
    if row["ahead"] is None:
        return "-"
    if row["ahead"] == row["behind"] == 0:
        return f"at {row['prod_ref']}"
    parts = [f"{row['ahead']} ahead" if row["ahead"] else "",
             f"{row['behind']} behind" if row["behind"] else ""]
    return f"{', '.join(p for p in parts if p)} of {row['prod_ref']}"


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import sys

    from hpm_boot.compose import lock as lockmod
    from hpm_boot.compose import registry, resolve

    mode = mode_of(args, environ)
    dev, prod = _registries(args, environ)
    current = dev if mode == "dev" else prod
    names = list(current.entries)
    if args.with_ or args.group or args.provide or args.plan:
        reg = registry.load(registry_dirs(args, environ), mode)  # type: ignore[arg-type]
        names = [p.name for p in resolve.resolve(reg, selection_of(args, environ)).packages]
    cache = lockmod.cached_names(environ)
    rows = [_status_row(dev.entries[n], mode, prod.entries[n].manifest.sources.prod, cache) for n in names]
    if args.json:
        import json

        sys.stdout.write(json.dumps(rows, indent=2, sort_keys=True) + "\n")
        return 0
    table = [("PACKAGE", "DISTRIBUTION", "USES", "CHECKOUT", "STATE", "VS PROD")]
    for row in rows:
        checkout = "-" if row["checkout"] is None else display_path(Path(row["checkout"]))
        if row["checkout"] is None:
            state = "-"
        elif not row["exists"]:
            state = "missing"
        elif not row["git"]:
            state = "not a git checkout"
        else:
            state = f"dirty ({row['changes']})" if row["dirty"] else "clean"
            state += f" @ {row['head']}"
        dist = row["distribution"] or "?"
        table.append((row["name"], "=" if dist == row["name"] else dist, f"{row['uses']}: {row['source']}",
                      checkout, state, _vs_prod(row)))
    print(f"mode {mode}")
    print_table(table)
    for row in rows:
        if row["note"]:
            print(f"  {row['name']}: {row['note']}")
    return 0


# ---------------------------------------------------------------- pin


def _node_at(root: Any, path: Sequence[str]) -> tuple[Any, Any] | None:
    """(key node, value node) at ``path`` in a composed YAML document, or None."""
    import yaml

    node, key = root, None
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == part:
                key, node = k, v
                break
        else:
            return None
    return key, node


def _render(value: str, style: str | None) -> str:
    import json

    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"' or style in ("|", ">"):
        return json.dumps(value)
    return value


def edit_ref(text: str, new: str, file: Path) -> tuple[str, str, int]:
    """``text`` with ``sources.prod.ref`` replaced by ``new``: (new text, old value, line)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        before = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{file}: cannot parse it: {exc}") from None
    kind = _node_at(root, ("sources", "prod", "type"))
    found = _node_at(root, ("sources", "prod", "ref"))
    if found is None or kind is None or not isinstance(found[1], yaml.ScalarNode):
        raise DataError(
            f"{file} has no sources.prod.ref to edit; `hpm dev pin` edits only the base manifest",
            "a ref set in a .dev.yaml/.local.yaml overlay is yours to edit by hand",
        )
    if kind[1].value != "git":
        raise DataError(f"{file}: sources.prod is type {kind[1].value}, not git; pin writes a git ref")
    node = found[1]
    start, end = node.start_mark.index, node.end_mark.index
    for style in (node.style, '"'):
        out = text[:start] + _render(new, style) + text[end:]
        try:
            after = yaml.safe_load(out)
        except yaml.YAMLError:
            continue
        expected = before
        expected["sources"]["prod"]["ref"] = new
        if after == expected:
            return out, str(node.value), node.start_mark.line + 1
    raise DataError(f"{file}: could not write ref {new!r} in place without changing anything else")


def _overlay_sets_ref(path: Path) -> str | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        ref = data["sources"]["prod"]["ref"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return str(ref)


def cmd_pin(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    dev, _prod = _registries(args, environ)
    entry = _entry(dev, args.name)
    checkout = Path(os.path.abspath(args.path)) if args.path else entry.dev_checkout()
    if checkout is None:
        raise UsageError(f"{entry.name} has no dev source with a local path ({entry.file}); give --path DIR")
    if not checkout.is_dir():
        raise NotFoundError(f"{entry.name}: no dev checkout at {display_path(checkout)}",
                            f"make one with `hpm dev checkout {entry.name}`")
    repo = repo_root(checkout)
    if repo is None:
        raise NotFoundError(f"{entry.name}: {display_path(checkout)} is not a git checkout; "
                            "there is no tag to pin")
    changes = dirty_files(repo)
    if changes and not args.allow_dirty:
        raise DirtyCheckoutError(
            f"{entry.name}: {display_path(repo)} has {len(changes)} uncommitted change(s); refusing to pin a "
            "ref that does not contain them",
            "\n".join(changes[:20]) + "\ncommit and tag them, or pass --allow-dirty to pin HEAD anyway",
        )
    tags = tags_at_head(repo)
    sha = _out(["rev-parse", "HEAD"], repo)
    if sha is None:
        raise NotFoundError(f"{entry.name}: {display_path(repo)} has no commit yet")
    ref = tags[0] if tags else sha
    file = entry.file
    try:
        raw = file.read_bytes().decode("utf-8")  # bytes: line endings stay as they are
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: cannot read it: {exc}") from None
    new_text, old, line = edit_ref(raw, ref, file)
    if changes:
        print(f"{entry.name}: warning: {len(changes)} uncommitted change(s) are not in {ref} (--allow-dirty)")
    if old == ref:
        print(f"{entry.name}: {file}:{line} already pins {ref}; nothing to change")
    else:
        from hpm_boot.fsutil import write_atomic

        try:
            write_atomic(str(file), new_text.encode("utf-8"), file.stat().st_mode & 0o7777)
        except OSError as exc:
            raise NotWritableError(f"cannot write {file}: {exc.strerror}") from None
        if tags:
            print(f"{entry.name}: pinned tag {ref} in {file}:{line} (was {old})")
        else:
            print(f"{entry.name}: no tag at HEAD: pinned commit {ref} in {file}:{line} (was {old}); "
                  f"tag it (git -C {display_path(repo)} tag vX.Y.Z) and pin again for a readable ref")
    _pin_notes(entry, repo, ref, bool(tags))
    return 0


def _pin_notes(entry: Entry, repo: Path, ref: str, is_tag: bool) -> None:
    """Warnings that save a broken prod run: unpushed ref, overlay override, stale version."""
    import re

    from hpm_boot.compose.manifest import GitSource
    from hpm_boot.log import mask_credentials

    prod = entry.manifest.sources.prod
    if isinstance(prod, GitSource):
        if is_tag:
            from hpm_boot.compose.lock import resolve_git_ref

            try:
                resolve_git_ref(prod.url, ref, entry.name)
            except HpmError:
                print(f"{entry.name}: warning: tag {ref} is not in {mask_credentials(prod.url)}; push it "
                      f"(git -C {display_path(repo)} push origin {ref}) or prod installs will fail")
        elif not _out(["branch", "-r", "--contains", ref], repo):
            print(f"{entry.name}: warning: commit {ref[:12]} is on no remote branch; push it or prod "
                  "installs will fail")
    for overlay in entry.overlays:
        value = _overlay_sets_ref(overlay)
        if value is not None:
            print(f"{entry.name}: warning: {overlay} sets sources.prod.ref to {value}, which wins over "
                  "the base manifest; edit or remove it there")
    m = re.fullmatch(r"v?(\d+(?:\.\d+)*)", ref)
    if is_tag and m and m[1] != entry.manifest.version:
        print(f"{entry.name}: note: the manifest says version: {entry.manifest.version} and the tag "
              f"says {m[1]}; pin changes only the ref, update version: by hand if it changed")
    print(f"{entry.name}: prod mode now installs {ref}: RUN_MODE=prod hpm plan")


# ---------------------------------------------------------------- parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dev_command", metavar="SUBCOMMAND")
    p = sub.add_parser("checkout", help="clone plugins' prod git sources into their dev paths",
                       description="clone each plugin's prod git source, at its ref, into the dev path of "
                       "its manifest (or --path), so that dev mode uses it")
    p.add_argument("names", nargs="+", metavar="NAME", help="package name")
    p.add_argument("--path", metavar="DIR", help="clone here instead of the manifest's dev path")
    add_selection(p, default=argparse.SUPPRESS)  # after the subcommand too: dev status -r R
    p.set_defaults(dev_func=cmd_checkout)
    p = sub.add_parser("status", help="per package: source in use, checkout state, distance from prod",
                       description="per package of the registry (or of the plan, with --with/--group/"
                       "--plan): which source the current mode uses, whether the dev checkout exists, is "
                       "dirty, and how far HEAD is from the prod ref")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plan", action="store_true", help="only the packages of the resolved plan")
    add_selection(p, default=argparse.SUPPRESS)  # after the subcommand too: dev status -r R
    p.set_defaults(dev_func=cmd_status)
    p = sub.add_parser("pin", help="write the checkout's tag (or commit) into the manifest's prod ref",
                       description="read the tag at the dev checkout's HEAD (or its commit when there is "
                       "none) and write it into the base manifest's sources.prod.ref, in place")
    p.add_argument("name", metavar="NAME", help="package name")
    p.add_argument("--allow-dirty", action="store_true", help="pin even with uncommitted changes")
    p.add_argument("--path", metavar="DIR", help="the checkout (default: the manifest's dev path)")
    add_selection(p, default=argparse.SUPPRESS)  # after the subcommand too: dev status -r R
    p.set_defaults(dev_func=cmd_pin)


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    func = getattr(args, "dev_func", None)
    if func is None:
        raise UsageError("hpm dev needs a subcommand: checkout, status or pin", "see hpm dev --help")
    for attr in ("with_", "group", "provide", "plan", "json"):
        if not hasattr(args, attr):
            setattr(args, attr, None)
    return int(func(args, environ))
