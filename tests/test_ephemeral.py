"""Ephemeral environments: ``hpm run --ephemeral``, ``hpm shell``, ``hpm gc``.

Real git repositories, a real wheelhouse and real ``uv run --project`` environments,
offline. hpm runs as a subprocess (it execs uv), from the test's directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpm_boot import fastargs, reuse
from hpm_boot.compose import ephemeral
from hpm_boot.compose.manifest import GitSource, LocalSource, PypiSource, UrlSource
from hpm_boot.compose.resolve import Plan, PlannedPackage, Reason
from tests.support.factory import GitRepo, git, make_project
from tests.support.hpm_venv import hpm_in_venv
from tests.support.nobody import NOBODY, SYSTEM_PYTHON, shared_tmpdir, skip_unless_nobody_can_run_python
from tests.support.registry_cli import write

PY = "import hpmtest_gitplugin as g, sys; print(g.__version__, sys.prefix)"


def hpm(cwd: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpm_boot", *args], cwd=cwd, env=env or dict(os.environ),
                          capture_output=True, text=True, input=input, timeout=timeout)


def envs(root: Path) -> list[str]:
    base = root / ".hpm" / "ephemeral"
    return sorted(p.name for p in base.iterdir() if not p.name.startswith(".")) if base.is_dir() else []


@pytest.fixture
def project(tmp_path: Path, git_plugin: GitRepo, wheelhouse: Path) -> Path:
    """A registry: hpmtest-gitplugin from git at v0.1.0, hpmtest-qdrant from the index."""
    write(tmp_path, {
        "registry/gitplugin.yaml": f"""
            name: hpmtest-gitplugin
            version: 0.1.0
            sources:
              prod: {{type: git, url: "{git_plugin.url}", ref: v0.1.0}}
            entrypoints:
              show: "python -c 'import hpmtest_gitplugin as g; print(\\"show\\", g.__version__)'"
            """,
        "registry/qdrant.yaml": """
            name: hpmtest-qdrant
            version: 0.1.0
            sources:
              prod: {type: pypi}
            """,
        "registry/hpm-registry.yaml": "defaults: {with: [hpmtest-gitplugin, hpmtest-qdrant]}\n",
    })
    return tmp_path


def idx(wheelhouse: Path) -> list[str]:
    return ["--no-index", "--find-links", str(wheelhouse)]


def test_run_builds_once_then_reuses(project: Path, wheelhouse: Path) -> None:
    first = hpm(project, "run", "--ephemeral", *idx(wheelhouse), "--", "python", "-c", PY)
    assert first.returncode == 0, first.stderr
    version, prefix = first.stdout.split()
    (env_id,) = envs(project)
    assert version == "0.1.0"
    assert Path(prefix) == project / ".hpm" / "ephemeral" / env_id / ".venv"
    assert "syncing" in first.stderr
    text = (project / ".hpm" / "ephemeral" / env_id / "pyproject.toml").read_text()
    assert ephemeral.env_id(text) == env_id  # the id is the generated project's digest

    again = hpm(project, "run", "--ephemeral", *idx(wheelhouse), "--", "python", "-c",
                "import sys; sys.exit(7)", env={**os.environ, "HPM_LOG": "debug"})
    assert again.returncode == 7  # the target's exit code, through uv
    assert "reusing ephemeral environment" in again.stderr  # the fast path: no registry read
    assert "syncing" not in again.stderr
    assert envs(project) == [env_id]

    # The full CLI (a spelling the fast path does not know) lands in the same env.
    third = hpm(project, "run", "--ephemeral", f"--find-link={wheelhouse}", "--no-index", "--",
                "python", "-c", PY)
    assert third.returncode == 0 and "syncing" not in third.stderr
    assert envs(project) == [env_id]


def test_entrypoint_runs_in_the_environment(project: Path, wheelhouse: Path) -> None:
    for _ in range(2):  # slow path, then the fast path's recorded entrypoint
        out = hpm(project, "run", "--ephemeral", "--entrypoint", "show", *idx(wheelhouse), "--")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "show 0.1.0"


def test_the_mode_reaches_the_command_as_run_mode(project: Path, wheelhouse: Path) -> None:
    """`--mode dev` is told to the command (RUN_MODE=dev) on the slow and the fast path."""
    show = ("python", "-c", "import os; print(os.environ['RUN_MODE'])")
    env = {**os.environ, "RUN_MODE": "prod"}
    for path in ("slow", "fast"):
        out = hpm(project, "run", "--ephemeral", "--mode", "dev", *idx(wheelhouse), "--", *show, env=env)
        assert (out.returncode, out.stdout) == (0, "dev\n"), (path, out.stderr)
    out = hpm(project, "shell", "--mode", "dev", *idx(wheelhouse), input='echo "mode=$RUN_MODE"\n',
              env={**env, "SHELL": "/bin/sh"})
    assert out.returncode == 0 and "mode=dev" in out.stdout, out.stderr


def test_moved_tag_gets_a_new_environment(project: Path, wheelhouse: Path, git_plugin: GitRepo) -> None:
    assert hpm(project, "run", "--ephemeral", *idx(wheelhouse), "--", "python", "-c", PY).returncode == 0
    (old,) = envs(project)
    git(git_plugin.path, "tag", "-f", "v0.1.0", "v0.2.0")  # the tag now names another commit
    out = hpm(project, "run", "--ephemeral", *idx(wheelhouse), "--", "python", "-c", PY)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "0.2.0"
    assert len(envs(project)) == 2 and old in envs(project)


def test_plan_change_while_in_use(project: Path, wheelhouse: Path) -> None:
    """A running env survives a plan change and gc; gc removes it once it has ended."""
    go, ready = project / "go", project / "ready"
    code = (f"import pathlib, time\npathlib.Path({str(ready)!r}).touch()\n"
            f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n"
            "import hpmtest_gitplugin as g; print(g.__version__)")
    running = subprocess.Popen([sys.executable, "-m", "hpm_boot", "run", "--ephemeral", *idx(wheelhouse),
                                "--", "python", "-c", code], cwd=project, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert running.poll() is None, running.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (old,) = envs(project)
        manifest = project / "registry" / "gitplugin.yaml"
        manifest.write_text(manifest.read_text().replace("ref: v0.1.0", "ref: v0.2.0"))
        new = hpm(project, "run", "--ephemeral", *idx(wheelhouse), "--", "python", "-c", PY)
        assert new.returncode == 0 and new.stdout.split()[0] == "0.2.0", new.stderr
        assert len(envs(project)) == 2

        gc = hpm(project, "gc", "--keep", "0", "--no-cache")
        assert gc.returncode == 0, gc.stderr
        assert f"in use   {old}" in gc.stdout
        assert envs(project) == [old]  # the idle new one went; the running one stayed whole
        go.touch()
        out, err = running.communicate(timeout=60)
        assert running.returncode == 0, err
        assert out.strip() == "0.1.0"
    finally:
        go.touch()
        if running.poll() is None:
            running.kill()
    gc = hpm(project, "gc", "--keep", "0", "--no-cache")
    assert f"removed  {old}" in gc.stdout and envs(project) == []
    assert not any((project / ".hpm" / "ephemeral" / ".index").iterdir())  # records went too


def test_signals_reach_the_target(project: Path, wheelhouse: Path) -> None:
    assert hpm(project, "run", "--ephemeral", *idx(wheelhouse), "--", "python", "-c", "pass").returncode == 0
    ready = project / "ready"
    code = (f"import signal, sys, time, pathlib\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
            f"pathlib.Path({str(ready)!r}).touch()\ntime.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-m", "hpm_boot", "run", "--ephemeral", *idx(wheelhouse), "--",
                             "python", "-c", code], cwd=project)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        exe = os.path.basename(os.readlink(f"/proc/{proc.pid}/exe"))
        assert exe == "uv"  # hpm exec'd uv: no hpm process stays behind
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 3
    finally:
        if proc.poll() is None:
            proc.kill()


def test_local_metadata_change_resyncs(tmp_path: Path, wheelhouse: Path) -> None:
    """An editable package's new dependency is installed although hpm execs uv --no-sync."""
    make_project(tmp_path / "plug", "hpmtest-plug", "0.1.0", deps=["hpmtest-core>=1"])
    write(tmp_path, {"registry/plug.yaml": """
        name: hpmtest-plug
        version: 0.1.0
        sources:
          prod: {type: local, path: ../plug, editable: true}
        """})
    check = "import importlib.util as u; print(u.find_spec('hpmtest_dep') is not None)"
    args = ["run", "--ephemeral", "--with", "hpmtest-plug", *idx(wheelhouse), "--", "python", "-c", check]
    first = hpm(tmp_path, *args)
    assert first.returncode == 0 and first.stdout.strip() == "False", first.stderr
    time.sleep(0.01)
    make_project(tmp_path / "plug", "hpmtest-plug", "0.1.0", deps=["hpmtest-core>=1", "hpmtest-dep"])
    second = hpm(tmp_path, *args)
    assert second.returncode == 0 and second.stdout.strip() == "True", second.stderr
    assert "syncing" in second.stderr and len(envs(tmp_path)) == 1


