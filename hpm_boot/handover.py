"""The hand-over: which command a run execs, and the exec itself.

``choose_command`` turns ``--entrypoint NAME`` (or ``HPM_ENTRYPOINT``) and ``-- CMD``
into an argv;
``hand_over`` touches ``HPM_READY_FILE`` and becomes that argv with ``os.execvpe``: no
shell and no child, so the application is what the container engine signals. The
error types are imported where they are raised: a warm start raises none.
"""

from __future__ import annotations

import os
import sys

from hpm_boot import contract
from hpm_boot.target import canonical_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, NoReturn

    from hpm_boot.log import Log
    from hpm_boot.target import Environment


def entrypoints_of(lock: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(package, entrypoint name, command string) of every package in the lock."""
    return [(p["name"], name, command) for p in lock.get("packages", [])
            for name, command in sorted(p.get("entrypoints", {}).items())]


def requested_entrypoint(option: str | None, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """(the entrypoint a run asks for, who asked): ``--entrypoint`` wins over
    ``HPM_ENTRYPOINT``; an empty ``HPM_ENTRYPOINT`` is no entrypoint."""
    if option is not None:
        return option, "--entrypoint"
    return environ.get(contract.ENTRYPOINT) or None, contract.ENTRYPOINT


def choose_command(lock: Mapping[str, Any], entrypoint: str | None, cmd: Sequence[str],
                   split: Mapping[str, list[str]] | None = None, origin: str = "--entrypoint") -> list[str]:
    """The argv to exec: ``cmd`` as given, or a manifest entrypoint split with shlex
    (``split`` holds commands already split, from the stamp), followed by ``cmd``.
    ``origin`` (``--entrypoint`` or ``HPM_ENTRYPOINT``) is named in the errors."""
    if entrypoint is None:
        if not cmd:
            from hpm_boot.errors import UsageError

            raise UsageError("nothing to run: give a command after -- or --entrypoint NAME",
                             f"or set {contract.ENTRYPOINT}=NAME (a manifest entrypoint)")
        return list(cmd)
    pkg, sep, name = entrypoint.rpartition(":")
    every = entrypoints_of(lock)
    found = [(p, command) for p, n, command in every if n == name and (not sep or p == canonical_name(pkg))]
    if len(found) != 1:
        from hpm_boot.errors import NotFoundError

        how = f"{origin} " if origin.startswith("-") else f"{origin}="
        said = "" if origin.startswith("-") else f" ({how}{entrypoint})"
        if not found:
            known = sorted(f"{p}:{n}" for p, n, _ in every)
            raise NotFoundError(f"no entrypoint {entrypoint!r} in the plan{said}",
                                "entrypoints: " + (", ".join(known) or "none defined"))
        choices = ", ".join(f"{p}:{name}" for p, _ in sorted(found))
        raise NotFoundError(f"entrypoint {name!r}{said} is defined by more than one package; "
                            f"choose one of {choices}", f"e.g. {how}{found[0][0]}:{name}")
    command = found[0][1]
    if split is not None and command in split:
        return [*split[command], *cmd]
    return [*split_command(command), *cmd]


def split_command(command: str) -> list[str]:
    """``shlex.split(command)``, without importing ``shlex`` (and ``re``) when the command
    has no quote, backslash, tab or line break: then splitting at spaces is the same."""
    if not any(c in command for c in "'\"\\\t\r\n"):
        return [word for word in command.split(" ") if word]
    import shlex

    return shlex.split(command)


def quote_argv(argv: Sequence[str]) -> str:
    """argv for a log line, quoted where needed (``shlex.join``, without importing ``re``)."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")
    return " ".join(a if a and set(a) <= safe else "'" + a.replace("'", "'\"'\"'") + "'" for a in argv)


def before_exec() -> None:
    """What every exec of hpm's needs: SIGPIPE and SIGXFSZ back to their defaults (Python
    ignores them, and the new program would inherit that), Python's buffers flushed."""
    import _signal  # the builtin under ``signal``, which would import ``enum``

    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()


def hand_over(argv: Sequence[str], target: Environment, environ: Mapping[str, str], log: Log) -> NoReturn:
    """The last step of ``hpm run``: touch ``HPM_READY_FILE`` (the Kubernetes startupProbe
    of docs/kubernetes.md waits for it, on warm starts too), then become ``argv``."""
    ready = environ.get(contract.READY_FILE)
    if ready:
        try:
            open(ready, "a").close()
        except OSError as exc:
            log.warning(f"{contract.READY_FILE}={ready}: cannot create it: {exc.strerror}")
    exec_target(argv, target, environ)


def with_mode(environ: Mapping[str, str], mode: object) -> Mapping[str, str]:
    """``environ`` with ``RUN_MODE`` set to the mode hpm resolved for (a lock's ``mode``,
    or ``--mode``/``RUN_MODE`` of a registry run), so the application sees the mode it was
    composed in; unchanged when ``mode`` is not ``dev`` or ``prod``."""
    if mode not in ("dev", "prod") or environ.get(contract.RUN_MODE) == mode:
        return environ
    return {**environ, contract.RUN_MODE: str(mode)}


def child_environ(target: Environment, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of a program run in ``target``: lock and key variables removed, the
    target's bin directory first on PATH, VIRTUAL_ENV set for a venv."""
    child = {k: v for k, v in environ.items() if k not in contract.SCRUBBED}
    if target.bin_dir:
        child["PATH"] = target.bin_dir + os.pathsep + child.get("PATH", os.defpath)
    if target.venv:
        child["VIRTUAL_ENV"] = target.venv
    return child


def target_program(program: str, target: Environment) -> str:
    """``python``/``python3``/``pythonX.Y`` is the interpreter hpm installed into, whatever
    PATH says; any other program is looked up on PATH."""
    return target.python if program in ("python", "python3", f"python{target.python_version}") else program


def target_argv(argv: Sequence[str], target: Environment) -> list[str]:
    """``argv`` with a ``python`` word replaced by the target interpreter's path, as
    argv[0] too: Python finds ``sys.executable``, its prefix and so its site-packages
    from argv[0], and a bare ``python`` that is not on PATH (Debian, the base image)
    leaves it with an empty ``sys.executable`` and the stdlib-only ``sys.path``."""
    program = target_program(argv[0], target)
    return [program, *argv[1:]] if program != argv[0] else list(argv)


def exec_target(argv: Sequence[str], target: Environment, environ: Mapping[str, str]) -> NoReturn:
    """Become ``argv`` (``os.execvpe``) in ``target``: see ``child_environ``,
    ``target_argv`` and ``before_exec``."""
    child = child_environ(target, environ)
    argv_out = target_argv(argv, target)
    before_exec()
    try:
        os.execvpe(argv_out[0], argv_out, child)
    except FileNotFoundError:
        from hpm_boot.errors import CommandNotFoundError

        raise CommandNotFoundError(f"command not found: {argv[0]}", f"PATH={child.get('PATH', '')}") from None
    except OSError as exc:  # PermissionError, ENOEXEC (not a program), ...
        from hpm_boot.errors import CommandNotExecutableError

        raise CommandNotExecutableError(
            f"cannot execute {argv[0]}: {exc.strerror}",
            "is it a program (or a script with a #! line) with its x bit set?") from None
