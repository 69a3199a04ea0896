"""hpm.pyz as the ENTRYPOINT of real containers (docker/Dockerfile, docker/Dockerfile.nonroot).

Every container: ``--network=none``, the wheelhouse mounted read-only at /wheels. The
numbers in the test names are the scenarios of the containers issue.
"""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from tests.container.conftest import DEVPLUG_MODULE, ENGINE_NAME, ROOT, hpm_host

pytestmark = pytest.mark.container


def test_1_lock_b64_installs_then_cmd_is_pid_1(images, make_lock, run_container):
    run = run_container(images.root, "python3", "-m", "hpmtest_probe", "a", "b c", "--exit", "0",
                        env={"HPM_LOCK_B64": make_lock("hpmtest-probe")})
    probe = run.probe
    assert probe["argv"] == ["a", "b c", "--exit", "0"]
    assert probe["pid"] == 1, probe  # hpm exec'd the app: it took over PID 1
    # no hpm left anywhere; argv[0] is the interpreter's path (docs/running.md, "Exec")
    assert probe["procs"] == {"1": "/usr/bin/python3 -m hpmtest_probe a b c --exit 0"}
    assert probe["env_lock"] is False  # the payload is not passed on to the app
    assert probe["file"].startswith("/usr/local/lib/python3"), probe["file"]  # system site (PEP 668 image)
    assert "installing with uv: 2 requirement(s)" in run.log
    assert "--break-system-packages" not in run.log  # (said only at debug level)
    # the app's exit code is the container's
    run = run_container(images.root, "python3", "-m", "hpmtest_probe", "--exit", "7",
                        env={"HPM_LOCK_B64": make_lock("hpmtest-probe")}, check=7)


def test_1b_console_script_from_the_lock(images, make_lock, run_container):
    run = run_container(images.root, "hpmtest-app", "hello", env={"HPM_LOCK_B64": make_lock("hpmtest-app")})
    assert run.proc.stdout.strip() == "hpmtest-app hello"


def test_2_manifest_entrypoint(images, make_lock, run_container):
    # The image's ENTRYPOINT is `hpm run --`; a manifest entrypoint replaces the `--`.
    run = run_container(images.root, "/opt/hpm/hpm.pyz", "run", "--entrypoint", "serve", "--", "--debug",
                        env={"HPM_LOCK_B64": make_lock("hpmtest-probe")}, args=["--entrypoint", "python3"])
    probe = run.probe
    assert probe["argv"] == ["serve", "--port", "8001", "--debug"]
    assert probe["pid"] == 1 and len(probe["procs"]) == 1
    # an entrypoint that no manifest defines: exit 66, saying which ones exist
    run = run_container(images.root, "/opt/hpm/hpm.pyz", "run", "--entrypoint", "nope",
                        env={"HPM_LOCK_B64": make_lock("hpmtest-probe")}, args=["--entrypoint", "python3"],
                        check=66)
    assert "no entrypoint 'nope'" in run.log and "hpmtest-probe:serve" in run.log


