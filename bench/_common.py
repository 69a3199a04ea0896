"""Helpers shared by the bench scripts (no bench in this module).

``write_section`` records a bench's figures in ``docs/benchmarks.md``; ``write_pypi_registry``
writes the registry of PyPI-style manifests several benches lock and install;
``build_hpm_image`` builds the image of docker/Dockerfile the container benches start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
ENGINE = os.environ.get("HPM_BENCH_ENGINE", "podman")
BASE = os.environ.get("HPM_TEST_BASE", "localhost/hpm-base:bookworm")

__all__ = ["BASE", "DOC", "ENGINE", "ROOT", "build_hpm_image", "shown", "write_pypi_registry",
           "write_section"]


def _checked(*args: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=900, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:8])} -> exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def build_hpm_image(work: Path, image: str) -> str:
    """Set the engine up (docker/setup-engine.sh), then build docker/Dockerfile on ``BASE`` as
    ``image``, from a fresh hpm.pyz and the host's uv (in ``work/ctx``). Returns the image's
    Python version, ``X.Y``."""
    from tests.support.factory import uv_bin

    out = subprocess.run(["bash", str(ROOT / "docker" / "setup-engine.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stdout.strip() or "setup-engine.sh failed")
    ctx = work / "ctx"
    ctx.mkdir()
    _checked(sys.executable, str(ROOT / "build_zipapp.py"), "-o", str(ctx / "hpm.pyz"))
    shutil.copy2(uv_bin(), ctx / "uv")
    _checked(ENGINE, "build", "-q", "-t", image, "--build-arg", f"BASE={BASE}", "-f",
             str(ROOT / "docker" / "Dockerfile"), str(ctx))
    return _checked(ENGINE, "run", "--rm", "--entrypoint", "python3", image, "-c",
                    "import sys;print('%d.%d' % sys.version_info[:2])").strip()


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
