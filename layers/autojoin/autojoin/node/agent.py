#!/usr/bin/env python3
"""autojoin-node: the only autojoin code that runs on a cluster instance.

One file, stdlib + boto3 only, so it can be shipped as-is (user data, a baked image, an SSM
document). The control plane runs it on the node (through SSM in production, in-process in the lab):

    autojoin-node join --role worker|manager [--advertise-addr IP]
    autojoin-node init --advertise-addr IP
    autojoin-node rotate --role R --version-id V [--nonce HEX --current-mac HEX]
    autojoin-node check-token --role R --version-id V
    autojoin-node sync-token --role R --version-id V
    autojoin-node leave [--force]
    autojoin-node info

Every command prints exactly ONE JSON line on stdout: a result, or ``{"error": code, "detail": text}``
(exit status 1; 2 for a usage error). A join token is never printed, logged, put in an error or in any
process's command line: it travels from the node's own hand-off row (DynamoDB, read-once) into the
body of a Docker Engine API request (``POST /swarm/join`` over the local unix socket), and from the
Engine API (``GET /swarm``) into Secrets Manager. The docker CLI is used only for commands that carry no
token (``info``, ``swarm init``, ``swarm leave``).

Rotation (docs/token-delivery.md): the swarm is the source of truth. ``rotate`` first reads what the swarm
holds; when the control plane says (``--nonce``/``--current-mac``: an HMAC of AWSCURRENT under a one-off
nonce, never the token) that the swarm no longer holds AWSCURRENT, an earlier attempt already rotated,
so it stores the swarm's token instead of rotating again. Every PutSecretValue is retried.

Environment (also read from /etc/autojoin/agent.env, KEY=VALUE lines, when run as a script):

    AUTOJOIN_HANDOFF_TABLE      hand-off table (join)
    AUTOJOIN_MANAGER_SECRET_ID  manager token secret (init; rotate/check-token for managers)
    AUTOJOIN_WORKER_SECRET_ID   worker token secret (init; rotate/check-token for workers)
    AUTOJOIN_PRINCIPAL          hand-off key override (lab/local only; default: sts UserId)
    AUTOJOIN_ADVERTISE_ADDR     default advertise address (else IMDSv2 local-ipv4)
    AUTOJOIN_DOCKER_CLI         docker CLI to run (default: docker)
    DOCKER_HOST                 daemon to talk to, unix:// only (default: unix:///var/run/docker.sock)
    AWS_REGION / AWS_DEFAULT_REGION

The hand-off item: {"principal": S, "cluster": S, "role": S, "token": S, "managers": L of S
("10.0.0.1:2377"), "expires_at": N (epoch seconds, the table's TTL)}. The principal is the
node's own ``aws:userid`` ("ROLEID:i-0123..."), and IAM lets the node touch only that row.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TextIO

ROLES = ("manager", "worker")
ENV_FILE = "/etc/autojoin/agent.env"
IMDS = "http://169.254.169.254"
DOCKER_TIMEOUT = 120.0
DEFAULT_SOCKET = "/var/run/docker.sock"
SWARM_LISTEN = "0.0.0.0:2377"
PUT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds between PutSecretValue attempts
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
    ("update out of sequence", "out_of_sequence"),
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


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the daemon's unix socket (the Engine API; what the docker CLI itself talks)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def socket_path(docker_host: str | None) -> str:
    """The daemon's unix socket from DOCKER_HOST (``unix:///path``); the Engine API is used only locally."""
    host = docker_host or f"unix://{DEFAULT_SOCKET}"
    if not host.startswith("unix://"):
        raise AgentError("config", "DOCKER_HOST must name a local unix:// socket")
    return host[len("unix://") :]


