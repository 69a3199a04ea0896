"""The registry: directories, layering, duplicates, names, hpm-registry.yaml, validate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpm_boot.compose import registry
from hpm_boot.errors import NotFoundError
from tests.support.factory import git, make_git_repo
from tests.support.registry_cli import pkg, plan_json, run, write

# ---------------------------------------------------------------- directories


@pytest.mark.parametrize("command", [["validate"], ["list"], ["plan"], ["why", "x"]])
def test_missing_registry_directory_is_66(tmp_path: Path, capsys, command: list[str]) -> None:
    rc, _, err = run(capsys, *command, "-r", str(tmp_path / "nope"))
    assert rc == 66
    assert err.splitlines()[0] == f"hpm: error: registry directory {tmp_path / 'nope'} does not exist"
    assert "--registry" in err


def test_default_registry_is_dot_registry(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "plan")
    assert rc == 66 and "registry directory registry does not exist" in err
    write(tmp_path, {"registry/a.yaml": pkg("a")})
    assert plan_json(capsys, "--with", "a")["packages"][0]["name"] == "a"


def test_hpm_registry_path_list_and_flags_replace_it(tmp_path: Path, capsys) -> None:
    one = write(tmp_path / "one", {"a.yaml": pkg("a", "1.0.0"), "b.yaml": pkg("b")})
    two = write(tmp_path / "two", {"a.yaml": pkg("a", "2.0.0")})
    env = {"HPM_REGISTRY": f"{one}{os.pathsep}{two}"}
    plan = plan_json(capsys, "--with", "a", "--with", "b", env=env)
    assert {p["name"]: p["version"] for p in plan["packages"]} == {"a": "2.0.0", "b": "1.0.0"}
    assert plan["registry"] == [str(one), str(two)]
    # --registry replaces HPM_REGISTRY entirely
    plan = plan_json(capsys, "-r", str(one), "--with", "a", env=env)
    assert plan["packages"][0]["version"] == "1.0.0"
    # a missing directory in the path list is an error, not skipped
    rc, _, err = run(capsys, "plan", env={"HPM_REGISTRY": f"{one}{os.pathsep}{tmp_path / 'gone'}"})
    assert rc == 66 and "gone does not exist" in err


def test_later_directory_overrides_earlier(tmp_path: Path, capsys) -> None:
    one = write(tmp_path / "one", {"qdrant.yaml": pkg("qdrant", "1.0.0"), "x.yaml": pkg("x")})
    two = write(tmp_path / "two", {"sub/Qdrant.yml": pkg("QDRANT", "2.0.0")})
    reg = registry.load([one, two], "prod")
    entry = reg.entries["qdrant"]
    assert entry.manifest.version == "2.0.0"
    assert entry.file == two / "sub/Qdrant.yml"
    assert entry.overrides == (one / "qdrant.yaml",)
    assert registry.load([two, one], "prod").entries["qdrant"].manifest.version == "1.0.0"
    plan = plan_json(capsys, "-r", str(one), "-r", str(two), "--with", "qdrant")
    assert plan["packages"][0]["manifest"] == str(two / "sub/Qdrant.yml")


def test_overlays_stay_with_their_own_directory(tmp_path: Path) -> None:
    """A later directory replaces the whole package, overlays included."""
    one = write(tmp_path / "one", {"a.yaml": pkg("a"), "a.local.yaml": "description: one\n"})
    two = write(tmp_path / "two", {"a.yaml": pkg("a", "2.0.0")})
    entry = registry.load([one, two], "prod").entries["a"]
    assert entry.manifest.description == "" and entry.overlays == ()


# ---------------------------------------------------------------- names and duplicates


@pytest.mark.parametrize(
    ("first", "second"),
    [("vlm-adapter-qwen", "Vlm_Adapter.Qwen"), ("a", "a"), ("a_b", "A-B")],
)
def test_duplicate_names_in_one_directory_name_both_files(
    tmp_path: Path, capsys, first: str, second: str
) -> None:
    write(tmp_path, {"one.yaml": pkg(first), "sub/two.yml": pkg(second)})
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    problem = next(line for line in err.splitlines() if "also defined" in line)
    assert str(tmp_path / "one.yaml") in problem and str(tmp_path / "sub/two.yml") in problem
    assert problem.startswith(f"{tmp_path / 'sub/two.yml'}:1: name: ")
    rc, _, err = run(capsys, "plan", "-r", str(tmp_path))
    assert rc == 65 and "also defined in" in err.splitlines()[0]


def test_pep503_normalization_everywhere(tmp_path: Path, capsys) -> None:
    write(
        tmp_path,
        {
            "qwen.yaml": pkg(
                "Vlm_Adapter.Qwen", extra="provides: [VLM.Adapter]\nrequires: {App_Core: '>=1'}\n"
            ),
            "core.yaml": pkg("app-core"),
            "hpm-registry.yaml": "groups: {Vision: [vlm_adapter__qwen]}\n",
        },
    )
    reg = registry.load([tmp_path], "prod")
    assert set(reg.entries) == {"vlm-adapter-qwen", "app-core"}
    assert reg.get("VLM_ADAPTER-qwen") is reg.entries["vlm-adapter-qwen"]
    assert reg.virtuals() == {"vlm-adapter": ["vlm-adapter-qwen"]}
    for selector in (
        ["--with", "Vlm_Adapter.Qwen"],
        ["--with", "vlm-adapter-qwen"],
        ["--with", "VLM_adapter"],
        ["--group", "VISION"],
    ):
        names = [p["name"] for p in plan_json(capsys, "-r", str(tmp_path), *selector)["packages"]]
        assert names == ["app-core", "vlm-adapter-qwen"], selector
    rc, out, _ = run(capsys, "why", "-r", str(tmp_path), "--with", "vlm-adapter-qwen", "APP_CORE")
    assert rc == 0 and out.startswith("app-core 1.0.0: required by vlm-adapter-qwen")


def test_hidden_and_non_yaml_files_are_ignored(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": pkg("a"),
            ".hidden.yaml": "garbage: [",
            ".git/config.yaml": "garbage: [",
            "README.md": "# not a manifest",
            "notes.txt": "garbage: [",
        },
    )
    assert list(registry.load([tmp_path], "prod").entries) == ["a"]


# ---------------------------------------------------------------- hpm-registry.yaml


def test_registry_config_groups_and_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": pkg("a", extra="groups: [vision]\nprovides: [vdb]\n"),
            "b.yaml": pkg("b", extra="provides: [vdb]\n"),
            "c.yaml": pkg("c"),
            "hpm-registry.yaml": """
            groups: {vision: [c], rag: [vdb]}
            defaults: {with: [c], groups: [rag], providers: {vdb: b}}
            """,
        },
    )
    reg = registry.load([tmp_path], "prod")
    assert reg.groups() == {"rag": ["vdb"], "vision": ["a", "c"]}
    assert reg.config.defaults.with_ == ["c"]
    assert reg.config.defaults.providers == {"vdb": "b"}


def test_registry_configs_of_several_directories_merge(tmp_path: Path) -> None:
    one = write(
        tmp_path / "one",
        {
            "a.yaml": pkg("a"),
            "b.yaml": pkg("b"),
            "hpm-registry.yaml": "groups: {g: [a], h: [a]}\ndefaults: {with: [a]}\n",
        },
    )
    two = write(tmp_path / "two", {"hpm-registry.yaml": "groups: {g: [b]}\ndefaults: {with: null}\n"})
    reg = registry.load([one, two], "prod")
    assert reg.config.groups == {"g": ["b"], "h": ["a"]}  # lists replace, maps merge
    assert reg.config.defaults.with_ == []  # null removes


def test_registry_config_problems_have_lines(tmp_path: Path, capsys) -> None:
    write(
        tmp_path,
        {
            "a.yaml": pkg("a", extra="provides: [vdb]\n"),
            "hpm-registry.yaml": """
            groups:
              g: [a, ghost]
            defaults:
              with: [nothing]
              groups: [nogroup]
              providers: {vdb: c, novirtual: a}
            """,
            "sub/hpm-registry.yaml": "groups: {}\n",
        },
    )
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    cfg = tmp_path / "hpm-registry.yaml"
    for expected in [
        f"{cfg}:2: groups.g[1]: unknown package or virtual 'ghost'",
        f"{cfg}:4: defaults.with[0]: unknown package or virtual 'nothing'",
        f"{cfg}:5: defaults.groups[0]: unknown group 'nogroup'",
        f"{cfg}:6: defaults.providers.vdb: 'c' does not provide 'vdb' (its providers: a)",
        f"{cfg}:6: defaults.providers.novirtual: 'novirtual' is not a virtual of the registry",
        f"{tmp_path / 'sub/hpm-registry.yaml'}: hpm-registry.yaml belongs at the top",
    ]:
        assert expected in err, (expected, err)


def test_registry_config_schema_errors(tmp_path: Path, capsys) -> None:
    write(tmp_path, {"a.yaml": pkg("a"), "hpm-registry.yaml": "defaults: {with: a, colour: red}\n"})
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path / 'hpm-registry.yaml'}:1: defaults." in err


# ---------------------------------------------------------------- validate


def test_validate_reports_every_problem_in_one_run(tmp_path: Path, capsys) -> None:
    write(
        tmp_path,
        {
            "ok.yaml": pkg("ok"),
            "broken-yaml.yaml": "name: [\n",
            "list.yaml": "- a\n",
            "empty.yaml": "",
            "typo.yaml": pkg("typo", extra="requries: {ok: '*'}\n"),
            "badver.yaml": pkg("badver", "one"),
            "dup1.yaml": pkg("dup"),
            "dup2.yaml": pkg("dup"),
            "needs.yaml": pkg("needs", extra="requires: {ghost: '>=1'}\n"),
            "orphan.dev.yaml": "description: x\n",
            "ok.dev.yaml": "sources: {dev: {type: local, path: 7}}\n",
        },
    )
    rc, out, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65 and out == ""
    expected = [
        "broken-yaml.yaml:2: invalid YAML",
        "list.yaml: expected a mapping at the top level, got a list",
        "empty.yaml: the file is empty",
        "typo.yaml:5: requries: unknown field",
        "badver.yaml:2: version: invalid PEP 440 version 'one'",
        "dup2.yaml:1: name: package dup is also defined in",
        "needs.yaml:5: requires.ghost: no package or virtual named 'ghost'",
        "orphan.dev.yaml: overlay without a base manifest",
        "ok.dev.yaml:1: sources.dev.path: expected a string, got an integer",
    ]
    for item in expected:
        assert f"{tmp_path}/{item}" in err, (item, err)
    assert err.splitlines()[0].startswith(f"hpm: error: {len(expected)} problem(s) in {tmp_path}")
    # plan stops at the first, and says there are more
    rc, _, err = run(capsys, "plan", "-r", str(tmp_path), "--mode", "dev")
    assert rc == 65
    assert "more; run `hpm validate` for all" in err.splitlines()[0]


def test_validate_warns_about_missing_dev_checkouts_but_passes(tmp_path: Path, capsys) -> None:
    (tmp_path / "checkouts/b").mkdir(parents=True)
    write(
        tmp_path / "reg",
        {
            "a.yaml": pkg("a"),
            "a.dev.yaml": "sources: {dev: {type: local, path: ../checkouts/a}}\n",
            "b.yaml": pkg("b"),
            "b.dev.yaml": "sources: {dev: {type: local, path: ../checkouts/b}}\n",
        },
    )
    rc, out, err = run(capsys, "validate", "-r", str(tmp_path / "reg"))
    assert rc == 0
    assert out.startswith("ok: 2 packages, 0 virtuals, 0 groups")
    warnings = [line for line in err.splitlines() if line.startswith("hpm: warning:")]
    assert len(warnings) == 1
    assert (
        f"{tmp_path}/reg/a.dev.yaml:1: a: dev checkout {tmp_path}/checkouts/a does not exist" in warnings[0]
    )


def test_package_that_is_also_a_virtual(tmp_path: Path, capsys) -> None:
    write(tmp_path, {"vdb.yaml": pkg("vdb"), "q.yaml": pkg("q", extra="provides: [vdb]\n")})
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path))
    assert rc == 65
    assert f"{tmp_path}/vdb.yaml:1: name: vdb is both a package and a virtual provided by q" in err


def test_validate_of_the_example_registry(capsys) -> None:
    examples = Path(__file__).resolve().parents[1] / "examples/registry"
    rc, out, err = run(capsys, "validate", "-r", str(examples))
    assert rc == 0, err
    assert out.startswith("ok: 6 packages, 3 virtuals, 3 groups")


def test_registry_load_raises_not_found_for_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotFoundError):
        registry.load([tmp_path / "file"], "prod")


def test_relative_git_url_is_relative_to_the_manifest(tmp_path: Path, capsys, monkeypatch) -> None:
    """``url: ../remotes/x.git`` names a repository beside the registry, wherever hpm runs;
    `hpm dev checkout` clones it (a real repository)."""
    repo = make_git_repo(tmp_path / "remotes" / "plug.git", "plug", tags=["v0.1.0"])
    write(tmp_path / "registry", {
        "plug.yaml": "name: plug\nversion: 0.1.0\nsources:\n"
                     "  prod: {type: git, url: ../remotes/plug.git, ref: v0.1.0}\n"
                     "  dev: {type: local, path: ../checkouts/plug}\n",
    })
    monkeypatch.chdir(tmp_path / "remotes")  # not where the registry is
    # validate warns about a local repository that is not there (and passes)
    write(tmp_path / "gone", {"gone.yaml": "name: gone\nversion: 1.0.0\nsources:\n"
                                           "  prod: {type: git, url: ../nowhere.git, ref: v1}\n"})
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path / "gone"))
    assert rc == 0 and f"gone: no git repository at {tmp_path}/nowhere.git" in err, err
    rc, _, err = run(capsys, "validate", "-r", str(tmp_path / "registry"))
    assert rc == 0 and "no git repository" not in err, err
    plan = plan_json(capsys, "-r", str(tmp_path / "registry"), "--with", "plug")
    assert plan["packages"][0]["source"] == {"type": "git", "url": repo.url, "ref": "v0.1.0"}
    rc, out, err = run(capsys, "dev", "-r", str(tmp_path / "registry"), "checkout", "plug")
    assert rc == 0 and "checked out" in out, err
    assert (tmp_path / "checkouts" / "plug" / "pyproject.toml").is_file()
    assert git(tmp_path / "checkouts" / "plug", "rev-parse", "HEAD") == repo.tags["v0.1.0"]
