"""YAML reading with line numbers, bounded against hostile input.

A manifest is read into plain Python data plus a map from each field path to the
file and line it came from, so that every later error can point at its source.
Files above ``MAX_FILE_BYTES`` are refused before parsing, and the conversion from
YAML nodes counts every node it produces, so an alias bomb ("billion laughs") is
refused after ``MAX_NODES`` nodes instead of expanding for minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import yaml

from hpm_boot import payload
from hpm_boot.errors import DataError

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pure-Python PyYAML, as in the zipapp
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 64

FieldPath = tuple[str | int, ...]


class YamlError(DataError):
    """A file that cannot be read as YAML; ``file``/``line`` say where, ``problem`` what."""

    def __init__(self, file: Path, line: int | None, problem: str) -> None:
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.line = line
        self.problem = problem

    @property
    def where(self) -> Position | Path:
        """The position of the problem, or the file when no line is known."""
        return Position(self.file, self.line) if self.line is not None else self.file


class Position(NamedTuple):
    """Where something was written: a file and a 1-based line (a tuple: cheap to make)."""

    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Positions(dict[FieldPath, Position]):
    """Field path -> where it was written; the nearest known ancestor answers."""

    def find(self, path: FieldPath) -> Position | None:
        for cut in range(len(path), -1, -1):
            pos = self.get(path[:cut])
            if pos is not None:
                return pos
        return None


def format_path(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def type_name(value: Any) -> str:
    """What kind of YAML value ``value`` is, in messages ("a mapping", "a list")."""
    return payload.kind(value, yaml=True)


class _Converter:
    """YAML node tree -> Python data, recording positions and counting nodes.

    Aliases are expanded, so every node is counted each time it is reached: a
    "billion laughs" document stops at ``MAX_NODES``; a recursive alias or a
    document nested deeper than ``MAX_DEPTH`` is refused instead of recursing.
    """

    def __init__(self, file: Path, constructor: yaml.constructor.SafeConstructor) -> None:
        self.file = file
        self.constructor = constructor
        self.positions = Positions()
        self.count = 0

    def error(self, node: yaml.Node, problem: str) -> YamlError:
        return YamlError(self.file, node.start_mark.line + 1, problem)

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                self.file,
                None,
                f"more than {MAX_NODES} YAML nodes after expanding aliases; "
                "refusing it (is this an alias bomb?)",
            )
        if len(path) > MAX_DEPTH:
            raise self.error(node, f"nested deeper than {MAX_DEPTH} levels; refusing it")
        self.positions[path] = Position(self.file, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.error(key_node, "YAML merge keys (<<) are not supported in manifests")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.error(
                        key_node, f"{format_path(path) or 'top level'}: mapping keys must be strings"
                    )
                key = self.convert(key_node, (*path, "<key>"))
                if isinstance(key, _Number):
                    key = key.text
                if not isinstance(key, str):
                    raise self.error(
                        key_node, f"{format_path(path) or 'top level'}: mapping keys must be strings"
                    )
                if key in out:
                    raise self.error(key_node, f"{format_path((*path, key))}: key given twice")
                out[key] = self.convert(value_node, (*path, key))
                self.positions[(*path, key)] = Position(self.file, key_node.start_mark.line + 1)
            self.positions.pop((*path, "<key>"), None)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:str":  # the common case, without the constructor
            return node.value
        if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            # Keep the digits as written so "version: 1.10" is not read as 1.1.
            return _Number(self.constructor.construct_object(node, deep=False), node.value)
        if node.tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"):
            return node.value
        try:
            return self.constructor.construct_object(node, deep=False)
        except yaml.constructor.ConstructorError as exc:
            raise self.error(node, f"invalid YAML: {exc.problem or exc}") from None


class _Number:
    """A YAML number that remembers how it was written."""

    __slots__ = ("text", "value")

    def __init__(self, value: int | float, text: str) -> None:
        self.value = value
        self.text = text


def unwrap_numbers(data: Any, string_paths: frozenset[FieldPath], path: FieldPath = ()) -> Any:
    """Replace recorded numbers by their value, or by their text where a string is due."""
    if isinstance(data, dict):
        return {k: unwrap_numbers(v, string_paths, (*path, str(k))) for k, v in data.items()}
    if isinstance(data, list):
        return [unwrap_numbers(v, string_paths, (*path, i)) for i, v in enumerate(data)]
    if isinstance(data, _Number):
        return data.text if any(_matches(path, p) for p in string_paths) else data.value
    return data


def _matches(path: FieldPath, pattern: FieldPath) -> bool:
    return len(path) == len(pattern) and all(
        want in ("*", got) for got, want in zip(path, pattern, strict=True)
    )


def load(file: Path) -> tuple[Any, Positions]:
    """Read one YAML document: (data, positions), or (None, empty) for an empty file.

    Raises ``YamlError`` (a DataError, exit 65) naming the file and, when known, the
    line; files above ``MAX_FILE_BYTES`` are refused before any parsing.
    """
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise YamlError(
                file,
                None,
                f"{size} bytes is larger than the {MAX_FILE_BYTES} bytes a manifest may have; "
                "refusing to parse it",
            )
        with file.open("rb") as f:
            text = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise YamlError(file, None, f"cannot read: {exc.strerror or exc}") from None
    if len(text) > MAX_FILE_BYTES:
        raise YamlError(file, None, f"larger than {MAX_FILE_BYTES} bytes; refusing to parse it")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Positions()
        converter = _Converter(file, loader)
        return converter.convert(node, ()), converter.positions
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        raise YamlError(file, mark.line + 1 if mark else None, f"invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise YamlError(file, None, f"invalid YAML: {exc}") from None
    except RecursionError:  # the pure-Python composer on absurdly deep nesting
        raise YamlError(file, None, f"nested deeper than {MAX_DEPTH} levels; refusing it") from None
    except UnicodeDecodeError as exc:
        raise YamlError(file, None, f"not valid UTF-8 text: {exc.reason}") from None
    finally:
        loader.dispose()
