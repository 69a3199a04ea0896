"""Helpers shared by the bench scripts (no bench in this module).

``write_section`` records a bench's figures in ``docs/benchmarks.md``; ``write_pypi_registry``
writes the registry of PyPI-style manifests several benches lock and install.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"

__all__ = ["DOC", "ROOT", "shown", "write_pypi_registry", "write_section"]


def shown(path: str) -> str:
    """``path`` as a figure's caption names it: relative to the repository when inside it."""
    full = Path(path).absolute()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else path


def write_section(text: str, heading: str) -> None:
    """Replace the section of docs/benchmarks.md that starts at ``heading`` (up to the next
    ``## `` heading) with ``text``, or append ``text`` when there is no such section; the
    other sections stay as they are."""
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    start = doc.find(heading)
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        end = doc.find("\n## ", start + len(heading))
        doc = doc[:start] + text + (doc[end:] if end >= 0 else "")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(doc, encoding="utf-8")


def write_pypi_registry(registry: Path, names: Iterable[str] | Mapping[str, str]) -> Path:
    """Create the directory ``registry`` with one manifest per name, from the package index,
    pinned ``==VERSION``: the mapping's value when ``names`` maps names to versions, else
    1.0.0. Returns ``registry``."""
    pins = names.items() if isinstance(names, Mapping) else ((name, "1.0.0") for name in names)
    registry.mkdir()
    for name, version in pins:
        (registry / f"{name}.yaml").write_text(
            f'name: {name}\nversion: {version}\nsources:\n  prod: {{type: pypi, version: "=={version}"}}\n'
        )
    return registry
