"""A small, offline IAM policy evaluator for the policies in template.yaml.

Why our own: the PyPI candidates either only lint or expand policies (policyuniverse, parliament,
policy-sentry, cloudsplaining) or answer "who can do what" over a whole account snapshot fetched
from AWS (principalmapper, last released 2022). None evaluates one request against CloudFormation
policies whose ARNs are still intrinsics. This module does exactly that, and no more.

What it implements (the subset of the IAM policy language the template uses, with AWS's semantics):

- Statements: Effect Allow/Deny; Action / NotAction; Resource / NotResource; Condition.
- Decision: an explicit Deny wins; else any Allow; else implicit deny. ``evaluate_with_resource_policy``
  adds a resource policy (a KMS key policy) as AWS does for a same-account request where the resource
  policy delegates to the account: both the identity policy and the key policy must allow.
- Action matching: case-insensitive, ``*`` and ``?`` wildcards. Resource matching: case-sensitive
  glob with ``*`` and ``?`` (ARN segments are not special, as in IAM).
- Policy variables ``${aws:userid}`` (and any ``${key}`` present in the request context) in Resource
  and Condition values. A variable the request does not carry makes that element not match (IAM
  evaluates it as no match), never "match everything".
- Condition operators: StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringLike,
  StringNotLike, ArnEquals, ArnLike, ArnNotEquals, ArnNotLike, Bool, NumericEquals,
  NumericLessThan(Equals), NumericGreaterThan(Equals); the ``IfExists`` suffix; the set prefixes
  ``ForAllValues:`` and ``ForAnyValue:``. Keys inside one operator, and operators, are ANDed; values
  of one key are ORed. A key missing from the request makes a plain operator false, an ``...IfExists``
  operator true, ``ForAllValues`` true (vacuously: the AWS trap) and ``ForAnyValue`` false.
  An unknown operator raises: the evaluator never guesses.
- CloudFormation: ``resolve`` turns Ref / Fn::GetAtt / Fn::Sub / Fn::Join (and pseudo parameters)
  into strings from a table of fake physical ids, so statements are evaluated on real-looking ARNs.

Not implemented (not used by the template): permission boundaries, SCPs, session policies,
cross-account rules, NotPrincipal, Principal matching beyond "this account" for key policies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ContextValue = str | Sequence[str] | bool | int


@dataclass(frozen=True)
class Request:
    """One API call as IAM sees it."""

    action: str  # "service:Action"
    resource: str  # the ARN the action is on ("*" for actions without resource-level permissions)
    context: Mapping[str, ContextValue] = field(default_factory=dict)  # condition keys, incl. aws:userid


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not implement."""


# --- CloudFormation intrinsics ------------------------------------------------------------------


@dataclass(frozen=True)
class PhysicalIds:
    """Fake deployment: what Ref / GetAtt / pseudo parameters resolve to."""

    refs: Mapping[str, str]
    attrs: Mapping[str, str]  # "Logical.Attr" -> value
    pseudo: Mapping[str, str] = field(
        default_factory=lambda: {
            "AWS::Region": "us-east-1",
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
            "AWS::StackName": "autojoin-test",
            "AWS::URLSuffix": "amazonaws.com",
        }
    )

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name not in self.refs:
            raise UnsupportedPolicy(f"no fake physical id for Ref {name}")
        return self.refs[name]

    def getatt(self, name: str) -> str:
        if name not in self.attrs:
            raise UnsupportedPolicy(f"no fake value for GetAtt {name}")
        return self.attrs[name]


_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def _sub(text: str, ids: PhysicalIds, variables: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return variables[name]
        if "." in name and not name.startswith("AWS::"):
            return ids.getatt(name)
        return ids.ref(name)

    return _SUB_VAR.sub(one, text)


def resolve(value: Any, ids: PhysicalIds) -> Any:
    """Resolve CloudFormation intrinsics in ``value`` (recursively) to plain JSON."""
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, arg), *_ = value.items()
        if key == "Ref":
            return ids.ref(arg)
        if key == "Fn::GetAtt":
            name = ".".join(arg) if isinstance(arg, list) else arg
            return ids.getatt(name)
        if key == "Fn::Sub":
            if isinstance(arg, str):
                return _sub(arg, ids, {})
            text, variables = arg
            return _sub(text, ids, {k: str(resolve(v, ids)) for k, v in variables.items()})
        if key == "Fn::Join":
            sep, parts = arg
            return sep.join(str(resolve(p, ids)) for p in parts)
        if key.startswith("Fn::"):
            raise UnsupportedPolicy(f"intrinsic {key} is not supported")
    return {k: resolve(v, ids) for k, v in value.items()}


