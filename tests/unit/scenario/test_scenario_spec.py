"""The STATE format: defaults, generated instances, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from autojoin.domain.model import Role
from autojoin.errors import BadInput
from autojoin.scenario.spec import ClusterSpec, instance_id_for, load_state, parse_state


def test_default_cluster_is_demo_3_managers_1_1_1_and_2_workers() -> None:
    spec = load_state(None)
    assert spec.cluster == "demo"
    assert spec.region == "us-east-1"
    assert spec.zones == ("us-east-1a", "us-east-1b", "us-east-1c")
    assert spec.exists
    managers = spec.instances(Role.MANAGER)
    assert [(i.id, i.az) for i in managers] == [
        ("i-00000000000000101", "us-east-1a"),
        ("i-00000000000000102", "us-east-1b"),
        ("i-00000000000000103", "us-east-1c"),
    ]
    assert [i.id for i in spec.instances(Role.WORKER)] == ["i-00000000000000201", "i-00000000000000202"]
    assert spec.group_name(Role.MANAGER) == "demo-manager"
    assert spec.group_name(Role.WORKER) == "demo-worker"
    assert all(spec.member(i) for r in Role for i in spec.instances(r))


def test_count_is_balanced_round_robin_and_a_bare_number_is_a_count() -> None:
    spec = parse_state({"managers": 5, "workers": {"count": 0}})
    assert [i.az for i in spec.instances(Role.MANAGER)] == [
        "us-east-1a",
        "us-east-1b",
        "us-east-1c",
        "us-east-1a",
        "us-east-1b",
    ]
    assert spec.instances(Role.WORKER) == ()


def test_layout_places_instances_per_zone() -> None:
    spec = parse_state({"zones": ["a1", "b1"], "managers": {"layout": {"a1": 3, "b1": 2}}})
    assert [i.az for i in spec.instances(Role.MANAGER)] == ["a1", "a1", "a1", "b1", "b1"]


def test_generated_ids_stay_unique_beyond_99() -> None:
    ids = {instance_id_for(Role.WORKER, n) for n in range(1, 300)}
    ids |= {instance_id_for(Role.MANAGER, n) for n in range(1, 300)}
    assert len(ids) == 598
    assert all(len(i) == 19 for i in ids)


def test_explicit_instances_and_membership() -> None:
    spec = parse_state(
        {
            "exists": True,
            "managers": {
                "instances": [
                    {"id": "i-0aaaaaaaaaaaaaaa1", "az": "us-east-1a"},
                    {"id": "i-0aaaaaaaaaaaaaaa2", "az": "us-east-1b", "lifecycle_state": "Pending:Wait"},
                    {"id": "i-0aaaaaaaaaaaaaaa3", "az": "us-east-1c", "in_cluster": False},
                ]
            },
        }
    )
    members = [spec.member(i) for i in spec.instances(Role.MANAGER)]
    assert members == [True, False, False]
    assert not parse_state({"exists": False}).member(spec.instances(Role.MANAGER)[0])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"managers": {"layout": {"us-west-2a": 1}}}, "zone us-west-2a does not exist"),
        ({"managers": {"instances": [{"id": "i-0123456789abcdef0", "az": "eu-west-1a"}]}}, "does not exist"),
        ({"zones": []}, "at least one AZ"),
        ({"zones": ["a", "a"]}, "listed twice"),
        ({"managers": {"count": 2, "layout": {"us-east-1a": 2}}}, "only one of count, layout, instances"),
        ({"workers": {"count": -1}}, "workers.count"),
        ({"colour": "blue"}, "unknown field colour"),
        ({"managers": {"name": "x"}, "workers": {"name": "x"}}, "different names"),
        ({"hook_timeouts": {"launch": 10}}, "hook_timeouts.launch"),
        (
            {
                "managers": {"instances": [{"id": "i-0123456789abcdef0", "az": "us-east-1a"}]},
                "workers": {"instances": [{"id": "i-0123456789abcdef0", "az": "us-east-1a"}]},
            },
            "both groups",
        ),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_state_is_bad_input_with_a_reason(data: object, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_state(data)


def test_load_state_reports_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        load_state(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("zones: [a, b\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_state(bad)
    good = tmp_path / "good.yaml"
    good.write_text("cluster: prod\nzones: [eu-west-1a, eu-west-1b, eu-west-1c]\nmanagers: 5\n")
    spec = load_state(good)
    assert spec.cluster == "prod"
    assert spec.group_name(Role.MANAGER) == "prod-manager"
    assert len(spec.instances(Role.MANAGER)) == 5


def test_secret_aliases_default_to_the_ids_the_events_use() -> None:
    spec = ClusterSpec()
    assert spec.secret_alias(Role.MANAGER).endswith(":secret:demo/autojoin/manager-token-Ab12Cd")
    assert spec.secret_alias(Role.WORKER).endswith(":secret:demo/autojoin/worker-token-Ef34Gh")
