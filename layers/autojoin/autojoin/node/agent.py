#!/usr/bin/env python3
"""autojoin-node: the only autojoin code that runs on a cluster instance.

One file, stdlib + boto3 only, so it can be shipped as-is (user data, a baked image, an SSM
document). The control plane runs it on the node (through SSM in production, in-process in the lab):

    autojoin-node join --role worker|manager [--advertise-addr IP]
    autojoin-node init --advertise-addr IP
    autojoin-node rotate --role R --version-id V
    autojoin-node check-token --role R --version-id V
    autojoin-node leave [--force]
    autojoin-node info

Every command prints exactly ONE JSON line on stdout: a result, or ``{"error": code, "detail": text}``
(exit status 1; 2 for a usage error). A join token is never printed, logged or put in an error: it
only ever travels from the node's own hand-off row (DynamoDB, read-once) or Secrets Manager into the
``docker swarm join --token`` argv on this node, and from ``docker swarm join-token -q`` into
Secrets Manager.

Environment (also read from /etc/autojoin/agent.env, KEY=VALUE lines, when run as a script):

    AUTOJOIN_HANDOFF_TABLE      hand-off table (join)
    AUTOJOIN_MANAGER_SECRET_ID  manager token secret (init; rotate/check-token for managers)
    AUTOJOIN_WORKER_SECRET_ID   worker token secret (init; rotate/check-token for workers)
    AUTOJOIN_PRINCIPAL          hand-off key override (lab/local only; default: sts UserId)
    AUTOJOIN_ADVERTISE_ADDR     default advertise address (else IMDSv2 local-ipv4)
    AUTOJOIN_DOCKER_CLI         docker CLI to run (default: docker)
    DOCKER_HOST                 daemon to talk to (default: the local one)
    AWS_REGION / AWS_DEFAULT_REGION

The hand-off item: {"principal": S, "cluster": S, "role": S, "token": S, "managers": L of S
("10.0.0.1:2377"), "expires_at": N (epoch seconds, the table's TTL)}. The principal is the
node's own ``aws:userid`` ("ROLEID:i-0123..."), and IAM lets the node touch only that row.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TextIO

ROLES = ("manager", "worker")
ENV_FILE = "/etc/autojoin/agent.env"
IMDS = "http://169.254.169.254"
DOCKER_TIMEOUT = 120.0
_TOKEN_RE = re.compile(r"SWMTKN-[0-9A-Za-z-]+")

# stderr fragments of the docker CLI / daemon -> the agent's error codes (one table, lower case)
JOIN_ERRORS: tuple[tuple[str, str], ...] = (
    ("already part of a swarm", "already_in_swarm"),
    ("valid join token is necessary", "invalid_join_token"),
    ("invalid join token", "invalid_join_token"),
    ("join token is invalid", "invalid_join_token"),
    ("timeout was reached before node joined", "unreachable"),
    ("connection refused", "unreachable"),
    ("no route to host", "unreachable"),
    ("deadline exceeded", "unreachable"),
    ("i/o timeout", "unreachable"),
    ("network is unreachable", "unreachable"),
    ("code = unavailable", "unreachable"),
    ("cannot connect to the docker daemon", "daemon_unreachable"),
)
SWARM_ERRORS: tuple[tuple[str, str], ...] = (
    ("does not have a leader", "no_leader"),
    ("not a swarm manager", "not_a_manager"),
    ("not part of a swarm", "not_in_swarm"),
    ("already part of a swarm", "already_in_swarm"),
    ("participating as a manager", "is_manager"),
    ("cannot connect to the docker daemon", "daemon_unreachable"),
)


class AgentError(Exception):
    """A failure the agent reports as ``{"error": code, "detail": detail}``."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = redact(detail)


def redact(text: str) -> str:
    """Remove anything that looks like a swarm join token."""
    return _TOKEN_RE.sub("SWMTKN-<redacted>", text)


def classify(stderr: str, table: Sequence[tuple[str, str]], default: str = "failed") -> str:
    low = stderr.lower()
    return next((code for fragment, code in table if fragment in low), default)