def test_3_restart_does_not_run_the_installer(engine, images, make_lock, run_container, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    name = engine.name("restart")
    env = {"HPM_LOCK_B64": make_lock("hpmtest-probe"), "HPM_UV": "/opt/hpmtest/uv-logging"}
    first = run_container(images.root, "python3", "-m", "hpmtest_probe", "first", env=env, rm=False,
                          args=["--name", name, "-v", f"{calls}:/calls"])
    assert first.probe["argv"] == ["first"]
    uv_calls = (calls / "uv-calls.log").read_text().splitlines()
    assert len(uv_calls) == 1 and uv_calls[0].startswith("uv pip install"), uv_calls
    started = time.perf_counter()
    second = engine("start", "-a", name)
    seconds = time.perf_counter() - started
    assert "PROBE" in second.stdout and '"pid": 1' in second.stdout
    assert "2 packages already installed" in second.stderr, second.stderr
    assert "installing" not in second.stderr
    assert (calls / "uv-calls.log").read_text().splitlines() == uv_calls  # uv was not started again
    assert engine.exit_code(name) == 0
    print(f"\nfirst run (install) {first.seconds:.2f} s, restart {seconds:.2f} s")
    assert seconds < 5.0, f"restart took {seconds:.2f} s"


def test_4_mounted_registry_instead_of_a_lock(images, container_registry, run_container):
    run = run_container(images.root, "python3", "-m", "hpmtest_probe", "reg",
                        env={"HPM_REGISTRY": "/etc/hpm/registry", "HPM_WITH": "hpmtest-probe"},
                        args=["-v", f"{container_registry}:/etc/hpm/registry:ro"])
    assert run.probe["argv"] == ["reg"] and run.probe["pid"] == 1
    assert "resolved 1 packages from /etc/hpm/registry (prod mode" in run.log
    # no registry and no lock: one line saying what is missing (66)
    run = run_container(images.root, "python3", "-c", "pass", check=66)
    assert run.log.startswith("hpm: error: registry directory registry does not exist")


def test_5_non_root_read_only_venv_on_a_volume(engine, images, make_lock, run_container, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir(mode=0o777)
    calls.chmod(0o777)
    volume = engine.name("vol-venv")
    env = {"HPM_LOCK_B64": make_lock("hpmtest-probe"), "HPM_UV": "/opt/hpmtest/uv-logging"}
    # podman --read-only-tmpfs=false: no tmpfs on /tmp, as with docker's --read-only
    no_tmp = ["--read-only-tmpfs=false"] if ENGINE_NAME == "podman" else []
    args = ["--read-only", *no_tmp, "-v", f"{volume}:/venv", "-v", f"{calls}:/calls"]
    run = run_container(images.nonroot, "python3", "-m", "hpmtest_probe", "ro", env=env, args=args)
    probe = run.probe
    assert probe["uid"] == 10001 and probe["pid"] == 1
    assert probe["exe"] == "/venv/bin/python" and probe["virtual_env"] == "/venv"  # argv[0]: the target
    assert probe["file"].startswith("/venv/lib/python3"), probe["file"]
    assert "created virtual environment /venv" in run.log
    # a new container on the same volume: warm, no installer
    run = run_container(images.nonroot, "python3", "-m", "hpmtest_probe", "again", env=env, args=args)
    assert run.probe["argv"] == ["again"]
    assert "already installed" in run.log
    assert len((calls / "uv-calls.log").read_text().splitlines()) == 2  # uv venv + uv pip install, once
    # without HPM_VENV the read-only image cannot be installed into: 73, one line, a hint
    run = run_container(images.nonroot, "python3", "-c", "pass", env={**env, "HPM_VENV": ""},
                        args=["--read-only"], check=73)
    assert run.log.splitlines()[-2].startswith("hpm: error: cannot install into ") or \
        "hpm: error:" in run.log.splitlines()[0]
    assert "HPM_VENV" in run.log


def test_6_dev_mode_editable_checkout(engine, images, container_registry, devplug_checkout, run_container):
    name = engine.name("devmode")
    run = run_container(images.root, "python3", "-m", "hpmtest_devplug", rm=False,
                        env={"RUN_MODE": "dev", "HPM_REGISTRY": "/etc/hpm/registry",
                             "HPM_WITH": "hpmtest-devplug"},
                        args=["--name", name, "-v", f"{container_registry}:/etc/hpm/registry:ro",
                              "-v", f"{devplug_checkout}:/src/devplug"])
    assert run.probe["devplug"] == "one"
    assert run.probe["devfile"] == "/src/devplug/hpmtest_devplug/__init__.py"  # editable: the checkout
    assert "(dev mode" in run.log
    module = devplug_checkout / "hpmtest_devplug" / "__init__.py"
    module.write_text(DEVPLUG_MODULE.format(value="two, edited"))
    later = time.time() + 5  # as an edit some seconds later: the .pyc written at the first start is stale
    os.utime(module, (later, later))
    again = engine("start", "-a", name)
    assert '"devplug": "two, edited"' in again.stdout, again.stdout + again.stderr
    assert "already installed" in again.stderr  # the edit needed no reinstall


@pytest.mark.parametrize(("payload", "needle"), [
    ("hpm1.not-base64!", "HPM_LOCK_B64"),
    ("definitely not a payload", "HPM_LOCK_B64"),
])
def test_7_bad_payload_exit_65_one_line(engine, images, run_container, payload, needle):
    name = engine.name(f"bad{abs(hash(payload)) % 1000}")
    run = run_container(images.root, "python3", "-c", "print('must not run')", env={"HPM_LOCK_B64": payload},
                        rm=False, args=["--name", name], check=65)
    assert "must not run" not in run.proc.stdout
    assert engine.exit_code(name) == 65
    logs = engine("logs", name).stderr + engine("logs", name).stdout
    first = logs.strip().splitlines()[0]
    assert first.startswith("hpm: error: ") and needle in first, logs
    assert "Traceback" not in logs


def test_7b_tampered_payload(engine, images, make_lock, run_container):
    good = make_lock("hpmtest-probe")
    prefix, _, rest = good.partition(".")
    i = len(rest) // 2
    bad = f"{prefix}.{rest[:i]}{'A' if rest[i] != 'A' else 'B'}{rest[i + 1:]}"
    run = run_container(images.root, "python3", "-c", "pass", env={"HPM_LOCK_B64": bad}, check=65)
    assert run.log.startswith("hpm: error: ") and "Traceback" not in run.log


def test_8_stop_during_install_is_prompt(engine, images, make_lock, tools, container_wheelhouse, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    name = engine.name("stop")
    env = {"HPM_LOCK_B64": make_lock("hpmtest-probe"), "HPM_UV": "/opt/hpmtest/uv-slow",
           "UV_OFFLINE": "1", "UV_FIND_LINKS": "/wheels"}
    engine("run", "-d", "--name", name, "--network=none", "-v", f"{container_wheelhouse}:/wheels:ro",
           "-v", f"{tools}:/opt/hpmtest:ro", "-v", f"{calls}:/calls",
           *[a for k in env for a in ("-e", k)], images.root, "python3", "-m", "hpmtest_probe", env=env)
    deadline = time.monotonic() + 60
    while not (calls / "uv-slow.started").exists():
        assert time.monotonic() < deadline, engine("logs", name).stderr
        time.sleep(0.05)
    time.sleep(0.2)  # the installer is running (sleeping in the stand-in uv)
    started = time.perf_counter()
    engine("stop", "-t", "30", name)
    seconds = time.perf_counter() - started
    code = engine.exit_code(name)
    logs = engine("logs", name).stderr
    print(f"\nstop during install: {seconds:.2f} s, exit {code}")
    assert seconds < 5.0, f"stop took {seconds:.2f} s (kill timeout 30 s): SIGTERM not handled\n{logs}"
    assert code == 143, logs  # 128 + SIGTERM: hpm stopped the installer and exited itself
    assert "stopped by signal SIGTERM while installing" in logs
    assert "PROBE" not in engine("logs", name).stdout


@pytest.mark.parametrize("word", ["python", "python3", "pythonX.Y"])
def test_python_word_finds_its_prefix_on_an_image_without_python(images, make_lock, run_container, word):
    """The base image has python3 only. `python` in CMD and in a manifest entrypoint is the
    target interpreter, exec'd with its path as argv[0]: sys.executable, the prefix and
    the site-packages hpm installed into are found (the app imports what was installed).
    ``pythonX.Y`` is the base image's own version."""
    word = word.replace("X.Y", images.python_version)
    probe_cmd = run_container(images.root, "-c", "command -v python || echo none",
                              args=["--entrypoint", "sh"]).proc.stdout.strip()
    assert probe_cmd == "none"  # the premise: no `python` on this image
    env = {"HPM_LOCK_B64": make_lock("hpmtest-probe")}
    # CMD (root image: installs into the image's /usr interpreter)
    probe = run_container(images.root, word, "-m", "hpmtest_probe", "cmd", env=env).probe
    assert probe["argv"] == ["cmd"] and probe["exe"] == "/usr/bin/python3" and probe["prefix"] == "/usr"
    assert probe["file"].startswith("/usr/local/lib/python3"), probe
    assert probe["procs"]["1"].startswith("/usr/bin/python3 -m hpmtest_probe"), probe["procs"]
    # a manifest entrypoint `python -m ...`, as the issue reproduced it (--entrypoint python3 IMAGE ...)
    probe = run_container(images.root, "/opt/hpm/hpm.pyz", "run", "--entrypoint", "bare", env=env,
                          args=["--entrypoint", "python3"]).probe
    assert probe["argv"] == ["bare"] and probe["exe"] == "/usr/bin/python3", probe
    assert any(p.endswith("dist-packages") for p in probe["path"]), probe["path"]


def test_python_word_in_a_venv_target(engine, images, make_lock, run_container):
    volume = engine.name("vol-argv0")
    env = {"HPM_LOCK_B64": make_lock("hpmtest-probe"), "HPM_ENTRYPOINT": "bare"}
    for attempt in ("cold", "warm"):
        probe = run_container(images.nonroot, env=env, args=["-v", f"{volume}:/venv"]).probe
        assert probe["argv"] == ["bare"], attempt
        assert probe["exe"] == "/venv/bin/python" and probe["prefix"] == "/venv", (attempt, probe)
        assert probe["file"].startswith("/venv/lib/python3"), (attempt, probe)


def test_hpm_entrypoint_without_a_command_override(engine, images, make_lock, run_container):
    """`docker run -e HPM_ENTRYPOINT=serve IMAGE` runs the plugin's service (the images
    have no CMD); a command given becomes its arguments; unknown is 66 with the list."""
    env = {"HPM_LOCK_B64": make_lock("hpmtest-probe"), "HPM_ENTRYPOINT": "serve"}
    name = engine.name("hpm-entrypoint")
    run = run_container(images.root, env=env, rm=False, args=["--name", name])
    assert run.probe["argv"] == ["serve", "--port", "8001"] and run.probe["pid"] == 1
    again = engine("start", "-a", name)  # the warm start, the same rule
    assert '"argv": ["serve", "--port", "8001"]' in again.stdout, again.stderr
    assert "already installed" in again.stderr
    run = run_container(images.root, "--debug", env={**env, "HPM_ENTRYPOINT": "hpmtest-probe:serve"})
    assert run.probe["argv"] == ["serve", "--port", "8001", "--debug"]
    run = run_container(images.root, "python3", "-m", "hpmtest_probe", "adhoc",
                        env={**env, "HPM_ENTRYPOINT": ""})
    assert run.probe["argv"] == ["adhoc"]  # empty: unset, the command runs as given
    run = run_container(images.root, env={**env, "HPM_ENTRYPOINT": "nope"}, check=66)
    first = next(line for line in run.log.splitlines() if line.startswith("hpm: error:"))
    assert first == "hpm: error: no entrypoint 'nope' in the plan (HPM_ENTRYPOINT=nope)", run.log
    assert "hpmtest-probe:bare, hpmtest-probe:serve, hpmtest-probe:smoke" in run.log
    # neither a command nor HPM_ENTRYPOINT: 2, saying what to give
    run = run_container(images.root, env={"HPM_LOCK_B64": env["HPM_LOCK_B64"]}, check=2)
    assert "nothing to run" in run.log and "HPM_ENTRYPOINT=NAME" in run.log


def test_image_env_and_layout(images, run_container):
    run = run_container(images.root, "-c", "import os; print(os.environ.get('UV_COMPILE_BYTECODE'), "
                        "os.environ['UV_LINK_MODE'], os.environ['UV_CACHE_DIR'], "
                        "oct(os.stat('/var/cache/uv').st_mode))",
                        args=["--entrypoint", "python3"])
    assert run.proc.stdout.split() == ["None", "copy", "/var/cache/uv", "0o41777"]


#: how many .pyc files hpmtest-core has in the image's site-packages (the app never imports it)
COUNT_PYC = ("import glob; print('PYC', len(glob.glob('/usr/local/lib/python3*/dist-packages/"
             "hpmtest_core/**/*.pyc', recursive=True)))")


def test_bytecode_compiled_by_a_baked_image_not_at_start(engine, images, make_lock, run_container,
                                                         container_wheelhouse, tmp_path):
    """docs/containers.md: an install at container start compiles nothing (the app compiles
    what it imports); the doc's snippet that bakes the packages compiles them at build."""
    lock = make_lock("hpmtest-probe")
    run = run_container(images.root, "python3", "-c", COUNT_PYC, env={"HPM_LOCK_B64": lock})
    assert "PYC 0" in run.proc.stdout.splitlines(), run.proc.stdout + run.log
    assert "installed 2 packages" in run.log
    # the snippet of docs/containers.md ("Build"), with the wheelhouse in place of an index
    ctx = tmp_path / "bake"
    shutil.copytree(container_wheelhouse, ctx / "wheels")
    (ctx / "hpm.lock.json").write_text(make_lock("hpmtest-probe", fmt="json"))
    doc = (ROOT / "docs" / "containers.md").read_text()
    snippet = re.search(r"```dockerfile\n(COPY hpm.lock.json.*?)```", doc, re.S)
    assert snippet, "docs/containers.md has no baking snippet"
    run_line = "ENV UV_OFFLINE=1 UV_FIND_LINKS=/tmp/wheels\nCOPY wheels /tmp/wheels\n"
    (ctx / "Dockerfile").write_text(f"FROM {images.root}\n{run_line}{snippet.group(1)}")
    baked = f"localhost/hpm-test-baked:{engine.session}"
    engine("build", "-q", "-t", baked, str(ctx), timeout=600)
    engine.images.append(baked)
    run = run_container(baked, "python3", "-c", COUNT_PYC, env={"HPM_LOG": "debug"})
    counts = [int(line.split()[1]) for line in run.proc.stdout.splitlines() if line.startswith("PYC ")]
    assert len(counts) == 1 and counts[0] > 0, run.proc.stdout
    assert "installing" not in run.log and "exec python3" in run.log, run.log  # the warm path


def test_ready_file_on_cold_and_warm_start(engine, images, make_lock, run_container):
    # the Kubernetes startupProbe (examples/k8s) waits for HPM_READY_FILE: it must appear
    # on the install path and on the warm path (a restart), before the app runs
    name = engine.name("ready")
    cmd = ["sh", "-c", "test -e /run/hpm-ready && echo READY; rm -f /run/hpm-ready"]
    env = {"HPM_LOCK_B64": make_lock("hpmtest-probe"), "HPM_READY_FILE": "/run/hpm-ready"}
    first = run_container(images.root, *cmd, env=env, rm=False, args=["--name", name])
    assert first.proc.stdout.strip() == "READY", first.log
    again = engine("start", "-a", name)
    assert "already installed" in again.stderr
    assert again.stdout.strip() == "READY", again.stderr


def test_the_bundled_example_as_docs_containers_md_runs_it(images, run_container, tmp_path):
    """docs/containers.md, "Inject": the image has no CMD, the command comes at run time
    (here the bundled example's app); the example's local sources are mounted where the
    lock names them."""
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns("remotes", "checkouts"))
    for p in [examples, *examples.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    lock = hpm_host("-r", str(examples / "registry"), "lock", "-g", "rag", "-p", "vector-db=qdrant-adapter",
                    "--format", "b64", "--python-version", images.python_version).stdout.strip()
    run = run_container(images.root, "python3", "-m", "app_core", env={"HPM_LOCK_B64": lock},
                        args=["-v", f"{examples}:{examples}:ro"])
    assert run.proc.stdout.splitlines() == [
        "app-core 1.2.0 (RUN_MODE=prod)",
        "  reranker: BGE reranker (reranker-bge 0.1.0)",
        "  vector-db: Qdrant vector database (qdrant-adapter 0.3.0)",
    ], run.proc.stdout + run.log
    assert "exec python3 -m app_core" in run.log


def test_9_lock_for_two_platforms_from_a_pypi_like_wheelhouse(images, container_registry, run_container,
                                                                  tmp_path_factory):
    """Issue 12: one lock for x86_64 and aarch64, files of both, installs in the image
    from a wheelhouse of 60 wheels a version; a lock for other targets is 78 naming both."""
    from tests.container.conftest import PROBE, hpm_host
    from tests.support.factory import Pkg, make_pypi_like

    pypi = make_pypi_like(tmp_path_factory.mktemp("cpypi"), [PROBE, Pkg("hpmtest-core", "2.0.0")])
    pypi.chmod(0o755)
    for f in pypi.iterdir():
        f.chmod(0o644)

    def lock(*platforms: str) -> str:
        return hpm_host("lock", "--format", "b64", "--registry", str(container_registry), "--with",
                        "hpmtest-probe", "--python-version", images.python_version, "--no-index",
                        "--find-links", str(pypi),
                        *[a for p in platforms for a in ("--python-platform", p)]).stdout.strip()

    env = {"UV_FIND_LINKS": "/pypi"}
    args = ["-v", f"{pypi}:/pypi:ro"]
    both = lock("x86_64-manylinux_2_28", "aarch64-manylinux_2_28")
    run = run_container(images.root, "python3", "-m", "hpmtest_probe", env={**env, "HPM_LOCK_B64": both},
                        args=args)
    assert run.probe["pid"] == 1 and "installing with uv: 2 requirement(s)" in run.log
    foreign = lock("aarch64-apple-darwin")
    run = run_container(images.root, "python3", "-m", "hpmtest_probe", env={**env, "HPM_LOCK_B64": foreign},
                        args=args, check=78)
    first = run.log.splitlines()[0]
    assert first.startswith(f"hpm: error: the lock's targets (Python {images.python_version} "
                            "aarch64-apple-darwin) do not include this environment "
                            f"(Python {images.python_version}, linux "), first
    assert "glibc" in first and "installing" not in run.log
