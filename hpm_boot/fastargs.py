"""The command-line grammar of the fast paths, one for all of them.

``hpm run``/``hpm install`` from a lock (``warmstart``) and a reused ephemeral
environment (``reuse``) answer before the CLI is loaded, so they read their options
without argparse. They read the same grammar argparse builds in ``hpm_boot.cli``, for a
subset of the options: ``--name VALUE``, ``--name=VALUE``, ``-x VALUE``, flags, and
``--`` before the command. Anything else (a positional, an abbreviation, ``--help``)
makes ``parse`` answer None, and the full CLI decides.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


class Grammar:
    """Options by spelling: flags (-> True), lists (repeatable), single values; each
    maps a spelling to its destination name."""

    __slots__ = ("flags", "lists", "values")

    def __init__(self, flags: Mapping[str, str | None], lists: Mapping[str, str],
                 values: Mapping[str, str]) -> None:
        self.flags, self.lists, self.values = flags, lists, values

    def empty(self) -> dict[str, Any]:
        """Every destination at its default, in a fixed order (``reuse`` keys records by it)."""
        out: dict[str, Any] = {}
        for dest in self.lists.values():
            out[dest] = []
        for dest in self.values.values():
            out[dest] = None
        for dest in self.flags.values():
            if dest:
                out[dest] = False
        return out


_INSTALLER_LISTS = {"--find-links": "find_links"}
_INSTALLER_VALUES = {"--index-url": "index_url"}
_INSTALLER_FLAGS = {"--no-index": "no_index", "--offline": "offline"}

#: ``hpm run``/``hpm install`` with a lock: ``[--lock FILE] [--entrypoint NAME] [installer options]``
RUN = Grammar(flags=_INSTALLER_FLAGS, lists=_INSTALLER_LISTS,
              values={"--lock": "lock", "--entrypoint": "entrypoint", **_INSTALLER_VALUES})

#: ``hpm run --ephemeral`` and ``hpm shell``: the selection, installer options, --python
EPHEMERAL = Grammar(
    flags={"--no-defaults": "no_defaults", **_INSTALLER_FLAGS, "--ephemeral": None},
    lists={"-r": "registry", "--registry": "registry", "-w": "with", "--with": "with", "-g": "group",
           "--group": "group", "-p": "provide", "--provide": "provide", **_INSTALLER_LISTS},
    values={"--mode": "mode", **_INSTALLER_VALUES, "--python": "python", "--entrypoint": "entrypoint"},
)


def split(argv: Sequence[str]) -> tuple[str | None, list[str], list[str] | None]:
    """(command word, the options after it, the command after ``--`` or None without one)."""
    if not argv:
        return None, [], None
    rest = list(argv[1:])
    if "--" not in rest:
        return argv[0], rest, None
    cut = rest.index("--")
    return argv[0], rest[:cut], rest[cut + 1:]


def parse(tokens: Sequence[str], grammar: Grammar) -> dict[str, Any] | None:
    """``tokens`` (the options, without ``--`` and what follows) by ``grammar``; None when
    any token is not one of its options."""
    out = grammar.empty()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if name in grammar.flags and not eq:
            dest = grammar.flags[name]
            if dest:
                out[dest] = True
            i += 1
            continue
        if name not in grammar.lists and name not in grammar.values:
            return None
        if not eq:
            if i + 1 >= len(tokens):
                return None
            i += 1
            value = tokens[i]
        i += 1
        if name in grammar.lists:
            out[grammar.lists[name]].append(value)
        else:
            out[grammar.values[name]] = value
    return out
