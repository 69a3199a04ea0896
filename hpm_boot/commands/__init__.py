"""hpm's commands, one module each, and the table that lists them (as pip's ``commands/``).

A command module defines ``add_arguments(parser)`` and ``main(args, environ) -> int``.
``hpm_boot.cli`` imports only the module of the command being run, so a command's
imports cost nothing to the others. Options that several commands share are in
``_options``, the way they print in ``_output``; no command imports ``hpm_boot.cli``.

To add a command: write ``commands/NAME.py`` with those two functions and add a row
to ``COMMANDS``.
"""

from __future__ import annotations

from typing import NamedTuple


class CommandInfo(NamedTuple):
    module: str
    summary: str
    #: whether the command resolves the registry (and so takes the selection options)
    selects: bool = True


#: command name -> its module, in the order ``hpm --help`` lists them
COMMANDS: dict[str, CommandInfo] = {
    "validate": CommandInfo("validate", "check every manifest and overlay; report all problems", False),
    "list": CommandInfo("list", "the registry's packages, virtuals and groups"),
    "plan": CommandInfo("plan", "the resolved plan and why each package is in"),
    "why": CommandInfo("why", "the chain of reasons that put NAME in the plan"),
    "lock": CommandInfo("lock", "freeze the plan: git SHAs, the pinned closure with hashes"),
    "decode": CommandInfo("decode", "print the lock carried by HPM_LOCK_B64/HPM_LOCK_FILE, after "
                          "checking it", False),
    "install": CommandInfo("install", "install the lock or the plan into the target environment; no exec"),
    "run": CommandInfo("run", "install what is missing, then exec the command or entrypoint"),
    "shell": CommandInfo("shell", "an interactive shell in the plan's ephemeral environment"),
    "gc": CommandInfo("gc", "remove stale ephemeral environments", False),
    "dev": CommandInfo("dev", "plugin checkouts: checkout, status, pin"),
    "smoke": CommandInfo("smoke", "CI image smoke test: install, import, run smoke entrypoints, "
                         "JUnit report"),
    "self-check": CommandInfo("self_check", "report interpreter, msgspec wheel, cache and installer", False),
    "docker": CommandInfo("docker", "lock the selection and run an image with HPM_LOCK_B64 injected"),
}
