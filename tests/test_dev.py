"""``hpm dev`` (checkout, status, pin) and the vector-db switch, with real git repositories.

The switch test is the seed's promise end to end: two providers of ``vector-db`` in
their own git repositories, both shipping the import name ``vectordb``; the core app
imports ``vectordb`` and never changes. Dev mode picks the provider that is checked
out (rule 3), prod mode the one named by ``--provide``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpm_boot import cli
from hpm_boot.commands.dev import edit_ref
from hpm_boot.errors import DataError
from tests.support.factory import GitRepo, git, git_commit_all, git_tag, make_git_repo, make_project
from tests.support.registry_cli import write


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv), dict(os.environ))
    out, err = capsys.readouterr()
    return rc, out, err


def hpm(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpm_boot", *args], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=180)


MANIFEST = """\
# The git plugin. Comments and layout must survive `hpm dev pin`.
name: hpmtest-gitplugin
version: 0.1.0   # bumped by hand
sources:
  prod: {{type: git, url: "{url}", ref: v0.1.0}}  # the release in use
  dev:  {{type: local, path: ../checkouts/gitplugin, editable: true}}
"""


@pytest.fixture
def reg(tmp_path: Path, git_plugin: GitRepo, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry at ./registry with the git plugin; the test runs in tmp_path."""
    write(tmp_path, {"registry/gitplugin.yaml": MANIFEST.format(url=git_plugin.url)})
    monkeypatch.chdir(tmp_path)
    return tmp_path / "registry" / "gitplugin.yaml"


CHECKOUT = Path("checkouts/gitplugin")


