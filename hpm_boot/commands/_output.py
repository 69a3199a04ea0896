"""How commands show things to people: tables, paths, sources, and output files."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from hpm_boot.errors import NotWritableError
from hpm_boot.log import mask_credentials

if TYPE_CHECKING:
    from hpm_boot.log import Log


def print_table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip(), file=out)


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as shown to people: relative when it is below the working directory."""
    text = os.fspath(path)
    if os.path.isabs(text) and text.startswith(os.getcwd() + os.sep):
        return os.path.relpath(text)
    return text


def source_commit() -> str | None:
    """The git commit of the checkout hpm runs from (an editable install), if any."""
    import subprocess

    here = Path(__file__).resolve().parent.parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "hpm_boot"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not (here / ".git").exists():
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")


def hpm_commit(build: dict[str, object]) -> str:
    """The commit hpm was built from: the pyz's build record, else the checkout of an
    editable install, else ``unknown`` (a wheel install records none)."""
    commit = str(build.get("commit", "unknown"))
    return (source_commit() or commit) if commit == "unknown" else commit


def describe_source(source: object) -> str:
    from hpm_boot.compose.manifest import GitSource, LocalSource, PypiSource, UrlSource

    if isinstance(source, GitSource):
        sub = f"#{source.subdirectory}" if source.subdirectory else ""
        return mask_credentials(f"git {source.url}@{source.ref}{sub}")
    if isinstance(source, PypiSource):
        return f"pypi {source.package or ''}{source.version or ''}".rstrip()
    if isinstance(source, UrlSource):
        return mask_credentials(f"url {source.url}")
    if isinstance(source, LocalSource):
        return f"{'editable' if source.editable else 'local'} {display_path(source.path)}"
    return str(source)


def write_output(dest: str, data: bytes, log: Log) -> None:
    """Write ``data`` to stdout (``-``) or atomically to ``dest`` (a temporary file, renamed)."""
    if dest == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    from hpm_boot.fsutil import write_atomic

    path = Path(dest)
    if path.is_dir():
        raise NotWritableError(f"cannot write {path}: it is a directory", "give a file name with -o")
    try:
        write_atomic(str(path), data)
    except OSError as exc:
        raise NotWritableError(f"cannot write {path}: {exc.strerror}",
                               "check that its directory exists and is writable") from None
    log.info(f"wrote {path}")