def test_shell(project: Path, wheelhouse: Path) -> None:
    script = "python -c 'import hpmtest_qdrant as q; print(q.NAME)'\nexit 5\n"
    for _ in range(2):
        out = hpm(project, "shell", *idx(wheelhouse), env={**os.environ, "SHELL": "/bin/sh"}, input=script)
        assert out.returncode == 5, out.stderr
        assert out.stdout.strip() == "hpmtest-qdrant"


def test_not_writable(project: Path, wheelhouse: Path, tmp_path: Path) -> None:
    (project / ".hpm").write_text("not a directory")
    out = hpm(project, "run", "--ephemeral", *idx(wheelhouse), "--", "python", "-c", "pass")
    assert out.returncode == 73
    first = out.stderr.splitlines()[0]
    assert first.startswith("hpm: error: cannot write the ephemeral environment under")
    assert "HPM_EPHEMERAL_DIR" in out.stderr and "Traceback" not in out.stderr
    elsewhere = tmp_path / "elsewhere"
    out = hpm(project, "run", "--ephemeral", *idx(wheelhouse), "--", "python", "-c", "pass",
              env={**os.environ, "HPM_EPHEMERAL_DIR": str(elsewhere)})
    assert out.returncode == 0, out.stderr
    assert len(list(elsewhere.iterdir())) == 2  # the env and the fast-path index


