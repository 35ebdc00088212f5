"""The IAM evaluator itself: each rule it claims to implement, on hand-made policies."""

from __future__ import annotations

from typing import Any

import pytest
from tests.template.iam_eval import (
    PhysicalIds,
    Request,
    UnsupportedPolicy,
    actions_granted,
    conditions_match,
    decide,
    is_allowed,
    resolve,
)

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/t"


def pol(*statements: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Version": "2012-10-17", "Statement": list(statements)}]


def allow(action: Any, resource: Any = "*", condition: dict[str, Any] | None = None) -> dict[str, Any]:
    stmt: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        stmt["Condition"] = condition
    return stmt


def test_implicit_deny_allow_and_explicit_deny() -> None:
    req = Request("s3:GetObject", "arn:aws:s3:::b/k")
    assert decide([], req) == "ImplicitDeny"
    assert decide([allow("s3:GetObject")], req) == "Allow"
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    assert decide([allow("s3:GetObject"), deny], req) == "Deny"
    assert decide([deny, allow("s3:GetObject")], req) == "Deny"


def test_action_wildcards_and_case() -> None:
    assert is_allowed(pol(allow("S3:get*")), Request("s3:GetObject", "x"))
    assert is_allowed(pol(allow("s3:Get?bject")), Request("s3:GetObject", "x"))
    assert not is_allowed(pol(allow("s3:Get?bject")), Request("s3:GetObjectAcl", "x"))
    assert not is_allowed(pol(allow("s3:Get")), Request("s3:GetObject", "x"))


def test_not_action_and_not_resource() -> None:
    stmt = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    assert is_allowed(pol(stmt), Request("s3:GetObject", "x"))
    assert not is_allowed(pol(stmt), Request("iam:CreateUser", "x"))
    stmt = {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}
    assert is_allowed(pol(stmt), Request("s3:GetObject", "arn:aws:s3:::public/k"))
    assert not is_allowed(pol(stmt), Request("s3:GetObject", "arn:aws:s3:::secret/k"))


def test_resource_glob_is_case_sensitive_and_has_no_character_classes() -> None:
    p = pol(allow("s3:GetObject", "arn:aws:s3:::b/[a]*"))
    assert is_allowed(p, Request("s3:GetObject", "arn:aws:s3:::b/[a]x"))
    assert not is_allowed(p, Request("s3:GetObject", "arn:aws:s3:::b/ax"))
    upper = pol(allow("s3:GetObject", "arn:aws:s3:::B/*"))
    assert not is_allowed(upper, Request("s3:GetObject", "arn:aws:s3:::b/k"))


def test_policy_variable_in_resource() -> None:
    p = pol(allow("s3:GetObject", "arn:aws:s3:::home/${aws:userid}/*"))
    me = {"aws:userid": "AROA:i-1"}
    assert is_allowed(p, Request("s3:GetObject", "arn:aws:s3:::home/AROA:i-1/k", me))
    assert not is_allowed(p, Request("s3:GetObject", "arn:aws:s3:::home/AROA:i-2/k", me))
    # no aws:userid in the request: the variable cannot match anything (never "match all")
    assert not is_allowed(p, Request("s3:GetObject", "arn:aws:s3:::home/${aws:userid}/k"))


def test_string_operators_and_variables_in_conditions() -> None:
    own = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:userid}"]}}
    assert conditions_match(own, {"aws:userid": "A:i-1", "dynamodb:LeadingKeys": ["A:i-1"]})
    assert not conditions_match(own, {"aws:userid": "A:i-1", "dynamodb:LeadingKeys": ["A:i-2"]})
    assert not conditions_match(own, {"aws:userid": "A:i-1", "dynamodb:LeadingKeys": ["A:i-1", "A:i-2"]})
    assert not conditions_match(own, {"dynamodb:LeadingKeys": ["A:i-1"]})  # unresolvable variable
    assert conditions_match({"StringLike": {"k": "a*c"}}, {"k": "abc"})
    assert not conditions_match({"StringLike": {"k": "a*c"}}, {"k": "abd"})
    assert conditions_match({"StringNotEquals": {"k": ["x", "y"]}}, {"k": "z"})
    assert not conditions_match({"StringNotEquals": {"k": ["x", "y"]}}, {"k": "y"})
    assert conditions_match({"StringEqualsIgnoreCase": {"k": "ABC"}}, {"k": "abc"})


