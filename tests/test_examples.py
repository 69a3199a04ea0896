"""examples/make_remotes.py: the bundled example's git "remote", made on first use."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.factory import git

ROOT = Path(__file__).resolve().parents[1]


def copy_examples(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("remotes", "checkouts")
    shutil.copytree(ROOT / "examples", dest / "examples", ignore=ignore)
    return dest / "examples"


def make_remotes(examples: Path) -> str:
    done = subprocess.run([sys.executable, str(examples / "make_remotes.py")], capture_output=True, text=True,
                          check=True)
    return done.stdout


def test_makes_each_remote_once_tagged_and_reproducible(tmp_path: Path) -> None:
    one, two = copy_examples(tmp_path / "one"), copy_examples(tmp_path / "two")
    made = "examples/remotes/milvus-adapter.git: made, milvus-adapter 0.5.1 tagged v0.5.1\n"
    assert make_remotes(one) == made
    assert make_remotes(one) == "examples/remotes/milvus-adapter.git: exists, left as it is\n"
    make_remotes(two)
    repo_one, repo_two = one / "remotes" / "milvus-adapter.git", two / "remotes" / "milvus-adapter.git"
    # the tag names the same commit wherever it is made: fixed author, committer and dates
    assert git(repo_one, "rev-parse", "v0.5.1^{commit}") == git(repo_two, "rev-parse", "v0.5.1^{commit}")
    files = git(repo_one, "ls-tree", "-r", "--name-only", "v0.5.1").split()
    assert files == ["pyproject.toml", "src/milvus_adapter/__init__.py"]
    assert not list((one / "remotes").glob(".*"))  # no temporary directory left behind
