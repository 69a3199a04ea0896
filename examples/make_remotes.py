"""Make the bundled example's local git "remotes": ``examples/remotes/NAME.git``.

``examples/registry/milvus-adapter.yaml`` has a git prod source, as a real plugin does::

    prod: {type: git, url: ../remotes/milvus-adapter.git, ref: v0.5.1}

so that the developer loop of docs/dev-loop.md (checkout, dev run, edit, tag, pin, prod
run) can be tried on the example, offline. This script makes each repository that a
manifest of ``examples/registry`` names under ``../remotes/``: a bare repository holding
``examples/packages/NAME`` in one commit, tagged ``v<version>`` (the version of its
``pyproject.toml``). A repository that exists already is left as it is (delete
``examples/remotes`` to start again). Standard library and git only; run it with any
Python 3.10+: ``python3 examples/make_remotes.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
#: ``url: ../remotes/NAME.git`` in a manifest of examples/registry
_REMOTE_URL = re.compile(r"url:\s*['\"]?\.\./remotes/(?P<name>[A-Za-z0-9._-]+)\.git")
#: a fixed identity and date, so the same sources always give the same commit
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "hpm example", "GIT_AUTHOR_EMAIL": "example@hpm.invalid",
    "GIT_COMMITTER_NAME": "hpm example", "GIT_COMMITTER_EMAIL": "example@hpm.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def git(*args: str, cwd: Path) -> None:
    env = {**os.environ, **_GIT_ENV}
    proc = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false",
                           "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"make_remotes: git {' '.join(args)} failed in {cwd}:\n{proc.stderr.strip()}")


def remote_names(registry: Path) -> list[str]:
    """The repositories the registry's manifests name under ``../remotes/``."""
    texts = [f.read_text() for f in sorted(registry.glob("*.yaml"))]
    return sorted({m.group("name") for text in texts for m in _REMOTE_URL.finditer(text)})


def version_of(package: Path) -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', (package / "pyproject.toml").read_text(), re.MULTILINE)
    if m is None:
        raise SystemExit(f"make_remotes: no version in {package / 'pyproject.toml'}")
    return m.group(1)


def make_remote(name: str, remotes: Path) -> str:
    """Make ``remotes/NAME.git`` from ``packages/NAME``, unless it exists; say what happened."""
    target = remotes / f"{name}.git"
    if target.exists():
        return f"{target.relative_to(EXAMPLES.parent)}: exists, left as it is"
    package = EXAMPLES / "packages" / name
    tag = f"v{version_of(package)}"
    remotes.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=remotes) as tmp:
        work = Path(tmp) / name
        shutil.copytree(package, work, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        git("init", "-q", cwd=work)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"{name} {tag[1:]}", cwd=work)
        git("tag", tag, cwd=work)
        bare = Path(tmp) / f"{name}.git"
        git("clone", "-q", "--bare", str(work), str(bare), cwd=Path(tmp))
        os.replace(bare, target)  # whole or not at all
    return f"{target.relative_to(EXAMPLES.parent)}: made, {name} {tag[1:]} tagged {tag}"


def main() -> int:
    names = remote_names(EXAMPLES / "registry")
    for name in names:
        print(make_remote(name, EXAMPLES / "remotes"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
