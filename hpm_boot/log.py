"""hpm's own output: ``hpm:`` lines on stderr, or JSON lines for log pipelines.

``HPM_LOG`` = quiet | info (default) | debug; ``HPM_LOG_FORMAT=json`` writes one JSON
object per line. Standard library only (the boot path uses it).
"""

from __future__ import annotations

import os
import sys
import time

from hpm_boot.errors import HpmError, mask_credentials

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

_LEVELS = {"quiet": 0, "error": 0, "warning": 1, "info": 2, "debug": 3}
TERMINATION_LOG = "/dev/termination-log"


class Log:
    def __init__(self, env: Mapping[str, str], stream: TextIO | None = None) -> None:
        self.level = _LEVELS.get(env.get("HPM_LOG", "info").strip().lower(), 2)
        self.json = env.get("HPM_LOG_FORMAT", "").strip().lower() == "json"
        self.stream = stream
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def emit(self, level: str, message: str, **fields: object) -> None:
        if _LEVELS[level] > self.level and level != "error":
            return
        stream = self.stream or sys.stderr
        message = mask_credentials(message)
        if self.json:
            import json

            record = {"ts": round(time.time(), 3), "level": level, "msg": message, **fields}
            line = json.dumps(record, default=str)
        else:
            prefix = "hpm: " if level in ("info", "debug") else f"hpm: {level}: "
            line = prefix + message
        try:
            print(line, file=stream, flush=True)
        except (OSError, ValueError):
            pass

    def info(self, message: str, **fields: object) -> None:
        self.emit("info", message, **fields)

    def debug(self, message: str, **fields: object) -> None:
        self.emit("debug", message, **fields)

    def warning(self, message: str, **fields: object) -> None:
        self.emit("warning", message, **fields)

    def error(self, exc: HpmError) -> int:
        """Report ``exc`` as one line (then its details); return its exit code."""
        self.emit("error", exc.message, exit_code=exc.exit_code)
        if exc.details and not self.json:
            stream = self.stream or sys.stderr
            print(mask_credentials(exc.details), file=stream, flush=True)
        termination_log(f"hpm: {mask_credentials(exc.message)}")
        return exc.exit_code


def termination_log(message: str, path: str = TERMINATION_LOG) -> None:
    """Kubernetes shows this file's content as the container's termination message."""
    try:
        if os.access(path, os.W_OK):
            with open(path, "w") as f:
                f.write(message + "\n")
    except OSError:
        pass