def test_not_writable_for_another_user(wheelhouse: Path) -> None:
    """As uid 65534, a project whose .hpm/ belongs to root: 73 with the hint, and
    HPM_EPHEMERAL_DIR on a writable place works for the same user."""
    skip_unless_nobody_can_run_python()
    with shared_tmpdir() as shared:  # pytest's tmp dirs are private to root
        project = shared / "project"
        write(project, {"registry/qdrant.yaml": """
            name: hpmtest-qdrant
            version: 0.1.0
            sources:
              prod: {type: pypi, version: "==0.1.0"}
            """})
        (project / ".hpm").mkdir()
        for p in (project, *project.rglob("*")):
            p.chmod(0o755 if p.is_dir() else 0o644)
        wheels = shutil.copytree(wheelhouse, shared / "wh")
        for p in (wheels, *wheels.iterdir()):
            p.chmod(0o755 if p.is_dir() else 0o644)
        python = hpm_in_venv(shared / "sysvenv", SYSTEM_PYTHON)
        env = {**os.environ, "HOME": "/nonexistent", "UV_CACHE_DIR": str(shared / "cache")}
        cmd = [*NOBODY, str(python), "-m", "hpm_boot", "run", "--ephemeral", "--with", "hpmtest-qdrant",
               *idx(wheels), "--", "python", "-c", "pass"]
        out = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 73, out.stderr
        assert "HPM_EPHEMERAL_DIR" in out.stderr and "Traceback" not in out.stderr


def test_lock_option_is_refused(project: Path) -> None:
    out = hpm(project, "run", "--ephemeral", "--lock", "x.json", "--", "python", "-c", "pass")
    assert out.returncode == 2 and "--lock" in out.stderr


# ---------------------------------------------------------------- unit level


def _pkg(name: str, source: object, **kw: object) -> PlannedPackage:
    return PlannedPackage(name=name, version="1.0.0", source_mode="prod", source=source,  # type: ignore[arg-type]
                          manifest="m.yaml", reason=Reason("requested", "--with"), **kw)  # type: ignore[arg-type]


