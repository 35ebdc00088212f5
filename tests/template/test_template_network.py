"""The stack in a real VPC: the nodes' security group (Swarm's ports between members, nothing from
outside), the three-AZ rule, the outbound-access choice, and parameter validation and outputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
T = yaml_parse((ROOT / "template.yaml").read_text())
R: dict[str, Any] = T["Resources"]
P: dict[str, Any] = T["Parameters"]
SG = {"Ref": "NodeSecurityGroup"}
SWARM = {("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)}


def rules(kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in R.values() if r["Type"] == f"AWS::EC2::SecurityGroup{kind}"]


def test_node_group_takes_swarm_ports_from_members_only() -> None:
    node = R["NodeSecurityGroup"]["Properties"]
    assert node["VpcId"] == {"Ref": "VpcId"}
    assert "SecurityGroupIngress" not in node  # nothing inline, in particular no CIDR
    ingress = [r for r in rules("Ingress") if r["GroupId"] == SG]
    assert {(r["IpProtocol"], r["FromPort"]) for r in ingress} == SWARM
    for r in ingress:
        assert r["FromPort"] == r["ToPort"]
        assert r["SourceSecurityGroupId"] == SG, r
        assert not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(r)


def test_node_group_egress_is_https_and_swarm_to_members() -> None:
    inline = R["NodeSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in inline] == [("tcp", 443, 443)]
    egress = [r for r in rules("Egress") if r["GroupId"] == SG]
    assert {(r["IpProtocol"], r["FromPort"]) for r in egress} == SWARM
    assert all(r["DestinationSecurityGroupId"] == SG for r in egress)


@pytest.mark.parametrize("template", ["ManagerLaunchTemplate", "WorkerLaunchTemplate"])
def test_every_node_gets_the_group(template: str) -> None:
    data = R[template]["Properties"]["LaunchTemplateData"]
    assert data["SecurityGroupIds"] == [SG]


def test_three_az_rule_names_three_distinct_zones_each_holding_a_subnet() -> None:
    assertions = T["Rules"]["ThreeAvailabilityZones"]["Assertions"]
    text = repr(assertions)
    zones = ["ZoneA", "ZoneB", "ZoneC"]
    for a, b in (("ZoneA", "ZoneB"), ("ZoneB", "ZoneC"), ("ZoneA", "ZoneC")):
        assert {"Fn::Not": [{"Fn::Equals": [{"Ref": a}, {"Ref": b}]}]} in [x["Assert"] for x in assertions]
    subnet_azs = {"Fn::ValueOfAll": ["AWS::EC2::Subnet::Id", "AvailabilityZone"]}
    for z in zones:
        assert {"Fn::Contains": [subnet_azs, {"Ref": z}]} in [x["Assert"] for x in assertions]
    assert "2-2-1" in text  # each assertion says why
    for z in zones:
        assert P[z]["Type"] == "AWS::EC2::AvailabilityZone::Name"


def test_outbound_access_endpoints_are_conditional_and_need_route_tables() -> None:
    assert P["OutboundAccess"]["AllowedValues"] == ["nat", "endpoints"]
    endpoints = {lid: r for lid, r in R.items() if r["Type"] == "AWS::EC2::VPCEndpoint"}
    services = {r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1] for r in endpoints.values()}
    assert services == {"ssm", "ssmmessages", "ec2messages", "secretsmanager", "dynamodb", "s3"}
    assert all(r["Condition"] == "CreateEndpoints" for r in endpoints.values())
    rule = T["Rules"]["EndpointsNeedRouteTables"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "OutboundAccess"}, "endpoints"]}


def test_manager_count_is_odd_and_at_least_three() -> None:
    allowed = [int(v) for v in P["ManagerCount"]["AllowedValues"]]
    assert allowed and all(v >= 3 and v % 2 == 1 for v in allowed)
    assert int(P["ManagerCount"]["Default"]) in allowed


@pytest.mark.parametrize("param", ["ManagerInstanceType", "WorkerInstanceType"])
def test_instance_types_must_match_the_arm64_image(param: str) -> None:
    pattern = re.compile(P[param]["AllowedPattern"])
    assert "arm64" in P["ImageId"]["Default"]
    for ok in ("t4g.small", "m7g.large", "c7gn.xlarge", "r8g.2xlarge", "m7gd.large", "a1.medium"):
        assert pattern.fullmatch(ok), ok
    for bad in ("t3.small", "m5.large", "c6i.xlarge", "g5.xlarge", "t4g", "T4G.small"):
        assert not pattern.fullmatch(bad), bad
    assert pattern.fullmatch(P[param]["Default"])


def test_every_output_is_described() -> None:
    for name, out in T["Outputs"].items():
        assert out.get("Description"), name


def test_groups_have_no_update_policy_and_the_template_says_why() -> None:
    for group in ("ManagerGroup", "WorkerGroup"):
        assert "UpdatePolicy" not in R[group]
    assert "Update behaviour: no UpdatePolicy" in (ROOT / "template.yaml").read_text()
