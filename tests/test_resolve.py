"""The resolver through ``hpm plan``/``hpm why``: selection, providers, groups, constraints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpm_boot.compose import registry, resolve
from hpm_boot.compose.resolve import Selection
from tests.support.registry_cli import pkg, plan_json, run, write


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    """A registry like the example: core, a vdb virtual with two providers, groups."""
    (tmp_path / "co/qdrant").mkdir(parents=True)  # only qdrant is checked out
    return write(
        tmp_path / "reg",
        {
            "core.yaml": pkg("core", "1.2.0"),
            "qdrant.yaml": pkg("qdrant", "0.3.0", provides="[vdb]", requires="{core: '>=1.2,<2'}"),
            "qdrant.dev.yaml": "sources: {dev: {type: local, path: ../co/qdrant}}\n",
            "milvus.yaml": pkg("milvus", "0.5.0", provides="[vdb]", requires="{core: '>=1.0'}"),
            "milvus.dev.yaml": "sources: {dev: {type: local, path: ../co/milvus}}\n",
            "rerank.yaml": pkg("rerank", "0.1.0", provides="[reranker]"),
            "qwen.yaml": pkg("qwen", "0.2.0", provides="[vlm]", groups="[vision]", conflicts="{llava: '*'}"),
            "llava.yaml": pkg("llava", "0.1.4", provides="[vlm]", groups="[legacy]"),
            "hpm-registry.yaml": "groups: {rag: [vdb, reranker]}\n",
        },
    )


def plan_of(capsys, reg: Path, *argv: str, env: dict[str, str] | None = None) -> dict:
    """``hpm plan --json -r REG ARGV`` in-process, parsed (it must exit 0)."""
    return plan_json(capsys, "-r", str(reg), *argv, env=env)


def provider(plan: dict, virtual: str) -> tuple[str, str]:
    p = next(p for p in plan["providers"] if p["virtual"] == virtual)
    return p["package"], p["rule"]


def names(plan: dict) -> list[str]:
    return [p["name"] for p in plan["packages"]]


# ---------------------------------------------------------------- provider rules


def test_rule_1_explicit_by_flag_env_and_registry_defaults(reg: Path, capsys) -> None:
    plan = plan_of(capsys, reg, "--group", "rag", "--provide", "vdb=milvus")
    assert provider(plan, "vdb") == ("milvus", "explicit")
    assert next(p for p in plan["providers"] if p["virtual"] == "vdb")["detail"] == "chosen by --provide"
    plan = plan_of(capsys, reg, "--group", "rag", env={"HPM_PROVIDERS": "vdb=milvus,reranker=rerank"})
    assert provider(plan, "vdb") == ("milvus", "explicit")
    assert "HPM_PROVIDERS" in plan["packages"][1]["reason"]["detail"]
    # the flag replaces the variable
    plan = plan_of(
        capsys, reg, "--group", "rag", "--provide", "vdb=qdrant", env={"HPM_PROVIDERS": "vdb=milvus"}
    )
    assert provider(plan, "vdb") == ("qdrant", "explicit")
    # registry defaults, overridden by the flag, ignored with --no-defaults
    (reg / "hpm-registry.yaml").write_text(
        "groups: {rag: [vdb, reranker]}\ndefaults: {providers: {vdb: milvus}}\n"
    )
    plan = plan_of(capsys, reg, "--group", "rag")
    assert provider(plan, "vdb") == ("milvus", "explicit")
    assert "defaults.providers" in plan["packages"][1]["reason"]["detail"]
    assert provider(plan_of(capsys, reg, "--group", "rag", "-p", "vdb=qdrant"), "vdb") == (
        "qdrant",
        "explicit",
    )
    rc, _, _ = run(capsys, "plan", "-r", str(reg), "--group", "rag", "--no-defaults")
    assert rc == 78


def test_rule_1_beats_rule_3(reg: Path, capsys) -> None:
    plan = plan_of(capsys, reg, "--group", "rag", "--mode", "dev", "--provide", "vdb=milvus")
    assert provider(plan, "vdb") == ("milvus", "explicit")


def test_rule_2_selected_provider(reg: Path, capsys) -> None:
    plan = plan_of(capsys, reg, "--group", "rag", "--with", "milvus")
    assert provider(plan, "vdb") == ("milvus", "selected")
    assert names(plan) == ["core", "milvus", "rerank"]
    # a provider pulled in by requires counts as selected too
    write(reg, {"app.yaml": pkg("app", requires="{milvus: '*'}")})
    plan = plan_of(capsys, reg, "--with", "app", "--group", "rag")
    assert provider(plan, "vdb") == ("milvus", "selected")


def test_rule_2_sees_providers_chosen_later(tmp_path: Path, capsys) -> None:
    """A provider selected while settling another virtual (rule 4) settles this one by rule 2."""
    reg = write(
        tmp_path,
        {
            "a1.yaml": pkg("a1", provides="[va]"),
            "a2.yaml": pkg("a2", provides="[va]"),
            "b.yaml": pkg("b", provides="[vb]", requires="{a2: '*'}"),
        },
    )
    plan = plan_of(capsys, reg, "--with", "va", "--with", "vb")
    assert provider(plan, "va") == ("a2", "selected")
    assert provider(plan, "vb") == ("b", "only-provider")


def test_rule_3_dev_checkout(reg: Path, capsys) -> None:
    plan = plan_of(capsys, reg, "--group", "rag", "--mode", "dev")
    assert provider(plan, "vdb") == ("qdrant", "dev-checkout")
    qdrant = next(p for p in plan["packages"] if p["name"] == "qdrant")
    assert qdrant["source_mode"] == "dev"
    assert qdrant["source"] == {"type": "local", "path": str(reg.parent / "co/qdrant")}
    # RUN_MODE works as --mode
    assert (
        provider(plan_of(capsys, reg, "--group", "rag", env={"RUN_MODE": "dev"}), "vdb")[1] == "dev-checkout"
    )
    # prod mode does not look at checkouts
    rc, _, _ = run(capsys, "plan", "-r", str(reg), "--group", "rag")
    assert rc == 78
    # two checkouts: no longer decides
    (reg.parent / "co/milvus").mkdir()
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--group", "rag", "--mode", "dev")
    assert rc == 78 and "vdb needs exactly one provider" in err


def test_rule_4_only_provider(reg: Path, capsys) -> None:
    plan = plan_of(capsys, reg, "--with", "reranker")
    assert provider(plan, "reranker") == ("rerank", "only-provider")
    assert plan["packages"][0]["reason"]["kind"] == "provider"


def test_ambiguous_provider_lists_candidates_and_three_ways(reg: Path, capsys) -> None:
    rc, out, err = run(capsys, "plan", "-r", str(reg), "--group", "rag")
    assert rc == 78 and out == ""
    lines = err.splitlines()
    assert lines[0] == (
        "hpm: error: vdb needs exactly one provider and no rule chose one "
        "(milvus, qdrant); choose with --provide vdb=PACKAGE"
    )
    assert "vdb is needed: group rag" in lines
    assert f"  milvus 0.5.0  ({reg / 'milvus.yaml'})" in lines
    assert f"  qdrant 0.3.0  ({reg / 'qdrant.yaml'})" in lines
    assert "  --provide vdb=milvus" in lines
    assert "  HPM_PROVIDERS=vdb=milvus" in lines
    assert "  hpm-registry.yaml: defaults: {providers: {vdb: milvus}}" in lines


def test_two_selected_providers_of_a_requested_virtual(reg: Path, capsys) -> None:
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--group", "rag", "--with", "milvus,qdrant")
    assert rc == 78
    assert "vdb needs exactly one provider and more than one provider is selected" in err
    # even when one is chosen explicitly
    rc, _, err = run(
        capsys, "plan", "-r", str(reg), "--group", "rag", "--with", "milvus", "--provide", "vdb=qdrant"
    )
    assert rc == 78 and "more than one provider is selected (milvus, qdrant)" in err


def test_two_selected_groups_that_conflict(tmp_path: Path, capsys) -> None:
    reg = write(
        tmp_path,
        {
            "app.yaml": pkg("app", requires="{vdb: '*'}"),
            "q.yaml": pkg("q", provides="[vdb]", groups="[fast]"),
            "m.yaml": pkg("m", provides="[vdb]", groups="[big]"),
            "x.yaml": pkg("x", groups="[left]", conflicts="{y: '*'}"),
            "y.yaml": pkg("y", groups="[right]"),
        },
    )
    assert names(plan_of(capsys, reg, "--with", "app", "--group", "fast")) == ["app", "q"]
    # two groups each bringing a provider of one requested virtual
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--with", "app", "--group", "fast,big")
    assert rc == 78 and "vdb needs exactly one provider" in err and "(m, q)" in err
    # members of two groups that conflict
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--group", "left", "--group", "right")
    assert rc == 78
    assert err.splitlines()[0] == "hpm: error: x conflicts with y *, and both are selected (y 1.0.0)"
    assert "  x is in: group left" in err and "  y is in: group right" in err


def test_provider_that_does_not_provide(reg: Path, capsys) -> None:
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--group", "rag", "--provide", "vdb=rerank")
    assert rc == 78
    assert err.splitlines()[0] == "hpm: error: --provide: rerank does not provide vdb"
    assert "providers of vdb: milvus, qdrant" in err
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--group", "rag", "--provide", "vdb=ghost")
    assert rc == 66 and "'ghost' is not a package or virtual" in err
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--provide", "core=qdrant")
    assert rc == 2 and "core is a package, not a virtual" in err
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--provide", "vdb")
    assert rc == 2 and "expected VIRTUAL=PACKAGE" in err
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--provide", "nothing=qdrant")
    assert rc == 66 and "'nothing' is not a package or virtual" in err
    # the same mistake in the registry defaults
    (reg / "hpm-registry.yaml").write_text("defaults: {providers: {vdb: rerank}}\n")
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--with", "vdb")
    assert rc == 65 and "defaults.providers.vdb: 'rerank' does not provide 'vdb'" in err


# ---------------------------------------------------------------- selection


def test_with_naming_nothing(reg: Path, capsys) -> None:
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--with", "qdrnt")
    assert rc == 66
    assert err.splitlines()[0] == (
        "hpm: error: --with qdrnt 'qdrnt' is not a package or virtual of the registry; did you mean qdrant?"
    )
    rc, _, err = run(capsys, "plan", "-r", str(reg), env={"HPM_WITH": "zzz"})
    assert rc == 66 and "'zzz' is not a package or virtual" in err and "hpm list" in err


def test_unknown_group(reg: Path, capsys) -> None:
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--group", "visoin")
    assert rc == 66
    assert err.splitlines()[0] == "hpm: error: unknown group 'visoin'"
    assert "groups of this registry: legacy, rag, vision" in err
    rc, _, _ = run(capsys, "plan", "-r", str(reg), env={"HPM_GROUPS": "nope"})
    assert rc == 66


def test_flags_replace_their_variables(reg: Path, capsys) -> None:
    env = {"HPM_WITH": "milvus", "HPM_GROUPS": "vision"}
    assert names(plan_of(capsys, reg, env=env)) == ["core", "milvus", "qwen"]
    assert names(plan_of(capsys, reg, "--with", "rerank", env=env)) == ["qwen", "rerank"]
    assert names(plan_of(capsys, reg, "--group", "legacy", env=env)) == ["core", "llava", "milvus"]
    assert names(plan_of(capsys, reg, "-w", "core,rerank")) == ["core", "rerank"]


def test_defaults_always_apply_unless_no_defaults(reg: Path, capsys) -> None:
    (reg / "hpm-registry.yaml").write_text(
        "groups: {rag: [vdb, reranker]}\ndefaults: {with: [core], groups: [vision]}\n"
    )
    plan = plan_of(capsys, reg, "--with", "rerank")
    assert names(plan) == ["core", "qwen", "rerank"]
    assert plan["groups"] == ["vision"] and plan["requested"] == ["rerank"]
    core = plan["packages"][0]
    assert core["reason"] == {"kind": "default", "detail": "defaults.with in hpm-registry.yaml"}
    assert names(plan_of(capsys, reg, "--with", "rerank", "--no-defaults")) == ["rerank"]
    assert plan_of(capsys, reg)["packages"][0]["name"] == "core"


def test_empty_selection_is_an_empty_plan(reg: Path, capsys) -> None:
    plan = plan_of(capsys, reg)
    assert plan["packages"] == [] and plan["providers"] == []
    rc, out, _ = run(capsys, "plan", "-r", str(reg))
    assert rc == 0 and out.startswith("plan: 0 packages, mode prod")


# ---------------------------------------------------------------- requires and conflicts


def test_requires_pulls_in_transitively_with_reasons(tmp_path: Path, capsys) -> None:
    reg = write(
        tmp_path,
        {
            "app.yaml": pkg("app", requires="{mid: '>=1'}"),
            "mid.yaml": pkg("mid", "1.5", requires="{vdb: '>=0.3'}"),
            "q.yaml": pkg("q", "0.3.0", provides="[vdb]", requires="{base: '*'}"),
            "base.yaml": pkg("base"),
        },
    )
    plan = plan_of(capsys, reg, "--with", "app")
    assert names(plan) == ["app", "base", "mid", "q"]
    reasons = {p["name"]: p["reason"] for p in plan["packages"]}
    assert reasons["app"] == {"kind": "requested", "detail": "--with app"}
    assert reasons["mid"] == {"kind": "requires", "detail": "required by app (>=1)", "parent": "app"}
    assert reasons["q"]["kind"] == "provider" and reasons["q"]["parent"] == "mid"
    assert reasons["base"]["parent"] == "q"
    rc, out, _ = run(capsys, "why", "-r", str(reg), "--with", "app", "base")
    assert rc == 0
    assert out.splitlines() == [
        f"base 1.0.0: required by q (*)  [{reg / 'base.yaml'}]",
        f"  <- q 0.3.0: provides vdb (the only provider), for required by mid (>=0.3)  [{reg / 'q.yaml'}]",
        f"    <- mid 1.5: required by app (>=1)  [{reg / 'mid.yaml'}]",
        f"      <- app 1.0.0: --with app  [{reg / 'app.yaml'}]",
    ]
    rc, out, _ = run(capsys, "why", "-r", str(reg), "--with", "app", "vdb")
    assert rc == 0
    assert out.splitlines()[0] == "vdb is a virtual; provider q: the only provider (candidates: q)"


def test_requires_violation_shows_chain_and_files(tmp_path: Path, capsys) -> None:
    reg = write(
        tmp_path,
        {
            "app.yaml": pkg("app", requires="{plugin: '*'}"),
            "plugin.yaml": pkg("plugin", requires="{core: '<1.0'}"),
            "core.yaml": pkg("core", "1.2.0"),
            "hpm-registry.yaml": "defaults: {with: [core]}\n",
        },
    )
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--with", "app")
    assert rc == 78
    assert err.splitlines() == [
        "hpm: error: plugin requires core <1.0, but the plan has core 1.2.0",
        f"constraint: core <1.0  [{reg / 'plugin.yaml'}:5]",
        "  plugin is in: required by app (*); app is in: --with app",
        f"found: core 1.2.0  [{reg / 'core.yaml'}:2]",
        "  core is in: defaults.with in hpm-registry.yaml",
    ]


def test_requires_of_a_virtual_checks_the_providers_version(reg: Path, capsys) -> None:
    write(reg, {"app.yaml": pkg("app", requires="{vdb: '>=0.4'}")})
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--with", "app", "--provide", "vdb=qdrant")
    assert rc == 78
    assert "app requires vdb >=0.4, but the plan has qdrant 0.3.0" in err
    plan = plan_of(capsys, reg, "--with", "app", "--provide", "vdb=milvus")
    assert "milvus" in names(plan)


def test_prereleases_satisfy_specifiers(tmp_path: Path, capsys) -> None:
    reg = write(tmp_path, {"a.yaml": pkg("a", requires="{b: '>=1.0'}"), "b.yaml": pkg("b", "1.1rc1")})
    assert names(plan_of(capsys, reg, "--with", "a")) == ["a", "b"]


def test_conflicts_violation(reg: Path, capsys) -> None:
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--group", "vision", "--group", "legacy")
    assert rc == 78
    lines = err.splitlines()
    assert lines[0] == "hpm: error: qwen conflicts with llava *, and both are selected (llava 0.1.4)"
    assert f"conflict: llava *  [{reg / 'qwen.yaml'}:7]" in lines
    assert "  qwen is in: group vision" in lines and "  llava is in: group legacy" in lines
    # a conflict only with a version range outside the plan is fine
    write(reg, {"qwen.yaml": pkg("qwen", "0.2.0", groups="[vision]", conflicts="{llava: '<0.1'}")})
    assert names(plan_of(capsys, reg, "--group", "vision", "--group", "legacy")) == ["llava", "qwen"]


def test_conflict_with_a_virtual_means_its_provider(reg: Path, capsys) -> None:
    write(reg, {"app.yaml": pkg("app", conflicts="{vdb: '>=0.5'}")})
    assert "qdrant" in names(plan_of(capsys, reg, "--with", "app,vdb", "-p", "vdb=qdrant"))
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--with", "app,vdb", "-p", "vdb=milvus")
    assert rc == 78 and "app conflicts with vdb >=0.5" in err


def test_requires_cycle_is_accepted(tmp_path: Path, capsys) -> None:
    reg = write(
        tmp_path,
        {
            "a.yaml": pkg("a", requires="{b: '*'}"),
            "b.yaml": pkg("b", requires="{c: '*'}"),
            "c.yaml": pkg("c", requires="{a: '>=1'}"),
        },
    )
    plan = plan_of(capsys, reg, "--with", "b")
    assert names(plan) == ["a", "b", "c"]
    rc, out, _ = run(capsys, "why", "-r", str(reg), "--with", "b", "a")
    assert rc == 0 and len(out.splitlines()) == 3
    # a cycle through a violated constraint still ends
    write(tmp_path, {"c.yaml": pkg("c", requires="{a: '>=2'}")})
    rc, _, err = run(capsys, "plan", "-r", str(reg), "--with", "b")
    assert rc == 78 and "c requires a >=2, but the plan has a 1.0.0" in err


# ---------------------------------------------------------------- dev mode, missing checkouts


def test_missing_dev_checkout_falls_back_to_prod_with_a_warning(reg: Path, capsys) -> None:
    rc, out, err = run(capsys, "plan", "--json", "-r", str(reg), "--mode", "dev", "--with", "milvus")
    assert rc == 0
    plan = json.loads(out)
    milvus = next(p for p in plan["packages"] if p["name"] == "milvus")
    assert milvus["source_mode"] == "prod" and milvus["source"] == {"type": "pypi"}
    warning = (
        f"milvus: dev checkout {reg.parent / 'co/milvus'} does not exist; using the prod "
        "source (hpm dev checkout milvus)"
    )
    assert plan["warnings"] == [warning]
    assert f"hpm: warning: {warning}" in err.splitlines()
    # and the table says it too
    rc, out, err = run(capsys, "plan", "-r", str(reg), "--mode", "dev", "--with", "milvus,qdrant")
    assert rc == 0 and "warning: milvus" in err
    assert "(dev)" in next(line for line in out.splitlines() if line.startswith("qdrant"))
    assert "(dev)" not in next(line for line in out.splitlines() if line.startswith("milvus"))


def test_prod_mode_ignores_dev_sources(reg: Path, capsys) -> None:
    plan = plan_of(capsys, reg, "--with", "qdrant")
    assert all(p["source_mode"] == "prod" for p in plan["packages"])
    assert plan["warnings"] == []


# ---------------------------------------------------------------- determinism


def test_plan_json_is_byte_identical_and_independent_of_listing_order(reg: Path, capsys, monkeypatch) -> None:
    argv = ("--group", "rag", "--group", "vision", "--mode", "dev", "--with", "rerank")
    first = run(capsys, "plan", "--json", "-r", str(reg), *argv)[1]
    assert first == run(capsys, "plan", "--json", "-r", str(reg), *argv)[1]
    walk = os.walk

    def reversed_walk(top, *args, **kwargs):
        for root, dirs, files in walk(top, *args, **kwargs):
            dirs.reverse()
            yield root, dirs, list(reversed(files))

    monkeypatch.setattr(registry.os, "walk", reversed_walk)
    assert run(capsys, "plan", "--json", "-r", str(reg), *argv)[1] == first
    # the order of the selection does not matter either
    shuffled = ("--with", "rerank", "--mode", "dev", "--group", "vision,rag")
    assert run(capsys, "plan", "--json", "-r", str(reg), *shuffled)[1] == first


def test_plan_json_is_the_documented_shape(reg: Path, capsys) -> None:
    plan = plan_of(capsys, reg, "--group", "rag", "-p", "vdb=qdrant", "--with", "core")
    assert list(plan) == sorted(plan)
    assert plan["format"] == resolve.PLAN_FORMAT == 1
    assert set(plan) == {
        "format",
        "mode",
        "registry",
        "requested",
        "groups",
        "packages",
        "providers",
        "warnings",
        "constraints",
        "overrides",
    }
    for p in plan["packages"]:
        assert {"name", "version", "source_mode", "source", "manifest", "reason"} <= set(p)
        assert set(p) <= {
            "name",
            "version",
            "source_mode",
            "source",
            "manifest",
            "reason",
            "manager",
            "extras",
            "entrypoints",
            "provides",
            "path",
        }
    for p in plan["providers"]:
        assert set(p) == {"virtual", "package", "rule", "detail", "candidates"}


def test_resolve_api_is_usable_directly(reg: Path) -> None:
    loaded = registry.load([reg], "prod")
    plan = resolve.resolve(loaded, Selection(with_=("vdb",), providers=(("vdb", "milvus", "test"),)))
    assert [p.name for p in plan.packages] == ["core", "milvus"]
    assert resolve.why_chain(plan, "VDB")[0].startswith("vdb is a virtual; provider milvus")
    assert resolve.to_json(plan) == resolve.to_json(
        resolve.resolve(loaded, Selection(with_=("vdb",), providers=(("vdb", "milvus", "test"),)))
    )


def test_why_of_something_not_in_the_plan(reg: Path, capsys) -> None:
    rc, _, err = run(capsys, "why", "-r", str(reg), "--with", "core", "qdrant")
    assert rc == 66
    assert err.splitlines()[0] == "hpm: error: qdrant is not in the plan"
    assert "the plan has: core" in err