# --- matching -----------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _glob(pattern: str, text: str, *, case_sensitive: bool = True) -> bool:
    if not case_sensitive:
        pattern, text = pattern.lower(), text.lower()
    # fnmatch would treat [...] as a character class; IAM has only * and ?
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.S) is not None


class _Unresolved(Exception):
    """A policy variable the request does not carry."""


def _expand_variables(text: str, context: Mapping[str, ContextValue]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in ("*", "?", "$"):  # ${*} ${?} ${$}: literal characters
            return name
        value = context.get(name)
        if value is None or not isinstance(value, str):
            raise _Unresolved(name)
        return value

    return _SUB_VAR.sub(one, text)


def action_matches(patterns: Iterable[str], action: str) -> bool:
    return any(_glob(p, action, case_sensitive=False) for p in patterns)


def resource_matches(patterns: Iterable[str], resource: str, context: Mapping[str, ContextValue]) -> bool:
    for pattern in patterns:
        try:
            expanded = _expand_variables(pattern, context)
        except _Unresolved:
            continue
        if _glob(expanded, resource):
            return True
    return False


# --- conditions ---------------------------------------------------------------------------------


def _string_op(base: str) -> tuple[bool, Any]:
    """(negated, matcher(policy_value, request_value) -> bool) for a base operator name."""
    ops: dict[str, tuple[bool, Any]] = {
        "StringEquals": (False, lambda p, r: p == r),
        "StringNotEquals": (True, lambda p, r: p == r),
        "StringEqualsIgnoreCase": (False, lambda p, r: p.lower() == r.lower()),
        "StringNotEqualsIgnoreCase": (True, lambda p, r: p.lower() == r.lower()),
        "StringLike": (False, _glob),
        "StringNotLike": (True, _glob),
        "ArnEquals": (False, _glob),
        "ArnLike": (False, _glob),
        "ArnNotEquals": (True, _glob),
        "ArnNotLike": (True, _glob),
        "Bool": (False, lambda p, r: str(p).lower() == str(r).lower()),
        "NumericEquals": (False, lambda p, r: float(r) == float(p)),
        "NumericLessThan": (False, lambda p, r: float(r) < float(p)),
        "NumericLessThanEquals": (False, lambda p, r: float(r) <= float(p)),
        "NumericGreaterThan": (False, lambda p, r: float(r) > float(p)),
        "NumericGreaterThanEquals": (False, lambda p, r: float(r) >= float(p)),
    }
    if base not in ops:
        raise UnsupportedPolicy(f"condition operator {base} is not supported")
    return ops[base]


def _condition_operator(operator: str, block: Mapping[str, Any], context: Mapping[str, ContextValue]) -> bool:
    set_op = ""
    name = operator
    if ":" in name:
        set_op, name = name.split(":", 1)
        if set_op not in ("ForAllValues", "ForAnyValue"):
            raise UnsupportedPolicy(f"condition set operator {set_op} is not supported")
    if_exists = name.endswith("IfExists")
    base = name.removesuffix("IfExists")
    negated, match = _string_op(base)
    for key, policy_values in block.items():
        try:
            wanted = [_expand_variables(str(v), context) for v in _as_list(policy_values)]
        except _Unresolved:
            return False
        present = key in context
        if not present:
            if set_op == "ForAllValues":
                continue  # vacuously true: no value fails "all values are in the set"
            if set_op == "ForAnyValue":
                return False
            if if_exists:
                continue
            return False
        values = [str(v) for v in _as_list(context[key])]
        hits = [any(match(w, v) for w in wanted) for v in values]
        if set_op == "ForAllValues":
            ok = all((not h) if negated else h for h in hits)
        elif set_op == "ForAnyValue":
            ok = any((not h) if negated else h for h in hits)
        else:
            if len(values) != 1:
                raise UnsupportedPolicy(
                    f"{operator} on multi-valued key {key} needs ForAllValues/ForAnyValue"
                )
            ok = (not hits[0]) if negated else hits[0]
        if not ok:
            return False
    return True


def conditions_match(condition: Mapping[str, Any] | None, context: Mapping[str, ContextValue]) -> bool:
    if not condition:
        return True
    return all(_condition_operator(op, block, context) for op, block in condition.items())


# --- evaluation ---------------------------------------------------------------------------------


def statements_of(policies: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every statement of every policy document."""
    out: list[Mapping[str, Any]] = []
    for doc in policies:
        out.extend(_as_list(doc.get("Statement", [])))
    return out


def statement_applies(stmt: Mapping[str, Any], request: Request) -> bool:
    unknown = set(stmt) - {
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
        "Principal",
    }
    if unknown:
        raise UnsupportedPolicy(f"statement elements {sorted(unknown)} are not supported")
    if "Action" in stmt:
        if not action_matches(_as_list(stmt["Action"]), request.action):
            return False
    elif "NotAction" in stmt:
        if action_matches(_as_list(stmt["NotAction"]), request.action):
            return False
    else:
        raise UnsupportedPolicy("statement without Action/NotAction")
    if "Resource" in stmt:
        if not resource_matches(_as_list(stmt["Resource"]), request.resource, request.context):
            return False
    elif "NotResource" in stmt:
        if resource_matches(_as_list(stmt["NotResource"]), request.resource, request.context):
            return False
    else:
        raise UnsupportedPolicy("statement without Resource/NotResource")
    return conditions_match(stmt.get("Condition"), request.context)


def decide(statements: Iterable[Mapping[str, Any]], request: Request) -> str:
    """'Deny' (explicit), 'Allow', or 'ImplicitDeny'."""
    allowed = False
    for stmt in statements:
        if not statement_applies(stmt, request):
            continue
        effect = stmt.get("Effect")
        if effect == "Deny":
            return "Deny"
        if effect != "Allow":
            raise UnsupportedPolicy(f"Effect {effect!r}")
        allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def is_allowed(policies: Iterable[Mapping[str, Any]], request: Request) -> bool:
    return decide(statements_of(policies), request) == "Allow"


def _principal_is_account(stmt: Mapping[str, Any], account_root: str) -> bool:
    principal = stmt.get("Principal", {})
    if not isinstance(principal, Mapping):
        return bool(principal == "*")
    return account_root in _as_list(principal.get("AWS", []))


def evaluate_with_resource_policy(
    identity_policies: Iterable[Mapping[str, Any]],
    resource_policy: Mapping[str, Any],
    request: Request,
    *,
    account_root: str,
) -> bool:
    """Same-account call to a resource whose policy names the account (a KMS key policy): KMS needs
    the key policy to allow the account AND the caller's IAM policy to allow the call."""
    key_statements = [s for s in statements_of([resource_policy]) if _principal_is_account(s, account_root)]
    identity = decide(statements_of(identity_policies), request)
    on_key = decide(key_statements, request)
    return identity == "Allow" and on_key == "Allow"


def actions_granted(policies: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every action named by an Allow statement (lower case); refuses NotAction (it grants open sets)."""
    out: set[str] = set()
    for stmt in statements_of(policies):
        if stmt.get("Effect") != "Allow":
            continue
        if "NotAction" in stmt:
            raise UnsupportedPolicy("NotAction in an Allow grants an open set of actions")
        out |= {a.lower() for a in _as_list(stmt["Action"])}
    return out


__all__ = [
    "PhysicalIds",
    "Request",
    "UnsupportedPolicy",
    "action_matches",
    "actions_granted",
    "conditions_match",
    "decide",
    "evaluate_with_resource_policy",
    "is_allowed",
    "resolve",
    "resource_matches",
    "statements_of",
]
