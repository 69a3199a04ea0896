"""Error types of hpm, each carrying its exit code (README.md, "Exit codes").

Errors are raised anywhere and turned into one stderr line (plus optional details)
only at the edge: ``Log.error`` in ``hpm_boot.cli.main`` and in the fast paths.
"""

from __future__ import annotations


class HpmError(Exception):
    """Base class: ``message`` is the one-line cause, ``details`` what follows it."""

    exit_code: int = 1

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class UsageError(HpmError):
    exit_code = 2


class DataError(HpmError):
    """A manifest, overlay, lock or payload is malformed or fails its digest."""

    exit_code = 65


class NotFoundError(HpmError):
    """Something named is missing: registry, lock file, package, entrypoint."""

    exit_code = 66


class InstallerMissingError(HpmError):
    exit_code = 69


class NotWritableError(HpmError):
    exit_code = 73


class InstallerFailedError(HpmError):
    exit_code = 74


class SignatureError(HpmError):
    exit_code = 77


class ResolutionError(HpmError):
    """Conflict, incompatibility, missing or ambiguous provider."""

    exit_code = 78


class CommandNotFoundError(HpmError):
    exit_code = 127


class CommandNotExecutableError(HpmError):
    """The command exists but cannot be executed (as shells say with 126)."""

    exit_code = 126


class DirtyCheckoutError(HpmError):
    """``hpm dev pin`` on a checkout with uncommitted changes, without ``--allow-dirty``."""

    exit_code = 1


class Interrupted(HpmError):
    """hpm got SIGTERM/SIGINT while an installer ran; it was stopped too (exit 128+N)."""

    def __init__(self, signum: int) -> None:
        name = {2: "SIGINT", 15: "SIGTERM"}.get(signum, str(signum))
        super().__init__(f"stopped by signal {name} while installing; the installer was stopped too")
        self.exit_code = 128 + signum
