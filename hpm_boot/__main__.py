"""Entry point for ``python -m hpm_boot``, the ``hpm`` console script and ``hpm.pyz``."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def end_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown, which costs ~1.2 ms (8% of
    hpm's own time on a cold install). Safe after ``boot.fast_run``: every file it writes
    is closed (and renamed into place) before it returns, and it registers no atexit hook."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (contextlib.suppress would cost an import)
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, or None: nothing more to say
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    head = argv[: argv.index("--")] if "--" in argv else argv
    if argv[:1] == ["shell"] or (argv[:1] == ["run"] and "--ephemeral" in head):
        # A reused ephemeral environment: exec uv without reading the registry.
        import os

        from hpm_boot.launch import fast_ephemeral

        code = fast_ephemeral(argv, os.environ)
        if code is not None:
            return code
    elif argv[:1] in (["run"], ["install"]):
        # The container path: install a lock (when something is missing) and exec,
        # with the standard library only; anything else falls through to the CLI.
        import os

        from hpm_boot.boot import fast_run

        code = fast_run(argv[1:], os.environ, exec_after=argv[0] == "run")
        if code is not None:
            end_now(code)
    from hpm_boot._pyz import setup
    from hpm_boot.errors import HpmError

    try:
        setup()  # inside hpm.pyz: the rest of hpm, the vendored packages, msgspec; else nothing
    except HpmError as exc:
        import os

        from hpm_boot.log import Log

        return Log(os.environ).error(exc)
    from hpm_boot.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