def engine(
    path: str, method: str, url: str, body: Any = None, *, timeout: float = DOCKER_TIMEOUT
) -> tuple[int, Any]:
    """One Engine API request over the unix socket ``path``: (status, decoded JSON body or None).

    Request bodies may hold a join token, so nothing of the request is ever put in an error."""
    conn = _UnixConnection(path, timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, url, body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
    except TimeoutError as exc:
        raise AgentError("unreachable", "docker API: deadline exceeded") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise AgentError(
            "daemon_unreachable", f"cannot connect to the docker daemon: {type(exc).__name__}"
        ) from exc
    finally:
        conn.close()
    if not raw.strip():
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"message": raw.decode("utf-8", "replace")}


def _api(
    ctx: Context,
    method: str,
    url: str,
    body: Any = None,
    table: Sequence[tuple[str, str]] = (),
    *,
    timeout: float = DOCKER_TIMEOUT,
) -> Any:
    status, value = ctx.engine(method, url, body, timeout=timeout)
    if status >= 400:
        message = str(value.get("message", "")) if isinstance(value, dict) else ""
        raise AgentError(classify(message, table or SWARM_ERRORS), message)
    return value


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


def _swarm(ctx: Context) -> dict[str, Any]:
    value = _api(ctx, "GET", "/swarm")
    if not isinstance(value, dict):
        raise AgentError("failed", "docker API GET /swarm gave no JSON object")
    return value


def _token_of(swarm: Mapping[str, Any], role: str) -> str:
    token = (swarm.get("JoinTokens") or {}).get(role.capitalize())
    if not isinstance(token, str) or not token.startswith("SWMTKN-"):
        raise AgentError("failed", "the swarm reported no join token")
    return token


def join_token(ctx: Context, role: str) -> str:
    """The token the swarm accepts now for ``role`` (Engine API ``GET /swarm``, a manager only)."""
    return _token_of(_swarm(ctx), role)


def rotate_join_token(ctx: Context, role: str, *, attempts: int = 3) -> str:
    """``POST /swarm/update?rotate<Role>Token=true`` at the swarm's current version; the new token.

    The update is conditional on the version read (Swarm refuses an out-of-sequence update), so two
    rotations can never interleave unnoticed."""
    flag = "rotateManagerToken" if role == "manager" else "rotateWorkerToken"
    for attempt in range(attempts):
        swarm = _swarm(ctx)
        before = _token_of(swarm, role)
        version = (swarm.get("Version") or {}).get("Index")
        query = urllib.parse.urlencode({"version": version, flag: "true"})
        try:
            _api(ctx, "POST", f"/swarm/update?{query}", swarm.get("Spec") or {})
        except AgentError as exc:
            if exc.code == "out_of_sequence" and attempt + 1 < attempts:
                continue  # someone changed the swarm between our read and our update: read again
            raise
        after = join_token(ctx, role)
        if after == before:
            raise AgentError("failed", "the swarm kept its join token after a rotation")
        return after
    raise AgentError("out_of_sequence", "the swarm kept changing under the rotation")  # pragma: no cover


