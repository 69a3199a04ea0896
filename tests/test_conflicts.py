"""``conflicts.explain``: uv's "no solution" text mapped back to the plan (unit level).

The texts are uv 0.13's, as ``uv pip compile`` printed them for the wheelhouses of
tests/test_ecosystem.py (which runs the same cases end to end).
"""

from __future__ import annotations

from hpm_boot.compose.conflicts import Member, Rule, explain

MEMBERS = [Member("map-cluster", "datasette-cluster-map", "reg/map-cluster.yaml", ("map-viz",)),
           Member("legacy", "legacy-geo", "reg/legacy.yaml")]

COMMA = (
    "error: No solution found when resolving dependencies\n"
    "  cause: Because all versions of datasette-cluster-map depend on datasette>=0.65,<1 and all versions of "
    "legacy-geo depend on datasette<0.60, we can conclude that all versions of datasette-cluster-map and all "
    "versions of legacy-geo are incompatible.\n"
    "         And because you require datasette-cluster-map==0.18.2 and legacy-geo==1.0, we can conclude "
    "that your requirements are unsatisfiable.\n"
)

def test_specifiers_with_commas_stay_whole_and_providers_get_a_way_out() -> None:
    err = explain(COMMA, MEMBERS, [], {"map-viz": ["map-cluster", "map-geojson"]})
    assert err is not None and err.exit_code == 78
    assert err.message.startswith("map-cluster and legacy cannot share one environment: "
                                  "they collide on datasette")
    assert "map-cluster [reg/map-cluster.yaml] needs datasette>=0.65,<1" in (err.details or "")
    assert "--provide map-viz=map-geojson" in (err.details or "")


def test_one_package_alone_is_not_a_conflict_between_plugins() -> None:
    text = ("error: No solution found when resolving dependencies\n  cause: Because only "
            "datasette<=0.65.1 is available and all versions of legacy-geo depend on datasette>=2, we can "
            "conclude that all versions of legacy-geo cannot be used.\n")
    assert explain(text, MEMBERS, []) is None
    err = explain(text, MEMBERS, [Rule("datasette>=2", "reg/hpm-registry.yaml:4")])
    assert err is not None and "reg/hpm-registry.yaml:4" in err.message


def test_other_failures_are_left_alone() -> None:
    assert explain("error: Failed to fetch: https://pypi.org/simple/x/", MEMBERS, []) is None
