"""YAML reading with line numbers, bounded against hostile input.

A manifest is read into plain Python data plus a map from each field path to the
file and line it came from, so that every later error can point at its source.
Files above ``MAX_FILE_BYTES`` are refused before parsing, and the conversion from
YAML nodes counts every node it produces, so an alias bomb ("billion laughs") is
refused after ``MAX_NODES`` nodes instead of expanding for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hpm_boot.errors import DataError

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pure-Python PyYAML, as in the zipapp
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 20_000

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    file: Path
    line: int  # 1-based

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
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Converter:
    """YAML node tree -> Python data, recording positions and counting nodes."""

    def __init__(self, file: Path, constructor: yaml.constructor.SafeConstructor) -> None:
        self.file = file
        self.constructor = constructor
        self.positions = Positions()
        self.count = 0

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise DataError(
                f"{self.file}: more than {MAX_NODES} YAML nodes after expanding aliases; "
                "refusing (is this an alias bomb?)"
            )
        self.positions[path] = Position(self.file, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise DataError(
                        f"{self.file}:{key_node.start_mark.line + 1}: "
                        "YAML merge keys (<<) are not supported in manifests"
                    )
                key = self.convert(key_node, (*path, "<key>"))
                if isinstance(key, _Number):
                    key = key.text
                if not isinstance(key, str):
                    raise DataError(
                        f"{self.file}:{key_node.start_mark.line + 1}: "
                        f"{format_path(path) or 'top level'}: mapping keys must be strings"
                    )
                if key in out:
                    raise DataError(
                        f"{self.file}:{key_node.start_mark.line + 1}: "
                        f"{format_path((*path, str(key)))}: key given twice"
                    )
                out[key] = self.convert(value_node, (*path, str(key)))
                self.positions[(*path, str(key))] = Position(
                    self.file, key_node.start_mark.line + 1
                )
            self.positions.pop((*path, "<key>"), None)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=False)
        if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            # Keep the digits as written so "version: 1.10" is not read as 1.1.
            return _Number(value, node.value)
        if node.tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"):
            return node.value
        return value


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
        want in ("*", got) for got, want in zip(path, pattern)
    )


def load(file: Path) -> tuple[Any, Positions]:
    """Read one YAML document; raise DataError (65) with file and line on any problem."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataError(
                f"{file}: {size} bytes is larger than the {MAX_FILE_BYTES} bytes a manifest "
                "may have; refusing to parse it"
            )
        text = file.read_bytes()
    except OSError as exc:
        raise DataError(f"{file}: cannot read: {exc.strerror}") from None
    if len(text) > MAX_FILE_BYTES:
        raise DataError(f"{file}: larger than {MAX_FILE_BYTES} bytes; refusing to parse it")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Positions()
        converter = _Converter(file, loader)
        return converter.convert(node, ()), converter.positions
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "invalid YAML"
        raise DataError(f"{file}{line}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{file}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