def token_mac(nonce_hex: str, token: str) -> str:
    """HMAC-SHA256 of a token under a one-off nonce: lets two sides compare tokens without sending one."""
    try:
        key = bytes.fromhex(nonce_hex)
    except ValueError as exc:
        raise AgentError("usage", "--nonce must be hex") from exc
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


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
    secretsmanager_client: Any,
    secret_id: str,
    token: str,
    version_id: str | None = None,
    *,
    delays: Sequence[float] | None = None,
) -> None:
    """PutSecretValue: AWSPENDING ``version_id`` when given, else a new AWSCURRENT version.

    Retried (``delays``, default PUT_RETRY_DELAYS) on any failure but one: a version that already exists
    with another value (ResourceExistsException) is final — a concurrent attempt stored it first."""
    waits = list(PUT_RETRY_DELAYS if delays is None else delays)
    while True:
        try:
            if version_id:
                secretsmanager_client.put_secret_value(
                    SecretId=secret_id,
                    SecretString=token,
                    ClientRequestToken=version_id,
                    VersionStages=["AWSPENDING"],
                )
            else:
                secretsmanager_client.put_secret_value(SecretId=secret_id, SecretString=token)
            return
        except Exception as exc:  # botocore's errors, without importing botocore
            if aws_error_code(exc) == "ResourceExistsException":
                raise AgentError("store_conflict", "that version already holds another token") from None
            if not waits:
                raise AgentError(
                    "store_failed", f"PutSecretValue failed: {aws_error_code(exc) or type(exc).__name__}"
                ) from None
            time.sleep(waits.pop(0))


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

    def engine(
        self, method: str, url: str, body: Any = None, *, timeout: float = DOCKER_TIMEOUT
    ) -> tuple[int, Any]:
        return engine(socket_path(self.docker_host), method, url, body, timeout=timeout)

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
        request = {
            "ListenAddr": SWARM_LISTEN,
            "AdvertiseAddr": addr,
            "RemoteAddrs": [manager],
            "JoinToken": ticket["token"],  # in the request body only: never on a command line
        }
        try:
            _api(ctx, "POST", "/swarm/join", request, JOIN_ERRORS)
        except AgentError as exc:
            if exc.code != "unreachable":
                raise
            last = exc
            # a timed-out join keeps trying in the background: stop it before trying the next manager
            ctx.docker(["swarm", "leave", "--force"])
            continue
        return {"node_id": swarm_info(ctx)["node_id"], "manager": manager}
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


def cmd_rotate(
    ctx: Context, role: str, version_id: str, nonce: str | None = None, current_mac: str | None = None
) -> dict[str, Any]:
    secret_id = ctx.secret_id(role)
    sm = ctx.session.client("secretsmanager")
    held = join_token(ctx, role)  # what the swarm accepts now: read before anything is changed
    pending = pending_token(sm, secret_id, version_id)
    if pending is not None:
        # a retried step: version_id was already rotated and stored (Secrets Manager would refuse a second
        # value for it). Whether the cluster still accepts it is check-token's question (testSecret).
        return {"rotated": False, "already": True, "matches": hmac.compare_digest(pending, held)}
    if nonce and current_mac and not hmac.compare_digest(token_mac(nonce, held), current_mac):
        # The swarm no longer holds AWSCURRENT: an earlier attempt rotated and never stored (or its
        # outcome was lost). Rotating again would only widen the gap: store what the swarm holds.
        store_token(sm, secret_id, held, version_id)
        return {"rotated": False, "stored": True}
    store_token(sm, secret_id, rotate_join_token(ctx, role), version_id)
    return {"rotated": True}


def cmd_check_token(ctx: Context, role: str, version_id: str) -> dict[str, Any]:
    pending = pending_token(ctx.session.client("secretsmanager"), ctx.secret_id(role), version_id)
    current = join_token(ctx, role)
    return {"matches": pending is not None and hmac.compare_digest(pending, current)}


def cmd_sync_token(ctx: Context, role: str, version_id: str) -> dict[str, Any]:
    """testSecret's repair: store the token the swarm accepts now as AWSPENDING ``version_id`` (a fresh
    version the control plane then makes AWSCURRENT)."""
    store_token(ctx.session.client("secretsmanager"), ctx.secret_id(role), join_token(ctx, role), version_id)
    return {"stored": True}


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
        if name == "rotate":
            r.add_argument("--nonce")
            r.add_argument("--current-mac")
    s = sub.add_parser("sync-token", add_help=False)
    s.add_argument("--role", required=True, choices=ROLES)
    s.add_argument("--version-id", required=True)
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
        return cmd_rotate(ctx, args.role, args.version_id, args.nonce, args.current_mac)
    if args.command == "check-token":
        return cmd_check_token(ctx, args.role, args.version_id)
    if args.command == "sync-token":
        return cmd_sync_token(ctx, args.role, args.version_id)
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