# --- docker ---------------------------------------------------------------------------------------


def docker(
    argv: Sequence[str],
    docker_host: str | None = None,
    input: str | None = None,
    *,
    timeout: float = DOCKER_TIMEOUT,
    cli: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI (``cli``, ``AUTOJOIN_DOCKER_CLI`` or ``docker``); never raises on an exit status."""
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    cli = cli or env.get("AUTOJOIN_DOCKER_CLI") or "docker"
    try:
        return subprocess.run(
            [cli, *argv], input=input, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            [cli, argv[0] if argv else ""], 124, "", "timeout: deadline exceeded"
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess([cli], 127, "", f"{cli}: not found")


def _checked(ctx: Context, argv: Sequence[str], table: Sequence[tuple[str, str]]) -> str:
    proc = ctx.docker(argv)
    if proc.returncode != 0:
        raise AgentError(classify(proc.stderr, table), proc.stderr.strip())
    return proc.stdout.strip()


def swarm_info(ctx: Context) -> dict[str, Any]:
    out = _checked(ctx, ["info", "--format", "{{json .Swarm}}"], SWARM_ERRORS)
    try:
        info = json.loads(out)
    except ValueError as exc:
        raise AgentError("failed", "docker info gave no JSON") from exc
    if not isinstance(info, dict):
        raise AgentError("failed", "docker info gave no JSON object")
    return {
        "node_id": info.get("NodeID") or None,
        "state": info.get("LocalNodeState") or "inactive",
        "is_manager": bool(info.get("ControlAvailable")),
    }


def join_token(ctx: Context, role: str, *, rotate: bool = False) -> str:
    argv = ["swarm", "join-token", *(["--rotate"] if rotate else []), "-q", role]
    token = _checked(ctx, argv, SWARM_ERRORS)
    if not token.startswith("SWMTKN-"):
        raise AgentError("failed", "docker swarm join-token printed no token")
    return token


# --- AWS ------------------------------------------------------------------------------------------


def take_ticket(
    dynamodb_client: Any, table: str, principal: str, *, now: float | None = None
) -> dict[str, Any] | None:
    """Take (read and delete, in one DeleteItem) this node's hand-off ticket; None if absent or expired."""
    resp = dynamodb_client.delete_item(
        TableName=table, Key={"principal": {"S": principal}}, ReturnValues="ALL_OLD"
    )
    item = resp.get("Attributes") or {}
    if not item:
        return None
    expires = item.get("expires_at", {}).get("N")
    if expires is not None and float(expires) <= (time.time() if now is None else now):
        return None  # DynamoDB's TTL deletes late: an expired row is no ticket
    try:
        return {
            "cluster": item["cluster"]["S"],
            "role": item["role"]["S"],
            "token": item["token"]["S"],
            "managers": [m["S"] for m in item.get("managers", {}).get("L", [])],
        }
    except (KeyError, TypeError):
        return None


def store_token(
    secretsmanager_client: Any, secret_id: str, token: str, version_id: str | None = None
) -> None:
    """PutSecretValue: AWSPENDING ``version_id`` when given, else a new AWSCURRENT version."""
    if version_id:
        secretsmanager_client.put_secret_value(
            SecretId=secret_id,
            SecretString=token,
            ClientRequestToken=version_id,
            VersionStages=["AWSPENDING"],
        )
    else:
        secretsmanager_client.put_secret_value(SecretId=secret_id, SecretString=token)


def pending_token(secretsmanager_client: Any, secret_id: str, version_id: str) -> str | None:
    """The AWSPENDING value of ``version_id``, or None when there is no such pending version."""
    try:
        resp = secretsmanager_client.get_secret_value(
            SecretId=secret_id, VersionId=version_id, VersionStage="AWSPENDING"
        )
    except Exception as exc:  # botocore's ClientError, without importing botocore
        if aws_error_code(exc) in {"ResourceNotFoundException", "InvalidRequestException"}:
            return None
        raise
    value = resp.get("SecretString")
    return value if isinstance(value, str) else None


def aws_error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def caller_principal(session: Any) -> str:
    return str(session.client("sts").get_caller_identity()["UserId"])


def imds_local_ipv4(timeout: float = 2.0) -> str:
    """IMDSv2: the instance's primary private IPv4 address."""
    put = urllib.request.Request(  # noqa: S310 - fixed link-local URL
        f"{IMDS}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    with urllib.request.urlopen(put, timeout=timeout) as resp:  # noqa: S310
        imds_token = resp.read().decode()
    get = urllib.request.Request(  # noqa: S310
        f"{IMDS}/latest/meta-data/local-ipv4", headers={"X-aws-ec2-metadata-token": imds_token}
    )
    with urllib.request.urlopen(get, timeout=timeout) as resp:  # noqa: S310
        return str(resp.read().decode().strip())


# --- commands -------------------------------------------------------------------------------------


class Context:
    def __init__(self, env: Mapping[str, str], session: Any) -> None:
        self.env = env
        self._session = session
        self.docker_host = env.get("DOCKER_HOST") or None
        self.cli = env.get("AUTOJOIN_DOCKER_CLI") or "docker"

    def docker(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return docker(argv, self.docker_host, cli=self.cli)

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3  # only the commands that talk to AWS need it

            region = self.env.get("AWS_REGION") or self.env.get("AWS_DEFAULT_REGION") or None
            self._session = boto3.Session(region_name=region)
        return self._session

    def need(self, name: str) -> str:
        value = self.env.get(name)
        if not value:
            raise AgentError("config", f"{name} is not set")
        return value

    def secret_id(self, role: str) -> str:
        return self.need("AUTOJOIN_MANAGER_SECRET_ID" if role == "manager" else "AUTOJOIN_WORKER_SECRET_ID")

    def advertise_addr(self, given: str | None) -> str:
        addr = given or self.env.get("AUTOJOIN_ADVERTISE_ADDR")
        if addr:
            return addr
        try:
            return imds_local_ipv4()
        except OSError as exc:
            raise AgentError("config", f"no --advertise-addr and IMDS failed: {exc}") from exc


def cmd_join(ctx: Context, role: str, advertise: str | None) -> dict[str, Any]:
    table = ctx.need("AUTOJOIN_HANDOFF_TABLE")
    principal = ctx.env.get("AUTOJOIN_PRINCIPAL") or caller_principal(ctx.session)
    ticket = take_ticket(ctx.session.client("dynamodb"), table, principal)
    if ticket is None:
        raise AgentError("no_ticket", "no unexpired hand-off ticket for this node")
    if ticket["role"] != role:
        raise AgentError("wrong_role", f"the ticket is for role {ticket['role']}, not {role}")
    if not ticket["managers"]:
        raise AgentError("no_managers", "the ticket lists no manager address")
    addr = ctx.advertise_addr(advertise)
    last = AgentError("unreachable", "no manager answered")
    for manager in ticket["managers"]:
        proc = ctx.docker(["swarm", "join", "--token", ticket["token"], "--advertise-addr", addr, manager])
        if proc.returncode == 0:
            return {"node_id": swarm_info(ctx)["node_id"], "manager": manager}
        code = classify(proc.stderr, JOIN_ERRORS)
        last = AgentError(code, proc.stderr.strip())
        if code != "unreachable":
            raise last
        # a timed-out join keeps trying in the background: stop it before trying the next manager
        ctx.docker(["swarm", "leave", "--force"])
    raise last


def cmd_init(ctx: Context, advertise: str | None) -> dict[str, Any]:
    manager_secret = ctx.need("AUTOJOIN_MANAGER_SECRET_ID")
    worker_secret = ctx.need("AUTOJOIN_WORKER_SECRET_ID")
    addr = ctx.advertise_addr(advertise)
    _checked(ctx, ["swarm", "init", "--advertise-addr", addr], SWARM_ERRORS)
    sm = ctx.session.client("secretsmanager")
    store_token(sm, manager_secret, join_token(ctx, "manager"))
    store_token(sm, worker_secret, join_token(ctx, "worker"))
    return {"node_id": swarm_info(ctx)["node_id"]}


def cmd_rotate(ctx: Context, role: str, version_id: str) -> dict[str, Any]:
    secret_id = ctx.secret_id(role)
    sm = ctx.session.client("secretsmanager")
    if pending_token(sm, secret_id, version_id) is not None:
        # a retried step: version_id was already rotated and stored (Secrets Manager would refuse a second
        # value for it). Whether the cluster still accepts it is check-token's question (testSecret).
        return {"rotated": False, "already": True}
    store_token(sm, secret_id, join_token(ctx, role, rotate=True), version_id)
    return {"rotated": True}


def cmd_check_token(ctx: Context, role: str, version_id: str) -> dict[str, Any]:
    pending = pending_token(ctx.session.client("secretsmanager"), ctx.secret_id(role), version_id)
    current = join_token(ctx, role)
    return {"matches": pending is not None and hmac.compare_digest(pending, current)}


def cmd_leave(ctx: Context, force: bool) -> dict[str, Any]:
    proc = ctx.docker(["swarm", "leave", *(["--force"] if force else [])])
    if proc.returncode == 0:
        return {"left": True}
    code = classify(proc.stderr, SWARM_ERRORS)
    if code == "not_in_swarm":
        return {"left": False}
    raise AgentError(code, proc.stderr.strip())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise AgentError("usage", message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="autojoin-node", add_help=False)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    j = sub.add_parser("join", add_help=False)
    j.add_argument("--role", required=True, choices=ROLES)
    j.add_argument("--advertise-addr")
    i = sub.add_parser("init", add_help=False)
    i.add_argument("--advertise-addr")
    for name in ("rotate", "check-token"):
        r = sub.add_parser(name, add_help=False)
        r.add_argument("--role", required=True, choices=ROLES)
        r.add_argument("--version-id", required=True)
    lv = sub.add_parser("leave", add_help=False)
    lv.add_argument("--force", action="store_true")
    sub.add_parser("info", add_help=False)
    return p


def run(argv: Sequence[str], env: Mapping[str, str], session: Any = None) -> dict[str, Any]:
    """Run one command; returns the result object or raises AgentError."""
    args = parser().parse_args(list(argv))
    ctx = Context(env, session)
    if args.command == "join":
        return cmd_join(ctx, args.role, args.advertise_addr)
    if args.command == "init":
        return cmd_init(ctx, args.advertise_addr)
    if args.command == "rotate":
        return cmd_rotate(ctx, args.role, args.version_id)
    if args.command == "check-token":
        return cmd_check_token(ctx, args.role, args.version_id)
    if args.command == "leave":
        return cmd_leave(ctx, args.force)
    return swarm_info(ctx)


def main(
    argv: Sequence[str], env: Mapping[str, str], session: Any = None, *, out: TextIO | None = None
) -> int:
    """Run one command and print one JSON line (to ``out``, default stdout). 0: ok, 1: error, 2: usage."""
    try:
        result = run(argv, env, session)
        status = 0
    except AgentError as exc:
        result = {"error": exc.code, "detail": exc.detail}
        status = 2 if exc.code == "usage" else 1
    except Exception as exc:  # AWS or anything else: report, never a traceback with data in it
        code = aws_error_code(exc)
        result = {
            "error": "aws" if code else "failed",
            "detail": redact(f"{type(exc).__name__}: {code or exc}"),
        }
        status = 1
    stream = out if out is not None else sys.stdout
    stream.write(json.dumps(result, sort_keys=True) + "\n")
    stream.flush()
    return status


def load_env_file(path: str = ENV_FILE) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                line = raw.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, _, value = line.partition("=")
                    out[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    except FileNotFoundError:
        pass
    return out


if __name__ == "__main__":  # pragma: no cover - exercised as a subprocess
    sys.exit(main(sys.argv[1:], {**load_env_file(), **os.environ}))
