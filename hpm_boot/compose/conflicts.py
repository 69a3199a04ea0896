"""uv's "no solution" explanation, mapped back to the plan: which manifests collide.

When ``uv pip compile`` finds no closure, its explanation (PubGrub's derivation) names
distributions and what they depend on. ``explain`` reads those facts, maps the
distributions back to the plan's packages (by the distribution each one installs) and
to the registry's ``constraints``, and says it hpm's way: exit 78, a first line naming
the manifests and the dependency they collide on, the ways out, then uv's own text.
A failure it cannot map to two packages or a registry constraint is left as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from hpm_boot.errors import ResolutionError

NO_SOLUTION = "No solution found when resolving dependencies"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
#: "all versions of X depend on Y<2", "X==1.0 depends on Y>=2", "only X==1 is available and X depends on"
_DEPENDS = re.compile(
    rf"(?:all versions of |\b)(?P<who>{_NAME})(?:[=<>!~]=?[^\s,]*)? depends? on "
    r"(?P<what>one of:|(?:[^\n,]|,(?=[<>=!~]))+?)(?=,(?![<>=!~])| and |\n|$)"  # "x>=1,<2" keeps its comma
)
_ONE_OF = re.compile(rf"^\s+(?P<req>{_NAME}\S*)\s*$")


@dataclass(frozen=True)
class Member:
    """A package of the plan as the resolver sees it: the distribution it installs."""

    name: str  # the manifest's name
    distribution: str
    manifest: str  # its file
    provides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """A registry-wide ``constraints`` or ``overrides`` entry and where it was written."""

    requirement: str
    where: str
    kind: str = "constraint"  # or "override"

    def __str__(self) -> str:
        return f"{self.kind} {self.requirement} [{self.where}]"


def _depends(text: str) -> list[tuple[str, list[str]]]:
    """(distribution, [requirements it is said to depend on]) in the order uv says them."""
    out: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for m in _DEPENDS.finditer(text):
        who, what = canonicalize_name(m["who"]), m["what"].strip()
        if what == "one of:":
            row = next(i for i, o in enumerate(offsets) if o > m.end()) - 1
            reqs = []
            for line in lines[row + 1:]:
                one = _ONE_OF.match(line)
                if not one:
                    break
                reqs.append(one["req"])
            out.append((who, reqs))
        else:
            out.append((who, [what.removesuffix(".").strip()]))
    return out


def _dep_name(requirement: str) -> str | None:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        match = re.match(_NAME, requirement)
        return canonicalize_name(match.group(0)) if match else None


def explain(stderr: str, members: Sequence[Member], constraints: Sequence[Rule],
            virtuals: dict[str, list[str]] | None = None) -> ResolutionError | None:
    """The conflict in uv's ``stderr`` as hpm's ResolutionError (78), or None when uv's
    explanation does not point at two or more packages of the plan or a registry constraint."""
    if NO_SOLUTION not in stderr:
        return None
    by_dist = {m.distribution: m for m in members}
    said = _depends(stderr)
    rules = [c for c in constraints if _implicated(c, stderr)]
    # uv tells a constraint as a dependency of whoever needs the package: not the plugin's own
    ruled = {_spec_text(c.requirement) for c in rules}
    deps: dict[str, list[str]] = {}
    for who, reqs in said:
        reqs = [r for r in reqs if _spec_text(r) not in ruled]
        if reqs:
            text = reqs[0] if len(reqs) == 1 else "one of " + " or ".join(reqs)
            if text not in deps.setdefault(who, []):
                deps[who].append(text)
    counts: dict[str, int] = {}
    for _who, reqs in said:
        for dep in {d for d in map(_dep_name, reqs) if d and d not in by_dist}:
            counts[dep] = counts.get(dep, 0) + 1
    shared = sorted(d for d, n in counts.items() if n > 1) or sorted(counts)
    involved = [m for m in members if m.distribution in deps]
    if len(involved) < 2 and not rules:
        return None
    on = ", ".join(shared) or "their dependencies"
    uv_text = "\n".join("  " + line for line in stderr.strip().splitlines())
    lines = [f"  {m.name} [{m.manifest}] needs {_chain(deps, m.distribution, set(by_dist))}"
             for m in involved if m.distribution in deps]
    lines += [f"  {c} (hpm-registry.yaml, every plan)" for c in rules]
    if len(involved) >= 2:
        names = [m.name for m in involved]
        files = ", ".join(f"{m.name} [{m.manifest}]" for m in involved)
        first = (f"{_and(names)} cannot share one environment: they collide on {on} ({files})"
                 + (f"; with the registry {_and([str(c) for c in rules])}"
                    if rules else ""))
        ways = ["ways out:",
                f"  drop one of them from the selection (--with, --group, defaults): {', '.join(names)}"]
        for m in involved:
            for virtual in m.provides:
                others = [c for c in (virtuals or {}).get(virtual, []) if c != m.name]
                if others:
                    ways.append(f"  choose another provider of {virtual}: --provide {virtual}={others[0]}")
        ways.append("  run them apart, each in its own environment: "
                    + "; ".join(f"hpm run --ephemeral --with {n}" for n in names)
                    + " (or one container each: hpm lock --with NAME)")
    else:
        users = involved or [m for m in members if _named(m.distribution, stderr)]
        needed = f", needed by {_and([m.name for m in users])}" if users else ""
        first = (f"the registry {_and([str(c) for c in rules])} "
                 f"cannot be satisfied in this plan ({on}{needed})")
        ways = ["ways out:", f"  change or remove the {rules[0].kind} in hpm-registry.yaml",
                "  or drop the package that needs something else from the selection"]
    return ResolutionError(first, "\n".join(["what collides:", *lines, *ways, "uv's explanation:", uv_text]))


def _spec_text(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def _named(dist: str, text: str) -> bool:
    return any(_dep_name(word) == dist for word in re.findall(rf"{_NAME}[^\s,]*", text))


def _chain(deps: dict[str, list[str]], who: str, members: set[str], depth: int = 0) -> str:
    """What ``who`` needs, and through a library of its own what that needs in turn."""
    parts = []
    for need in deps.get(who, []):
        name = _dep_name(need.removeprefix("one of "))
        if name and name in deps and name not in members and name != who and depth < 4:
            need += f" (which needs {_chain(deps, name, members, depth + 1)})"
        parts.append(need)
    return ", ".join(parts) or "?"


def _implicated(rule: Rule, text: str) -> bool:
    """Whether uv's explanation speaks of ``rule``'s distribution at ``rule``'s versions."""
    try:
        req = Requirement(rule.requirement)
    except InvalidRequirement:
        return False
    spec = str(req.specifier)
    words = re.findall(rf"{_NAME}[^\s,]*", text)
    for word in words:
        name = _dep_name(word)
        if name == canonicalize_name(req.name) and (not spec or all(s in word for s in spec.split(","))):
            return True
    return False


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