def test_generate_covers_every_source(tmp_path: Path, git_plugin: GitRepo) -> None:
    tomllib = pytest.importorskip("tomllib")
    (tmp_path / "edit").mkdir()
    plan = Plan(format=1, mode="dev", registry=[], requested=[], groups=[], providers=[], warnings=[],
                packages=[
        _pkg("hpmtest-gitplugin", GitSource(url=git_plugin.url, ref="v0.2.0", subdirectory="sub"),
             extras=["fast"]),
        _pkg("hpmtest-edit", LocalSource(path=str(tmp_path / "edit")), path=str(tmp_path / "edit")),
        _pkg("hpmtest-whl", LocalSource(path="/w/x.whl", editable=True), path="/w/x.whl"),
        _pkg("hpmtest-idx", PypiSource(package="other-dist", version=">=1", index="https://i.example/simple")),
        _pkg("hpmtest-plain", PypiSource()),
        _pkg("hpmtest-url", UrlSource(url="https://h.example/u-1.0-py3-none-any.whl", sha256="ab" * 32)),
    ])
    text = ephemeral.generate(plan, sys.executable, ["--no-index"])
    data = tomllib.loads(text)
    assert data["project"]["dependencies"] == [
        "hpmtest-gitplugin[fast]", "hpmtest-edit", "hpmtest-whl", "other-dist>=1", "hpmtest-plain==1.0.0",
        f"hpmtest-url @ https://h.example/u-1.0-py3-none-any.whl#sha256={'ab' * 32}"]
    sources = data["tool"]["uv"]["sources"]
    assert sources["hpmtest-gitplugin"] == {"git": git_plugin.url, "rev": git_plugin.tags["v0.2.0"],
                                            "subdirectory": "sub"}
    assert sources["hpmtest-edit"] == {"path": str(tmp_path / "edit"), "editable": True}
    assert sources["hpmtest-whl"] == {"path": "/w/x.whl"}  # a file cannot be editable
    assert sources["other-dist"] == {"index": "hpm-1"}
    assert data["tool"]["uv"]["index"] == [
        {"name": "hpm-1", "url": "https://i.example/simple", "explicit": True}]
    assert data["tool"]["uv"]["package"] is False
    assert ephemeral.generate(plan, sys.executable, ["--no-index"]) == text  # deterministic
    assert ephemeral.env_id(ephemeral.generate(plan, sys.executable, [])) != ephemeral.env_id(text)


def test_parse_fast_matches_the_cli(project: Path) -> None:
    from hpm_boot import cli

    tokens = ["--ephemeral", "-r", "registry", "--with=a,b", "-p", "v=x", "--mode", "dev", "--no-index",
              "--find-links", "wh", "--python", sys.executable, "--entrypoint", "show"]
    args = cli.build_parser("run").parse_args(["run", *tokens])
    assert fastargs.parse(tokens, fastargs.EPHEMERAL) == reuse.opts_of(args)
    assert list(reuse.opts_of(args)) == list(fastargs.EPHEMERAL.empty())  # the record key's order
    assert fastargs.parse(["--ephemeral", "--lock", "x"], fastargs.EPHEMERAL) is None
    # abbreviations: the full CLI decides
    assert fastargs.parse(["--ephemeral", "--ent", "show"], fastargs.EPHEMERAL) is None
    assert fastargs.parse(["--ephemeral", "python"], fastargs.EPHEMERAL) is None


def _fake_env(root: Path, name: str, age: float) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "pyproject.toml").write_text("[project]\n")
    (d / reuse.LAST_USED).touch()
    t = time.time() - age
    os.utime(d / reuse.LAST_USED, (t, t))
    return d


def test_gc_keep_older_than_dry_run(tmp_path: Path) -> None:
    from hpm_boot import cli

    root = tmp_path / "eph"
    env = {"HPM_EPHEMERAL_DIR": str(root)}
    for name, days in (("aaaa", 0.1), ("bbbb", 1.5), ("cccc", 3), ("dddd", 10)):
        _fake_env(root, name, days * 86400)
    (root / ".tmp-old-1").mkdir()
    os.utime(root / ".tmp-old-1", (0, 0))
    assert cli.main(["gc", "--no-cache", "--keep", "1", "--dry-run"], env) == 0
    assert sorted(p.name for p in root.iterdir()) == [".tmp-old-1", "aaaa", "bbbb", "cccc", "dddd"]
    assert cli.main(["gc", "--no-cache", "--older-than", "2d"], env) == 0
    assert sorted(p.name for p in root.iterdir()) == ["aaaa", "bbbb"]  # leftovers of crashed runs go too
    assert cli.main(["gc", "--no-cache", "--keep", "1"], env) == 0
    assert sorted(p.name for p in root.iterdir()) == ["aaaa"]
    assert cli.main(["gc", "--no-cache", "--older-than", "7x"], env) == 2
    assert cli.main(["gc", "--no-cache"], {"HPM_EPHEMERAL_DIR": str(tmp_path / "none")}) == 0


def test_gc_skips_a_locked_env(tmp_path: Path) -> None:
    import fcntl

    from hpm_boot import cli

    root = tmp_path / "eph"
    busy = _fake_env(root, "busy", 86400 * 30)
    fd = reuse.hold(str(busy))
    try:
        assert fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB) is None
        assert cli.main(["gc", "--no-cache", "--keep", "0"], {"HPM_EPHEMERAL_DIR": str(root)}) == 0
        assert busy.is_dir()
    finally:
        os.close(fd)
    assert cli.main(["gc", "--no-cache", "--keep", "0"], {"HPM_EPHEMERAL_DIR": str(root)}) == 0
    assert not busy.exists()
    assert json.dumps(sorted(os.listdir(root))) == "[]"
