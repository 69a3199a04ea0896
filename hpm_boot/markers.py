"""PEP 508 environment markers (``python_version < '3.11'``), evaluated with the standard library.

The start path decides whether a lock's pins apply to this interpreter before ``_pyz.setup()``,
so it cannot import packaging (hpm.pyz serves its copy only after setup). ``evaluate`` answers
the markers real locks carry exactly as ``packaging.markers.Marker(m).evaluate(env)`` does, and
None for the rest (``extra``, pre/post/dev/local versions, ``===``, and whatever packaging 26
and the packaging before it answer differently): the caller then asks packaging.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: how the marker variables may be spelled -> the environment key
_NAMES = {name: name.replace(".", "_") for name in (
    "python_version", "python_full_version", "os_name", "os.name", "sys_platform", "sys.platform",
    "platform_release", "platform_system", "platform_version", "platform.version", "platform_machine",
    "platform.machine", "platform_python_implementation", "platform.python_implementation",
    "implementation_name", "implementation_version", "extra", "extras", "dependency_groups")}
_NAMES["python_implementation"] = "platform_python_implementation"
_UNDECIDED_KEYS = frozenset({"extra", "extras", "dependency_groups"})  # no extras context here
_VERSION_KEYS = frozenset({"implementation_version", "platform_release", "python_full_version",
                           "python_version"})
_PLATFORM = {"platform_machine": "machine", "platform_release": "release", "platform_system": "system",
             "platform_version": "version", "platform_python_implementation": "python_implementation"}
_OPS = ("===", "==", "~=", "!=", "<=", ">=", "<", ">")  # longest first, as packaging's tokenizer
_DIGITS = frozenset("0123456789")


class _Undecided(Exception):
    """Not answerable exactly as packaging would answer: bad syntax, or semantics left to it."""


def evaluate(markers: str, environment: Mapping[str, str] | None = None) -> bool | None:
    """Whether ``markers`` hold for ``environment`` (default: this interpreter's, computed once per
    call from sys/os/platform), or None when this module cannot decide exactly as packaging would
    (a syntax it does not handle, a version comparison that needs full PEP 440 semantics): the
    caller then hands the question to packaging."""
    parser = _Parser(markers, environment or {})
    try:
        result = parser.marker(0)
    except _Undecided:
        return None
    return result if parser.pos == len(markers) else None


class _Parser:
    """packaging's marker grammar, evaluated as it is read. Only spaces and tabs are whitespace."""

    def __init__(self, source: str, environment: Mapping[str, str]) -> None:
        self.source, self.pos, self.environment = source, 0, environment
        self.defaults: dict[str, str] = {}

    def marker(self, depth: int) -> bool:  # atom (('and' | 'or') atom)*; 'and' binds tighter
        result, group = False, self.atom(depth)
        while True:
            if self.word("and"):
                right = self.atom(depth)  # every atom is read: one that packaging rejects fails it all
                group = group and right
            elif self.word("or"):
                result, group = result or group, self.atom(depth)
            else:
                return result or group

    def atom(self, depth: int) -> bool:  # '(' marker ')' | VAR op 'string' | 'string' op VAR
        self.space()
        if self.source.startswith("(", self.pos) and depth < 50:
            self.pos += 1
            value = self.marker(depth + 1)
            if not self.source.startswith(")", self.pos):
                raise _Undecided
            self.pos += 1
        else:
            (left_key, left), op, (right_key, right) = self.operand(), self.operator(), self.operand()
            if (left_key is None) == (right_key is None):  # two variables or two strings
                raise _Undecided
            value = _compare(left_key or right_key or "", left, op, right)
        self.space()
        return value

    def space(self) -> int:
        start = self.pos
        while self.source[self.pos:self.pos + 1] in (" ", "\t"):
            self.pos += 1
        return self.pos - start

    def word(self, word: str) -> bool:  # packaging's r"\bword\b"; a non-word character precedes here
        end = self.pos + len(word)
        after = self.source[end:end + 1]
        if not self.source.startswith(word, self.pos) or after == "_" or after.isalnum():
            return False
        self.pos = end
        return True

    def operand(self) -> tuple[str | None, str]:  # (environment key, its value) or (None, the string)
        self.space()
        quote = self.source[self.pos:self.pos + 1]
        if quote in ("'", '"'):
            end = self.source.find(quote, self.pos + 1)
            text = self.source[self.pos + 1:end]
            if end < 0 or "\\" in text or not text.isprintable():  # packaging: ast.literal_eval
                raise _Undecided
            self.pos = end + 1
            return None, text
        key = next((key for name, key in _NAMES.items() if self.word(name)), None)
        if key is None or key in _UNDECIDED_KEYS:
            raise _Undecided
        if key not in self.environment and key not in self.defaults:
            self.defaults[key] = _default(key)
        value = self.environment[key] if key in self.environment else self.defaults[key]
        if not isinstance(value, str):
            raise _Undecided
        return key, value + "local" if key == "python_full_version" and value.endswith("+") else value

    def operator(self) -> str:
        self.space()
        if self.word("in"):
            return "in"
        if self.word("not"):
            if self.space() and self.word("in"):
                return "not in"
            raise _Undecided
        op = next((op for op in _OPS if self.source.startswith(op, self.pos)), None)
        if op is None:
            raise _Undecided
        self.pos += len(op)
        return op