def test_checkout_clones_at_the_prod_ref(reg: Path, git_plugin: GitRepo,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    assert rc == 0
    assert "checked out" in out and "v0.1.0" in out and "detached HEAD" in out
    assert git(CHECKOUT, "rev-parse", "HEAD") == git_plugin.tags["v0.1.0"]
    # dev mode now uses it (editable), prod still the git tag
    rc, out, _ = run(capsys, "plan", "--mode", "dev", "--with", "hpmtest-gitplugin")
    assert rc == 0 and "editable" in out and "(dev)" in out
    # again: already that repository, nothing touched
    (CHECKOUT / "scratch.txt").write_text("mine")
    rc, out, _ = run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    assert rc == 0 and "already a checkout" in out
    assert (CHECKOUT / "scratch.txt").read_text() == "mine"


def test_checkout_refuses_a_foreign_target(reg: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    CHECKOUT.mkdir(parents=True)
    (CHECKOUT / "notes.txt").write_text("keep me")
    rc, _, err = run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    assert rc == 73
    assert "exists and is not a checkout of" in err.splitlines()[0]
    assert sorted(os.listdir(CHECKOUT)) == ["notes.txt"] and not (CHECKOUT / ".git").exists()
    assert not [p for p in CHECKOUT.parent.iterdir() if p.name.startswith(".")]  # no temp clone left

    other = make_git_repo(tmp_path / "other", "hpmtest-other")
    (CHECKOUT / "notes.txt").unlink()
    CHECKOUT.rmdir()
    git(tmp_path, "clone", "-q", str(other.path), str(CHECKOUT))
    rc, _, err = run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    assert rc == 73 and "a git checkout of" in err
    assert git(CHECKOUT, "rev-parse", "HEAD") == git(other.path, "rev-parse", "HEAD")


def test_checkout_into_an_empty_directory_and_path(reg: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    CHECKOUT.mkdir(parents=True)
    rc, _, _ = run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    assert rc == 0 and (CHECKOUT / ".git").is_dir()
    rc, out, _ = run(capsys, "dev", "checkout", "hpmtest-gitplugin", "--path", "elsewhere")
    assert rc == 0 and Path("elsewhere/.git").is_dir() and "dev mode looks in" in out


def test_checkout_needs_git_prod_and_a_dev_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        git_plugin: GitRepo) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {
        "registry/pypi.yaml": """
            name: hpmtest-core
            version: 1.0.0
            sources:
              prod: {type: pypi}
              dev: {type: local, path: ../checkouts/core}
            """,
        "registry/nodev.yaml": f"""
            name: hpmtest-gitplugin
            version: 0.1.0
            sources:
              prod: {{type: git, url: "{git_plugin.url}", ref: v0.2.0}}
            """,
    })
    rc, _, err = run(capsys, "dev", "checkout", "hpmtest-core")
    assert rc == 66 and "not git" in err and not Path("checkouts").exists()
    rc, _, err = run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    assert rc == 2 and "--path" in err
    rc, out, _ = run(capsys, "dev", "checkout", "hpmtest-gitplugin", "--path", "gp")
    assert rc == 0 and git("gp", "rev-parse", "HEAD") == git_plugin.tags["v0.2.0"]
    assert "no dev source" in out
    rc, _, err = run(capsys, "dev", "checkout", "nope")
    assert rc == 66


def test_status_table_and_json(reg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "dev", "status", "--mode", "dev")
    assert rc == 0 and "missing" in out and "falls back to prod" in out
    run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    rc, out, _ = run(capsys, "dev", "status", "--mode", "dev")
    assert "clean" in out and "at v0.1.0" in out and "dev: editable" in out
    (CHECKOUT / "new.py").write_text("x = 1\n")
    git_commit_all(CHECKOUT, "work")
    (CHECKOUT / "wip.py").write_text("y = 2\n")
    rc, out, _ = run(capsys, "dev", "status", "--json", "--mode", "prod")
    (row,) = json.loads(out)
    assert row["uses"] == "prod" and row["source"].startswith("git ")
    assert row["exists"] and row["dirty"] and row["changes"] == 1
    assert (row["ahead"], row["behind"], row["prod_ref"]) == (1, 0, "v0.1.0")
    rc, out, _ = run(capsys, "dev", "status", "--with", "hpmtest-gitplugin")
    assert "dirty (1)" in out and "1 ahead of v0.1.0" in out


def test_pin_tag_keeps_comments_and_layout(reg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    before = reg.read_text()
    git(CHECKOUT, "checkout", "-q", "v0.2.0")
    rc, out, _ = run(capsys, "dev", "pin", "hpmtest-gitplugin")
    assert rc == 0 and "pinned tag v0.2.0" in out and "(was v0.1.0)" in out
    assert reg.read_text() == before.replace("ref: v0.1.0}", "ref: v0.2.0}")
    assert "version: 0.1.0" in out  # the version note: pin changes only the ref
    rc, out, _ = run(capsys, "dev", "pin", "hpmtest-gitplugin")
    assert rc == 0 and "already pins v0.2.0" in out


def test_pin_refuses_dirty_and_pins_a_commit(reg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "dev", "checkout", "hpmtest-gitplugin")
    before = reg.read_text()
    (CHECKOUT / "hpmtest_gitplugin" / "__init__.py").write_text("NAME = 'changed'\n")
    rc, _, err = run(capsys, "dev", "pin", "hpmtest-gitplugin")
    assert rc == 1 and "uncommitted" in err and reg.read_text() == before
    sha = git_commit_all(CHECKOUT, "untagged work")
    rc, out, _ = run(capsys, "dev", "pin", "hpmtest-gitplugin")
    assert rc == 0 and "no tag at HEAD: pinned commit" in out and "on no remote branch" in out
    assert reg.read_text() == before.replace("ref: v0.1.0}", f"ref: {sha}}}")
    git_tag(CHECKOUT, "v0.3.0")
    (CHECKOUT / "wip.txt").write_text("w")
    rc, out, _ = run(capsys, "dev", "pin", "hpmtest-gitplugin", "--allow-dirty")
    assert rc == 0 and "pinned tag v0.3.0" in out and "not in" in out  # unpushed tag warned about
    assert "ref: v0.3.0}" in reg.read_text()


def test_pin_without_checkout_or_git_ref(reg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "dev", "pin", "hpmtest-gitplugin")
    assert rc == 66 and "hpm dev checkout" in err


BLOCK = "sources:\n  prod:\n    type: git\n"


@pytest.mark.parametrize(("text", "new", "expected"), [
    (BLOCK + "    url: u  # c\n    ref: v1  # keep\n", "v2",
     BLOCK + "    url: u  # c\n    ref: v2  # keep\n"),
    (BLOCK + '    ref: "v1"\n', "v2", BLOCK + '    ref: "v2"\n'),
    (BLOCK + "    ref: 'v1'\r\n", "v2", BLOCK + "    ref: 'v2'\r\n"),
    ("sources: {prod: {type: git, url: u, ref: v1}}\n", "v2",
     "sources: {prod: {type: git, url: u, ref: v2}}\n"),
    ("sources:\n  prod: {type: git, ref: v1}\n", "1234567",  # plain would read as a number
     'sources:\n  prod: {type: git, ref: "1234567"}\n'),
])
def test_edit_ref_in_place(text: str, new: str, expected: str) -> None:
    assert edit_ref(text, new, Path("m.yaml"))[0] == expected


def test_edit_ref_refuses_what_is_not_there() -> None:
    with pytest.raises(DataError, match=r"no sources\.prod\.ref"):
        edit_ref("name: x\nsources:\n  dev: {type: local, path: p}\n", "v1", Path("m.yaml"))
    with pytest.raises(DataError, match="not git"):
        edit_ref("sources:\n  prod: {type: pypi, ref: v1}\n", "v2", Path("m.yaml"))


# ---------------------------------------------------------------- vector-db: switching implementations


def _provider(root: Path, name: str, label: str) -> GitRepo:
    return make_git_repo(root / "repos" / name, name, tags=["v0.1.0"],
                         modules={"vectordb/__init__.py": f'NAME = "{label}"\n'})


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


def test_vector_db_switch(tmp_path: Path, wheelhouse: Path) -> None:
    qdrant = _provider(tmp_path, "vdb-qdrant", "qdrant")
    milvus = _provider(tmp_path, "vdb-milvus", "milvus")
    core_code = "import vectordb\n\n\ndef main():\n    print('core uses', vectordb.NAME)\n"
    core = make_project(tmp_path / "core", "core-app", "1.0.0",
                        modules={"coreapp/__init__.py": core_code})
    core_digest = _tree_digest(core)
    manifests = {
        "registry/hpm-registry.yaml": "defaults: {with: [core-app]}\n",
        "registry/core-app.yaml": """
            name: core-app
            version: 1.0.0
            requires: {vector-db: ">=0.1"}
            sources:
              prod: {type: local, path: ../core, editable: false}
            """,
    }
    for repo, short in ((qdrant, "qdrant"), (milvus, "milvus")):
        manifests[f"registry/{short}.yaml"] = f"""
            name: vdb-{short}
            version: 0.1.0
            provides: [vector-db]
            sources:
              prod: {{type: git, url: "{repo.url}", ref: v0.1.0}}
              dev: {{type: local, path: ../checkouts/{short}, editable: true}}
            """
    write(tmp_path, manifests)
    app = ["--no-index", "--find-links", str(wheelhouse), "--",
           "python", "-c", "import coreapp; coreapp.main()"]

    out = hpm(tmp_path, "run", "--ephemeral", "--mode", "dev", *app)
    assert out.returncode == 78 and "--provide vector-db=" in out.stderr  # nothing checked out: ambiguous

    assert hpm(tmp_path, "dev", "checkout", "vdb-qdrant").returncode == 0
    out = hpm(tmp_path, "plan", "--mode", "dev")
    assert "vector-db -> vdb-qdrant  (dev-checkout" in out.stdout
    out = hpm(tmp_path, "run", "--ephemeral", "--mode", "dev", *app)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "core uses qdrant"
    # editable: an edit in the checkout shows on the next run, no reinstall
    (tmp_path / "checkouts/qdrant/vectordb/__init__.py").write_text('NAME = "qdrant, edited"\n')
    out = hpm(tmp_path, "run", "--ephemeral", "--mode", "dev", *app)
    assert out.stdout.strip() == "core uses qdrant, edited" and "syncing" not in out.stderr

    for provider, label in (("vdb-milvus", "milvus"), ("vdb-qdrant", "qdrant")):
        choice = f"vector-db={provider}"
        out = hpm(tmp_path, "run", "--ephemeral", "--mode", "prod", "--provide", choice, *app)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"core uses {label}"
    assert _tree_digest(core) == core_digest  # the core never changed
