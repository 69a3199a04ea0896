"""hpm's own output: ``hpm:`` lines on stderr, or JSON lines for log pipelines.

``HPM_LOG`` = quiet | info (default) | debug; ``HPM_LOG_FORMAT=json`` writes one JSON
object per line. On failure the one-line cause also goes to the termination log
(``/dev/termination-log``, which Kubernetes shows as the container's termination
message, when that file exists and is writable; ``HPM_TERMINATION_LOG=PATH`` names
another file, which hpm creates if need be; empty turns it off). ``mask_credentials``
hides URL credentials in all of it, and in whatever else hpm prints.
"""

from __future__ import annotations

import os
import sys
import time

from hpm_boot import contract

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

    from hpm_boot.errors import HpmError

_LEVELS = {"quiet": 0, "error": 0, "warning": 1, "info": 2, "debug": 3}
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


class Log:
    """hpm's own messages at a level, as ``hpm:`` lines or JSON records, timed from creation."""

    def __init__(self, environ: Mapping[str, str], stream: TextIO | None = None) -> None:
        self.level = _LEVELS.get(environ.get(contract.LOG, "info").strip().lower(), 2)
        self.json = environ.get(contract.LOG_FORMAT, "").strip().lower() == "json"
        self.stream = stream
        self.start = time.perf_counter()
        self.termination_log = environ.get(contract.TERMINATION_LOG, DEFAULT_TERMINATION_LOG)
        #: a path the user named is created; the default one only written when it exists
        self.create_termination_log = contract.TERMINATION_LOG in environ

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def emit(self, level: str, message: str, **fields: object) -> None:
        if _LEVELS[level] > self.level and level != "error":
            return
        stream = self.stream or sys.stderr
        message = mask_credentials(message)
        if self.json:
            import json

            record = {"ts": round(time.time(), 3), "level": level, "msg": message,
                      "elapsed_s": round(self.elapsed(), 4), **fields}
            line = json.dumps(record, default=str, ensure_ascii=False)
        else:
            prefix = "hpm: " if level in ("info", "debug") else f"hpm: {level}: "
            line = prefix + message
        _write(stream, line)

    def info(self, message: str, **fields: object) -> None:
        self.emit("info", message, **fields)

    def debug(self, message: str, **fields: object) -> None:
        self.emit("debug", message, **fields)

    def warning(self, message: str, **fields: object) -> None:
        self.emit("warning", message, **fields)

    def installer(self, manager: str, line: str) -> None:
        """One line of an installer's own output: shown as is at info level and above."""
        if self.level < 2:
            return
        line = mask_credentials(line)
        if self.json:
            self.emit("info", line, installer=manager)
            return
        _write(self.stream or sys.stderr, line)

    def error(self, exc: HpmError) -> int:
        """Report ``exc`` as one line (then its details); return its exit code."""
        if self.json:
            extra = {"details": mask_credentials(exc.details)} if exc.details else {}
            self.emit("error", exc.message, exit_code=exc.exit_code, **extra)
        else:
            self.emit("error", exc.message)
            if exc.details:
                _write(self.stream or sys.stderr, mask_credentials(exc.details))
        if self.termination_log:
            termination_log(f"hpm: {mask_credentials(exc.message)}", self.termination_log,
                            create=self.create_termination_log)
        return exc.exit_code


def _write(stream: TextIO, line: str) -> None:
    """Print one line; a closed or broken stream is not hpm's failure."""
    try:
        print(line, file=stream, flush=True)
    except (OSError, ValueError):
        pass


def termination_log(message: str, path: str = DEFAULT_TERMINATION_LOG, create: bool = False) -> None:
    """Kubernetes shows this file's content as the container's termination message.

    ``create``: write ``path`` even when it does not exist yet (a path the user named, as
    a shell's ``>`` would); otherwise only an existing writable file is written, so that
    outside Kubernetes nothing appears in ``/dev``. A file that cannot be written is skipped.
    """
    try:
        if create or os.access(path, os.W_OK):
            with open(path, "w") as f:
                f.write(message + "\n")
    except OSError:
        pass


def mask_credentials(text: str) -> str:
    """Hide ``user:password@`` in every URL of ``text``."""
    if not _may_hold_credentials(text):
        return text  # without importing re: every log line passes through here
    import re

    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\1***@", text)


def strip_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` (what a lock may keep of an index URL)."""
    if not _may_hold_credentials(url):
        return url
    import re

    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\1", url)


def _may_hold_credentials(text: str) -> bool:
    """Whether some ``://`` is followed by ``@`` before any ``/``: only then can
    ``mask_credentials`` have something to hide. uv names every git pin it installs as
    ``git+https://host/repo@<commit>``, which has an ``@`` but no credentials."""
    start = text.find("://")
    while start >= 0:
        at = text.find("@", start + 3)
        if at < 0:
            return False
        slash = text.find("/", start + 3)
        if slash < 0 or at < slash:
            return True
        start = text.find("://", start + 3)
    return False