def _default(key: str) -> str:
    """``key`` of packaging.markers.default_environment()."""
    if key in _PLATFORM:
        import platform

        return str(getattr(platform, _PLATFORM[key])())
    info, full = sys.implementation.version, sys.version.split(None, 1)[0]  # platform.python_version()
    full += ".0" if full.count(".") == 1 else ""
    kind = "" if info.releaselevel == "final" else f"{info.releaselevel[0]}{info.serial}"
    return {"sys_platform": sys.platform, "os_name": os.name, "implementation_name": sys.implementation.name,
            "implementation_version": f"{info.major}.{info.minor}.{info.micro}{kind}",
            "python_full_version": full, "python_version": ".".join(full.split(".")[:2])}[key]


def _release(version: str) -> tuple[int, ...] | None:
    """The numbers of a plain release (``3.11``), else None."""
    parts = version.split(".")
    return tuple(map(int, parts)) if all(part.isascii() and part.isdigit() for part in parts) else None


def _compare(key: str, lhs: str, op: str, rhs: str) -> bool:
    """packaging's ``_eval_op``: as PEP 440 versions if ``op + rhs`` is a version specifier, else
    as strings (``in``, ``==``, ``!=``; packaging 26 and older order strings differently)."""
    if op in ("in", "not in"):
        return (lhs in rhs) == (op == "in")
    spec = rhs.lstrip(" ")
    if (spec[1:2] if spec[:1] in ("v", "V") else spec[:1]) not in _DIGITS:  # not a specifier
        if op not in ("==", "!="):
            raise _Undecided
        return (lhs == rhs) == (op == "==")
    wildcard = op in ("==", "!=") and rhs.endswith(".*")
    have, want = _release(lhs), _release(rhs[:-2] if wildcard else rhs)
    # packaging 26 compares other keys as strings, older ones as versions
    if key not in _VERSION_KEYS or have is None or want is None or op == "===" or (
            op == "~=" and len(want) < 2):
        raise _Undecided
    if wildcard:  # a prefix match: 3 is 3.0 in ``== 3.0.*``
        have = (have + (0,) * len(want))[:len(want)]
    width = max(len(have), len(want))
    a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))  # 3.11 == 3.11.0
    if op == "~=":  # >= V, and == V without its last number as a prefix
        return a >= b and a[:len(want) - 1] == b[:len(want) - 1]
    return {"<": a < b, "<=": a <= b, "==": a == b, "!=": a != b, ">=": a >= b, ">": a > b}[op]