def test_values_are_ored_keys_and_operators_are_anded() -> None:
    cond = {"StringEquals": {"a": ["1", "2"], "b": "3"}, "Bool": {"c": "true"}}
    assert conditions_match(cond, {"a": "2", "b": "3", "c": True})
    assert not conditions_match(cond, {"a": "2", "b": "4", "c": True})
    assert not conditions_match(cond, {"a": "2", "b": "3", "c": False})


def test_missing_keys() -> None:
    assert not conditions_match({"StringEquals": {"k": "v"}}, {})
    assert conditions_match({"StringEqualsIfExists": {"k": "v"}}, {})
    assert not conditions_match({"StringEqualsIfExists": {"k": "v"}}, {"k": "w"})
    # the classic trap: ForAllValues over a missing key is true
    assert conditions_match({"ForAllValues:StringEquals": {"k": ["v"]}}, {})
    assert not conditions_match({"ForAnyValue:StringEquals": {"k": ["v"]}}, {})


def test_arn_and_numeric_operators() -> None:
    arn = "arn:aws:events:us-east-1:1:rule/r"
    like = {"ArnLike": {"aws:SourceArn": "arn:aws:events:*:1:rule/*"}}
    assert conditions_match(like, {"aws:SourceArn": arn})
    assert conditions_match({"ArnEquals": {"aws:SourceArn": arn}}, {"aws:SourceArn": arn})
    assert not conditions_match({"ArnNotLike": {"aws:SourceArn": "arn:aws:events:*"}}, {"aws:SourceArn": arn})
    assert conditions_match({"NumericLessThan": {"n": "10"}}, {"n": 3})
    assert not conditions_match({"NumericGreaterThanEquals": {"n": "10"}}, {"n": 3})


def test_unknown_things_raise_instead_of_guessing() -> None:
    with pytest.raises(UnsupportedPolicy):
        conditions_match({"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}, {"aws:CurrentTime": "x"})
    with pytest.raises(UnsupportedPolicy):
        conditions_match({"ForSomeValues:StringEquals": {"k": "v"}}, {"k": "v"})
    with pytest.raises(UnsupportedPolicy):
        conditions_match({"StringEquals": {"k": "v"}}, {"k": ["v", "w"]})  # multi-valued without a set op
    with pytest.raises(UnsupportedPolicy):
        decide([{"Effect": "Allow", "Action": "s3:*"}], Request("s3:GetObject", "x"))
    with pytest.raises(UnsupportedPolicy):
        decide([{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}], Request("s3:GetObject", "x"))
    with pytest.raises(UnsupportedPolicy):
        actions_granted(pol({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}))


def test_resolve_intrinsics() -> None:
    ids = PhysicalIds(refs={"T": "table-1"}, attrs={"T.Arn": TABLE})
    assert resolve({"Ref": "T"}, ids) == "table-1"
    assert resolve({"Fn::GetAtt": ["T", "Arn"]}, ids) == TABLE
    assert resolve({"Fn::GetAtt": "T.Arn"}, ids) == TABLE
    assert resolve({"Fn::Sub": "arn:${AWS::Partition}:x:${AWS::Region}:${T}:${T.Arn}"}, ids) == (
        f"arn:aws:x:us-east-1:table-1:{TABLE}"
    )
    assert resolve({"Fn::Sub": ["${A}-${!Literal}", {"A": {"Ref": "T"}}]}, ids) == "table-1-${Literal}"
    assert resolve({"Fn::Join": ["/", ["a", {"Ref": "T"}]]}, ids) == "a/table-1"
    assert resolve({"Condition": {"StringEquals": {"k": "${aws:userid}"}}}, ids) == {
        "Condition": {"StringEquals": {"k": "${aws:userid}"}}
    }
    with pytest.raises(UnsupportedPolicy):
        resolve({"Ref": "Nope"}, ids)
    with pytest.raises(UnsupportedPolicy):
        resolve({"Fn::If": ["C", 1, 2]}, ids)
