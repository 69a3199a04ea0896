"""Registry-wide constraints and overrides, and conflicts between plugins explained (issue 13).

The wheelhouse looks like a real plugin ecosystem: manifest names differ from the
distributions they install and from their modules; ``shared-core`` has many versions;
``toolkit`` 81 dropped the module ``pkg_res`` that an app still imports (setuptools
81 and ``pkg_resources``); one plugin needs ``shared-core<2`` through a runtime
library of its own (a transitive conflict), another ``shared-core>=2``. All real
wheels, installed by uv with ``--no-index --find-links``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.factory import Pkg, build_sdist, make_project, make_wheelhouse
from tests.support.world import World, world

__all__ = ["world"]


def _pkg(name: str, version: str, module: str, deps: tuple[str, ...] = (), code: str = "") -> Pkg:
    files = {f"{module}/__init__.py": code or f"VERSION = {version!r}\n"}
    return Pkg(name, version, deps=deps, modules=files)


PACKAGES = (
    *(_pkg("shared-core", v, "shared") for v in ("1.0.0", "1.5.0", "1.9.2", "2.0.0", "2.1.0")),
    # toolkit 81 dropped the module pkg_res, as setuptools 81 dropped pkg_resources
    Pkg("toolkit", "80.9.0", modules={"toolkit/__init__.py": "VERSION = '80.9.0'\n",
                                      "pkg_res/__init__.py": "OK = True\n"}),
    Pkg("toolkit", "81.0.0", modules={"toolkit/__init__.py": "VERSION = '81.0.0'\n"}),
    _pkg("geo-app", "0.65.1", "geoapp", deps=("toolkit", "shared-core>=1"), code="import pkg_res\n"),
    _pkg("alpha-runtime", "1.0.0", "alpha_rt", deps=("shared-core<2",)),
    _pkg("alpha-vision", "0.3.0", "alphavis", deps=("alpha-runtime>=1",)),
    _pkg("beta-vision", "1.2.0", "betavis", deps=("shared-core>=2",)),
    _pkg("pinned-plugin", "1.0.0", "pinned", deps=("shared-core==1.0.0",)),
    *(_pkg("tri-core", v, "tri") for v in ("1.0.0", "2.0.0", "3.0.0")),
    _pkg("tri-one", "1.0.0", "tri_one", deps=("tri-core<3",)),
    _pkg("tri-two", "1.0.0", "tri_two", deps=("tri-core>=2",)),
    _pkg("tri-three", "1.0.0", "tri_three", deps=("tri-core!=2.0.0",)),
)

MANIFESTS = {
    "app": ("geo-app", "0.65.1", ""),
    "plugin-alpha": ("alpha-vision", "0.3.0", "provides: [vision]\n"),
    "plugin-beta": ("beta-vision", "1.2.0", "provides: [vision]\n"),
    "plugin-pinned": ("pinned-plugin", "1.0.0", ""),
    "one": ("tri-one", "1.0.0", ""),
    "two": ("tri-two", "1.0.0", ""),
    "three": ("tri-three", "1.0.0", ""),
}


@pytest.fixture
def eco(world: World) -> World:
    world.wheelhouse = make_wheelhouse(world.tmp / "eco-wheels", PACKAGES)
    # as on an index: some versions have an sdist beside the wheel
    for version in ("1.9.2", "2.1.0"):
        project = make_project(world.tmp / "sdists" / version, "shared-core", version,
                               modules={"shared/__init__.py": f"VERSION = {version!r}\n"})
        build_sdist(project, world.wheelhouse)
    world.env["HPM_CACHE"] = str(world.tmp / "hpm-cache")
    for name, (dist, version, extra) in MANIFESTS.items():
        world.manifest(name, f"name: {name}\nversion: {version}\n{extra}sources:\n"
                       f"  prod: {{type: pypi, package: {dist}}}\n")
    return world


def config(world: World, text: str) -> Path:
    path = world.registry / "hpm-registry.yaml"
    path.write_text(text)
    return path


def lock(world: World, *with_: str, out: str = "lock.json"):
    args = [a for w in with_ for a in ("--with", w)]
    return world.hpm("lock", "-r", world.registry, *args, *world.index(), "-o", world.tmp / out)


def first(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.splitlines()[0] if proc.stderr else ""


# ---------------------------------------------------------------- constraints


def test_without_the_constraint_the_app_dies_at_import(eco: World) -> None:
    env = {"HPM_VENV": str(eco.tmp / "venv")}
    proc = eco.hpm("run", "-r", eco.registry, "--with", "app", *eco.index(), "--",
                   "python", "-c", "import geoapp", env=env)
    assert proc.returncode == 1 and "No module named 'pkg_res'" in proc.stderr


def test_a_constraint_applies_to_every_plan_and_shows(eco: World) -> None:
    config(eco, "# the app still imports what toolkit 81 dropped\nconstraints:\n  - toolkit<81\n")
    env = {"HPM_VENV": str(eco.tmp / "venv")}
    proc = eco.hpm("run", "-r", eco.registry, "--with", "app", *eco.index(), "--",
                   "python", "-c", "import geoapp, toolkit; print(toolkit.VERSION)", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "80.9.0\n"
    proc = lock(eco, "app")
    assert proc.returncode == 0, proc.stderr
    assert "constraint toolkit<81 [" in proc.stderr
    assert "hpm-registry.yaml:3] applies to the pin toolkit==80.9.0" in proc.stderr
    pins = {p["name"]: p.get("version") for p in json.loads((eco.tmp / "lock.json").read_text())["pins"]}
    assert pins["toolkit"] == "80.9.0"
    proc = eco.hpm("plan", "-r", eco.registry, "--with", "app")
    assert "registry constraints" in proc.stdout and "toolkit<81" in proc.stdout, proc.stdout
    proc = eco.hpm("why", "toolkit", "-r", eco.registry, "--with", "app")
    assert proc.returncode == 0, proc.stderr
    assert "constraint toolkit<81" in proc.stdout and "hpm-registry.yaml:3" in proc.stdout
    # the ephemeral environment gets it too
    proc = eco.hpm("run", "--ephemeral", "-r", eco.registry, "--with", "app", *eco.index(), "--",
                   "python", "-c", "import geoapp, toolkit; print(toolkit.VERSION)",
                   env={"HPM_EPHEMERAL_DIR": str(eco.tmp / "eph")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("80.9.0")


def test_lock_check_notices_a_changed_constraint(eco: World) -> None:
    path = config(eco, "constraints: [toolkit<81]\n")
    assert lock(eco, "app").returncode == 0
    check = ("lock", "--check", "-r", eco.registry, "--with", "app", "-o", eco.tmp / "lock.json")
    assert eco.hpm(*check).returncode == 0
    path.write_text("constraints: [toolkit<80.9]\n")
    proc = eco.hpm(*check)
    assert proc.returncode == 1 and "out of date" in proc.stderr
    path.write_text("constraints: []\n")
    assert eco.hpm(*check).returncode == 1


def test_a_constraint_nothing_satisfies_is_78_naming_its_line(eco: World) -> None:
    config(eco, "groups: {}\nconstraints:\n  - shared-core>=1\n  - toolkit>=90\n")
    proc = lock(eco, "app")
    assert proc.returncode == 78, proc.stderr
    line = first(proc)
    assert line.startswith("hpm: error: the registry constraint toolkit>=90 [")
    assert "hpm-registry.yaml:4]" in line and "geo-app" not in line.split("with")[0]
    assert "uv's explanation:" in proc.stderr


@pytest.mark.parametrize("text, field", [
    ("constraints:\n  - toolkit<81\n  - 'not a requirement!'\n", "constraints[1]"),
    ("overrides:\n  - '>=2'\n", "overrides[0]"),
    ("constraints: ['toolkit[extra]<81']\n", "constraints[0]"),
])
def test_a_constraint_that_is_not_pep_508_is_65_with_file_and_line(eco: World, text: str, field: str) -> None:
    config(eco, text)
    for command in ("plan", "lock"):
        index = eco.index() if command == "lock" else ()
        proc = eco.hpm(command, "-r", eco.registry, "--with", "app", *index)
        assert proc.returncode == 65, proc.stderr
        line = first(proc)
        assert "hpm-registry.yaml:" in line and f"{field}:" in line, line
    proc = eco.hpm("validate", "-r", eco.registry)
    assert proc.returncode == 65 and field in proc.stdout + proc.stderr


def test_layering_a_later_directory_replaces_the_list(eco: World) -> None:
    config(eco, "constraints: [toolkit<81]\n")
    team = eco.tmp / "team"
    team.mkdir()
    (team / "hpm-registry.yaml").write_text("constraints: [toolkit<80]\n")
    proc = eco.hpm("plan", "--json", "-r", eco.registry, "-r", team, "--with", "app")
    assert [c["requirement"] for c in json.loads(proc.stdout)["constraints"]] == ["toolkit<80"]
    (team / "hpm-registry.yaml").write_text("constraints: null\n")  # null removes
    proc = eco.hpm("plan", "--json", "-r", eco.registry, "-r", team, "--with", "app")
    assert json.loads(proc.stdout)["constraints"] == []


# ---------------------------------------------------------------- overrides


def test_an_override_replaces_what_a_plugin_asks_for(eco: World) -> None:
    config(eco, "overrides:\n  - shared-core==2.1.0\n  - nowhere-lib<1\n")
    proc = lock(eco, "plugin-pinned")
    assert proc.returncode == 0, proc.stderr
    pins = {p["name"]: p for p in json.loads((eco.tmp / "lock.json").read_text())["pins"]}
    assert all(f["hash"].startswith("sha256:") for f in pins["shared-core"]["files"])
    assert pins["shared-core"]["version"] == "2.1.0"  # pinned-plugin asks for ==1.0.0
    assert "override shared-core==2.1.0" in proc.stderr
    warning = next(line for line in proc.stderr.splitlines() if "nowhere-lib" in line)
    assert warning.startswith("hpm: warning: override nowhere-lib<1 [") and "not in the closure" in warning


# ---------------------------------------------------------------- conflicts between plugins


def test_two_plugins_that_collide_transitively_are_78_naming_both(eco: World) -> None:
    proc = lock(eco, "plugin-alpha", "plugin-beta")
    assert proc.returncode == 78, proc.stderr
    line = first(proc)
    assert line.startswith("hpm: error: plugin-alpha and plugin-beta cannot share one environment: "
                           "they collide on shared-core"), line
    assert "plugin-alpha.yaml" in line and "plugin-beta.yaml" in line
    err = proc.stderr
    assert "hpm run --ephemeral --with plugin-alpha" in err
    assert "hpm run --ephemeral --with plugin-beta" in err
    assert err.index("ways out:") < err.index("uv's explanation:") < err.index("No solution found")
    # the same through hpm run, which resolves on the spot: nothing installed
    venv = eco.tmp / "venv"
    proc = eco.hpm("run", "-r", eco.registry, "--with", "plugin-alpha,plugin-beta", *eco.index(),
                   "--", "true", env={"HPM_VENV": str(venv)})
    assert proc.returncode == 78
    assert "hpm: error: plugin-alpha and plugin-beta cannot share one environment" in proc.stderr
    assert not list(venv.glob("lib/python*/site-packages/alpha*"))
    # and in one ephemeral environment, which uv sync resolves
    proc = eco.hpm("run", "--ephemeral", "-r", eco.registry, "--with", "plugin-alpha,plugin-beta",
                   *eco.index(), "--", "true", env={"HPM_EPHEMERAL_DIR": str(eco.tmp / "eph")})
    assert proc.returncode == 78, proc.stderr
    assert "hpm: error: plugin-alpha and plugin-beta cannot share one environment" in proc.stderr
    # and apart, each works
    for name in ("plugin-alpha", "plugin-beta"):
        proc = eco.hpm("run", "--ephemeral", "-r", eco.registry, "--with", name, *eco.index(), "--", "true",
                       env={"HPM_EPHEMERAL_DIR": str(eco.tmp / "eph")})
        assert proc.returncode == 0, proc.stderr


def test_a_chosen_provider_that_collides_suggests_the_other_provider(eco: World) -> None:
    proc = eco.hpm("lock", "-r", eco.registry, "--with", "plugin-pinned", "--with", "vision",
                   "--provide", "vision=plugin-beta", *eco.index(), "-o", eco.tmp / "lock.json")
    assert proc.returncode == 78, proc.stderr
    assert first(proc).startswith("hpm: error: plugin-beta and plugin-pinned cannot share one environment")
    assert "choose another provider of vision: --provide vision=plugin-alpha" in proc.stderr


def test_a_conflict_among_three_plugins_names_all_three(eco: World) -> None:
    proc = lock(eco, "one", "two", "three")
    assert proc.returncode == 78, proc.stderr
    line = first(proc)
    for name in ("one [", "two [", "three ["):
        assert name in line, line
    assert "collide on tri-core" in line


def test_a_failure_that_is_no_conflict_stays_74(eco: World) -> None:
    eco.manifest("ghost", "name: ghost\nversion: 9.9.9\nsources:\n  prod: {type: pypi}\n")
    proc = lock(eco, "ghost")
    assert proc.returncode == 74, proc.stderr


def test_an_override_nothing_satisfies_is_78_naming_its_line(eco: World) -> None:
    config(eco, "overrides:\n  - shared-core==9.9\n")
    proc = lock(eco, "plugin-pinned")
    assert proc.returncode == 78, proc.stderr
    line = first(proc)
    assert line.startswith("hpm: error: the registry override shared-core==9.9 [")
    assert "hpm-registry.yaml:2]" in line
