"""The node agent without a lab: moto for DynamoDB / Secrets Manager / STS, a fake docker CLI.

The fake replays docker 20.10's real messages (tests/swarm/captured/); tests/swarm/ runs the agent against
real daemons.
"""

from __future__ import annotations

import io
import json
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from autojoin.node import agent

CAPTURED = json.loads((Path(__file__).parents[2] / "swarm" / "captured" / "docker-20.10.json").read_text())
TOKEN_M = "SWMTKN-1-" + "m" * 50 + "-" + "1" * 25
TOKEN_W = "SWMTKN-1-" + "m" * 50 + "-" + "2" * 25
TOKEN_W2 = "SWMTKN-1-" + "m" * 50 + "-" + "3" * 25
UUID = "55555555-5555-5555-5555-555555555555"
PRINCIPAL = "AROAEXAMPLE:i-0123456789abcdef0"
ENV = {
    "AUTOJOIN_HANDOFF_TABLE": "handoff",
    "AUTOJOIN_MANAGER_SECRET_ID": "mgr",
    "AUTOJOIN_WORKER_SECRET_ID": "wrk",
    "AUTOJOIN_PRINCIPAL": PRINCIPAL,
    "AUTOJOIN_ADVERTISE_ADDR": "10.0.0.9",
    "AWS_DEFAULT_REGION": "us-east-1",
}
INFO_ACTIVE = '{"NodeID":"node9","LocalNodeState":"active","ControlAvailable":true}\n'


def proc(code: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["docker"], code, out, err)


def captured(name: str) -> subprocess.CompletedProcess[str]:
    c = CAPTURED[name]
    return proc(c["exit_code"], c["stdout"], c["stderr"])


Reply = subprocess.CompletedProcess[str] | Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


class FakeDocker:
    """Answers docker argv by longest matching prefix; records every call."""

    def __init__(self) -> None:
        self.rules: dict[tuple[str, ...], Reply] = {}
        self.calls: list[tuple[str, ...]] = []
        self.hosts: list[str | None] = []

    def on(self, *prefix_and_reply: Any) -> FakeDocker:
        *prefix, reply = prefix_and_reply
        self.rules[tuple(prefix)] = reply
        return self

    def __call__(
        self, argv: Sequence[str], docker_host: str | None = None, input: str | None = None, **_: Any
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(tuple(argv))
        self.hosts.append(docker_host)
        best = max((p for p in self.rules if tuple(argv[: len(p)]) == p), key=len, default=None)
        if best is None:
            raise AssertionError(f"unexpected docker {argv}")
        reply = self.rules[best]
        return reply(argv) if callable(reply) else reply


EngineReply = tuple[int, Any] | Callable[[Any], tuple[int, Any]]


class FakeEngine:
    """A Docker Engine API on a real unix socket (http.server): answers by method and path prefix,
    records (method, path, decoded JSON body) of every request."""

    def __init__(self, path: str) -> None:
        self.rules: dict[tuple[str, str], EngineReply] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.last_path = ""
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                engine.calls.append((self.command, self.path.partition("?")[0], body))
                engine.last_path = self.path
                best = max(
                    (k for k in engine.rules if k[0] == self.command and self.path.startswith(k[1])),
                    key=lambda k: len(k[1]),
                    default=None,
                )
                status, value = (500, {"message": f"unexpected {self.command} {self.path}"})
                if best is not None:
                    reply = engine.rules[best]
                    status, value = reply(body) if callable(reply) else reply
                out = b"" if value is None else json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if out:  # (writing b"" to a client that already read its empty answer: broken pipe)
                    self.wfile.write(out)

            do_GET = do_POST = _serve

            def address_string(self) -> str:
                return "unix"

            def log_message(self, *_: Any) -> None:
                pass

        self.server = socketserver.ThreadingUnixStreamServer(path, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def on(self, method: str, path: str, reply: EngineReply) -> FakeEngine:
        self.rules[(method, path)] = reply
        return self


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEngine]:
    path = str(tmp_path / "docker.sock")
    fake_engine = FakeEngine(path)
    monkeypatch.setitem(ENV, "DOCKER_HOST", f"unix://{path}")
    try:
        yield fake_engine
    finally:
        fake_engine.server.shutdown()
        fake_engine.server.server_close()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("dynamodb").create_table(
            TableName="handoff",
            KeySchema=[{"AttributeName": "principal", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "principal", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sm = session.client("secretsmanager")
        sm.create_secret(Name="mgr")
        sm.create_secret(Name="wrk")
        yield session


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    f = FakeDocker()
    monkeypatch.setattr(agent, "docker", f)
    return f


def offer(
    session: boto3.Session, role: str = "worker", managers: Sequence[str] = ("10.0.0.1:2377",), **kw: Any
) -> None:
    item = {
        "principal": {"S": kw.get("principal", PRINCIPAL)},
        "cluster": {"S": "c1"},
        "role": {"S": role},
        "token": {"S": kw.get("token", TOKEN_W)},
        "managers": {"L": [{"S": m} for m in managers]},
        "expires_at": {"N": str(kw.get("expires_at", int(time.time()) + 600))},
    }
    session.client("dynamodb").put_item(TableName="handoff", Item=item)


def run(
    argv: Sequence[str], session: Any, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    out = io.StringIO()
    code = agent.main(argv, {**ENV, **(env or {})}, session, out=out)
    text = out.getvalue()
    assert text.count("\n") == 1, "exactly one JSON line"
    return code, json.loads(text), text


# --- take_ticket / store_token -------------------------------------------------------------------------


def test_take_ticket_is_read_once_and_ignores_expired_rows(aws: boto3.Session) -> None:
    db = aws.client("dynamodb")
    offer(aws, managers=["10.0.0.1:2377", "10.0.0.2:2377"])
    ticket = agent.take_ticket(db, "handoff", PRINCIPAL)
    assert ticket == {
        "cluster": "c1",
        "role": "worker",
        "token": TOKEN_W,
        "managers": ["10.0.0.1:2377", "10.0.0.2:2377"],
    }
    assert agent.take_ticket(db, "handoff", PRINCIPAL) is None
    offer(aws, expires_at=1000)
    assert agent.take_ticket(db, "handoff", PRINCIPAL) is None
    assert "Item" not in db.get_item(TableName="handoff", Key={"principal": {"S": PRINCIPAL}})
    offer(aws, expires_at=2000)
    assert agent.take_ticket(db, "handoff", PRINCIPAL, now=1999.0) is not None


def test_take_ticket_of_a_malformed_row_is_none(aws: boto3.Session) -> None:
    db = aws.client("dynamodb")
    db.put_item(TableName="handoff", Item={"principal": {"S": PRINCIPAL}, "role": {"S": "worker"}})
    assert agent.take_ticket(db, "handoff", PRINCIPAL) is None
    db.put_item(
        TableName="handoff",
        Item={
            "principal": {"S": PRINCIPAL},
            "cluster": {"S": "c"},
            "role": {"S": "worker"},
            "token": {"S": "t"},
        },
    )
    assert agent.take_ticket(db, "handoff", PRINCIPAL) == {
        "cluster": "c",
        "role": "worker",
        "token": "t",
        "managers": [],
    }


def test_store_token_current_and_pending(aws: boto3.Session) -> None:
    sm = aws.client("secretsmanager")
    agent.store_token(sm, "wrk", TOKEN_W)
    assert sm.get_secret_value(SecretId="wrk")["SecretString"] == TOKEN_W
    agent.store_token(sm, "wrk", TOKEN_W2, "11111111-1111-1111-1111-111111111111")
    assert sm.get_secret_value(SecretId="wrk")["SecretString"] == TOKEN_W  # AWSCURRENT unchanged
    assert agent.pending_token(sm, "wrk", "11111111-1111-1111-1111-111111111111") == TOKEN_W2
    assert agent.pending_token(sm, "wrk", "22222222-2222-2222-2222-222222222222") is None
    assert agent.pending_token(sm, "no-such-secret", "22222222-2222-2222-2222-222222222222") is None


def test_pending_token_propagates_other_errors() -> None:
    class Broken:
        def get_secret_value(self, **_: Any) -> dict[str, Any]:
            raise RuntimeError("boom")

    class Binary:
        def get_secret_value(self, **_: Any) -> dict[str, Any]:
            return {"SecretBinary": b"x"}

    with pytest.raises(RuntimeError):
        agent.pending_token(Broken(), "s", "v")
    assert agent.pending_token(Binary(), "s", "v") is None


# --- join (Docker Engine API over the unix socket) --------------------------------------------------


def api_error(name: str) -> tuple[int, dict[str, str]]:
    """The Engine API's answer behind a captured CLI error (the CLI prints the API's message)."""
    message = CAPTURED[name]["stderr"].removeprefix("Error response from daemon: ").strip()
    return 503, {"message": message}


def test_join_goes_through_the_api_with_the_token_in_the_body_only(
    aws: boto3.Session, fake: FakeDocker, engine: FakeEngine
) -> None:
    offer(aws)
    engine.on("POST", "/swarm/join", (200, None))
    fake.on("info", proc(0, INFO_ACTIVE))
    code, result, text = run(["join", "--role", "worker"], aws)
    assert (code, result) == (0, {"node_id": "node9", "manager": "10.0.0.1:2377"})
    assert "SWMTKN" not in text
    assert engine.calls == [
        (
            "POST",
            "/swarm/join",
            {
                "ListenAddr": "0.0.0.0:2377",
                "AdvertiseAddr": "10.0.0.9",
                "RemoteAddrs": ["10.0.0.1:2377"],
                "JoinToken": TOKEN_W,
            },
        )
    ]
    assert not any("SWMTKN" in arg for call in fake.calls for arg in call)  # no token on any argv
    assert run(["join", "--role", "worker"], aws)[1]["error"] == "no_ticket"  # read-once


def test_join_tries_each_manager_and_stops_a_timed_out_attempt(
    aws: boto3.Session, fake: FakeDocker, engine: FakeEngine
) -> None:
    offer(aws, managers=["10.0.0.1:2377", "10.0.0.2:2377"])
    engine.on(
        "POST",
        "/swarm/join",
        lambda body: (
            api_error("join_unreachable") if body["RemoteAddrs"] == ["10.0.0.1:2377"] else (200, None)
        ),
    )
    fake.on("swarm", "leave", captured("leave_worker"))
    fake.on("info", proc(0, INFO_ACTIVE))
    code, result, _ = run(["join", "--role", "worker"], aws)
    assert (code, result["manager"]) == (0, "10.0.0.2:2377")
    assert [c[2]["RemoteAddrs"] for c in engine.calls] == [["10.0.0.1:2377"], ["10.0.0.2:2377"]]
    assert fake.calls == [("swarm", "leave", "--force"), ("info", "--format", "{{json .Swarm}}")]


def test_join_with_no_manager_answering_is_unreachable(
    aws: boto3.Session, fake: FakeDocker, engine: FakeEngine
) -> None:
    offer(aws, managers=["10.0.0.1:2377", "10.0.0.2:2377"])
    engine.on("POST", "/swarm/join", (500, {"message": "rpc error: code = Unavailable desc = x"}))
    fake.on("swarm", "leave", proc(0))
    code, result, _ = run(["join", "--role", "worker"], aws)
    assert (code, result["error"]) == (1, "unreachable") and len(engine.calls) == 2


def test_join_with_no_daemon_is_daemon_unreachable(aws: boto3.Session, tmp_path: Path) -> None:
    offer(aws)
    _, result, _ = run(["join", "--role", "worker"], aws, {"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert result["error"] == "daemon_unreachable"
    offer(aws)
    _, result, _ = run(["join", "--role", "worker"], aws, {"DOCKER_HOST": "tcp://10.0.0.1:2375"})
    assert result["error"] == "config"  # the token never goes to a remote daemon


@pytest.mark.parametrize(
    ("capture", "code"),
    [
        ("join_rotated", "invalid_join_token"),
        ("join_malformed", "invalid_join_token"),
        ("join_already", "already_in_swarm"),
    ],
)
def test_join_refusals_are_reported_without_the_token(
    aws: boto3.Session, engine: FakeEngine, capture: str, code: str
) -> None:
    offer(aws, managers=["10.0.0.1:2377", "10.0.0.2:2377"])
    engine.on("POST", "/swarm/join", api_error(capture))
    status, result, text = run(["join", "--role", "worker"], aws)
    assert (status, result["error"]) == (1, code)
    assert len(engine.calls) == 1  # a refusal is final: no second manager
    assert "SWMTKN" not in text


def test_a_token_echoed_in_an_error_is_redacted(aws: boto3.Session, engine: FakeEngine) -> None:
    offer(aws)
    engine.on("POST", "/swarm/join", (500, {"message": f"weird {TOKEN_W}"}))
    _, result, text = run(["join", "--role", "worker"], aws)
    assert result["error"] == "failed" and TOKEN_W not in text and "SWMTKN-<redacted>" in text


def test_join_checks_role_and_managers_and_config(aws: boto3.Session, engine: FakeEngine) -> None:
    offer(aws, role="manager")
    assert run(["join", "--role", "worker"], aws)[1]["error"] == "wrong_role"
    offer(aws, managers=[])
    assert run(["join", "--role", "worker"], aws)[1]["error"] == "no_managers"
    env = {k: v for k, v in ENV.items() if k != "AUTOJOIN_HANDOFF_TABLE"}
    out = io.StringIO()
    assert agent.main(["join", "--role", "worker"], env, aws, out=out) == 1
    assert json.loads(out.getvalue()) == {"error": "config", "detail": "AUTOJOIN_HANDOFF_TABLE is not set"}
    assert engine.calls == []


def test_join_without_a_principal_override_uses_the_callers_user_id(
    aws: boto3.Session, fake: FakeDocker, engine: FakeEngine
) -> None:
    user_id = aws.client("sts").get_caller_identity()["UserId"]
    offer(aws, principal=user_id)
    engine.on("POST", "/swarm/join", (200, None))
    fake.on("info", proc(0, INFO_ACTIVE))
    env = {k: v for k, v in ENV.items() if k != "AUTOJOIN_PRINCIPAL"}
    out = io.StringIO()
    assert agent.main(["join", "--role", "worker"], env, aws, out=out) == 0


def test_advertise_address_falls_back_to_imds(
    aws: boto3.Session, fake: FakeDocker, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    offer(aws)
    engine.on("POST", "/swarm/join", (200, None))
    fake.on("info", proc(0, INFO_ACTIVE))
    monkeypatch.setattr(agent, "imds_local_ipv4", lambda: "10.1.2.3")
    assert run(["join", "--role", "worker"], aws, {"AUTOJOIN_ADVERTISE_ADDR": ""})[0] == 0
    assert engine.calls[0][2]["AdvertiseAddr"] == "10.1.2.3"

    def no_imds() -> str:
        raise OSError("no route")

    monkeypatch.setattr(agent, "imds_local_ipv4", no_imds)
    offer(aws)
    _, result, _ = run(["join", "--role", "worker"], aws, {"AUTOJOIN_ADVERTISE_ADDR": ""})
    assert result["error"] == "config" and "IMDS" in result["detail"]


def test_imds_v2_token_then_local_ipv4(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            seen.append(("PUT", self.path, self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")))
            self._reply(b"imds-token")

        def do_GET(self) -> None:
            seen.append(("GET", self.path, self.headers.get("X-aws-ec2-metadata-token")))
            self._reply(b"10.9.8.7\n")

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(agent, "IMDS", f"http://127.0.0.1:{server.server_port}")
        assert agent.imds_local_ipv4() == "10.9.8.7"
    finally:
        server.shutdown()
    assert seen == [("PUT", "/latest/api/token", "60"), ("GET", "/latest/meta-data/local-ipv4", "imds-token")]


# --- init / rotate / check-token / sync-token ---------------------------------------------------------


def swarm_object(worker: str = TOKEN_W, manager: str = TOKEN_M, index: int = 10) -> dict[str, Any]:
    return {
        "JoinTokens": {"Worker": worker, "Manager": manager},
        "Version": {"Index": index},
        "Spec": {"Name": "default"},
    }


class SwarmState:
    """A manager's Engine API for tokens: GET /swarm, POST /swarm/update?rotate...Token=true."""

    def __init__(self, engine: FakeEngine) -> None:
        self.tokens = {"Worker": TOKEN_W, "Manager": TOKEN_M}
        self.index = 10
        self.rotations = 0
        engine.on("GET", "/swarm", lambda _body: (200, swarm_object(**self._lower(), index=self.index)))
        engine.on("POST", "/swarm/update", self.update)
        self.engine = engine

    def _lower(self) -> dict[str, str]:
        return {"worker": self.tokens["Worker"], "manager": self.tokens["Manager"]}

    def update(self, body: Any) -> tuple[int, Any]:
        query = self.engine.last_path.partition("?")[2]
        if f"version={self.index}" not in query:
            return 500, {"message": "rpc error: code = Unknown desc = update out of sequence"}
        for role in ("Worker", "Manager"):
            if f"rotate{role}Token=true" in query:
                self.rotations += 1
                self.tokens[role] = f"SWMTKN-1-{'m' * 50}-{self.rotations:025d}"
        self.index += 1
        return 200, None


def test_init_stores_both_role_tokens(aws: boto3.Session, fake: FakeDocker, engine: FakeEngine) -> None:
    fake.on("swarm", "init", proc(0, "Swarm initialized: current node (node9) is now a manager.\n"))
    fake.on("info", proc(0, INFO_ACTIVE))
    SwarmState(engine)
    code, result, text = run(["init", "--advertise-addr", "10.0.0.1"], aws)
    assert (code, result) == (0, {"node_id": "node9"}) and "SWMTKN" not in text
    sm = aws.client("secretsmanager")
    assert sm.get_secret_value(SecretId="mgr")["SecretString"] == TOKEN_M
    assert sm.get_secret_value(SecretId="wrk")["SecretString"] == TOKEN_W
    assert fake.calls[0] == ("swarm", "init", "--advertise-addr", "10.0.0.1")


def test_init_of_a_node_already_in_a_swarm(aws: boto3.Session, fake: FakeDocker) -> None:
    fake.on("swarm", "init", captured("init_again"))
    assert run(["init"], aws)[1]["error"] == "already_in_swarm"
    assert run(["init"], aws, {"AUTOJOIN_WORKER_SECRET_ID": ""})[1]["error"] == "config"


def test_a_swarm_that_reports_no_token_fails(
    aws: boto3.Session, fake: FakeDocker, engine: FakeEngine
) -> None:
    fake.on("swarm", "init", proc(0))
    engine.on("GET", "/swarm", (200, {"JoinTokens": {}}))
    assert run(["init"], aws)[1] == {"error": "failed", "detail": "the swarm reported no join token"}


def test_rotate_stores_the_new_token_as_pending_and_a_retry_is_a_no_op(
    aws: boto3.Session, engine: FakeEngine
) -> None:
    version = "33333333-3333-3333-3333-333333333333"
    sm = aws.client("secretsmanager")
    agent.store_token(sm, "wrk", TOKEN_W)
    swarm = SwarmState(engine)
    code, result, text = run(["rotate", "--role", "worker", "--version-id", version], aws)
    assert (code, result) == (0, {"rotated": True}) and "SWMTKN" not in text
    new = swarm.tokens["Worker"]
    assert new != TOKEN_W and agent.pending_token(sm, "wrk", version) == new
    assert run(["rotate", "--role", "worker", "--version-id", version], aws)[1] == {
        "rotated": False,
        "already": True,
        "matches": True,
    }
    assert run(["check-token", "--role", "worker", "--version-id", version], aws)[1] == {"matches": True}
    swarm.tokens["Worker"] = TOKEN_W2  # rotated again since, by someone else
    assert run(["check-token", "--role", "worker", "--version-id", version], aws)[1] == {"matches": False}
    assert run(["rotate", "--role", "worker", "--version-id", version], aws)[1]["matches"] is False
    assert agent.pending_token(sm, "wrk", version) == new
    assert swarm.rotations == 1
    other = "44444444-4444-4444-4444-444444444444"
    assert run(["check-token", "--role", "manager", "--version-id", other], aws)[1] == {"matches": False}


def test_rotate_after_an_earlier_attempt_rotated_stores_what_the_swarm_holds(
    aws: boto3.Session, engine: FakeEngine
) -> None:
    version = "33333333-3333-3333-3333-333333333333"
    sm = aws.client("secretsmanager")
    swarm = SwarmState(engine)
    nonce = "00" * 16
    mac_of_current = agent.token_mac(nonce, TOKEN_W)
    swarm.tokens["Worker"] = TOKEN_W2  # an earlier attempt rotated; its put never landed
    argv = ["rotate", "--role", "worker", "--version-id", version, "--nonce", nonce]
    code, result, _ = run([*argv, "--current-mac", mac_of_current], aws)
    assert (code, result) == (0, {"rotated": False, "stored": True})
    assert swarm.rotations == 0 and agent.pending_token(sm, "wrk", version) == TOKEN_W2
    # the swarm still holds AWSCURRENT: this is a first attempt, so it rotates
    other = "44444444-4444-4444-4444-444444444444"
    assert run(["rotate", "--role", "worker", "--version-id", other, "--nonce", nonce,
                "--current-mac", agent.token_mac(nonce, TOKEN_W2)], aws)[1] == {"rotated": True}  # fmt: skip
    assert swarm.rotations == 1


def test_the_put_after_a_rotation_is_retried(
    aws: boto3.Session, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = "33333333-3333-3333-3333-333333333333"
    swarm = SwarmState(engine)
    monkeypatch.setattr(agent, "PUT_RETRY_DELAYS", (0.0, 0.0))
    sm = aws.client("secretsmanager")
    real = sm.put_secret_value
    failures = [
        ClientError({"Error": {"Code": "InternalServiceError", "Message": "x"}}, "PutSecretValue")
    ] * 2

    def flaky(**kw: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(**kw)

    class Session:
        def client(self, name: str, **_: Any) -> Any:
            # boto3's stubs type client() per literal service name; this stand-in serves any name.
            client: Any = aws.client(name)  # type: ignore[call-overload]
            if name == "secretsmanager":
                client.put_secret_value = flaky
            return client

    code, result, _ = run(["rotate", "--role", "worker", "--version-id", version], Session())
    assert (code, result) == (0, {"rotated": True})
    assert agent.pending_token(sm, "wrk", version) == swarm.tokens["Worker"]
    failures.extend([ClientError({"Error": {"Code": "InternalServiceError"}}, "PutSecretValue")] * 9)
    code, result, _ = run(["sync-token", "--role", "worker", "--version-id", UUID], Session())
    assert (code, result["error"]) == (1, "store_failed")


def test_sync_token_stores_the_swarms_token_as_current(aws: boto3.Session, engine: FakeEngine) -> None:
    sm = aws.client("secretsmanager")
    agent.store_token(sm, "wrk", TOKEN_W)
    swarm = SwarmState(engine)
    swarm.tokens["Worker"] = TOKEN_W2
    assert run(["sync-token", "--role", "worker", "--version-id", UUID], aws)[1] == {"stored": True}
    assert agent.pending_token(sm, "wrk", UUID) == TOKEN_W2
    assert run(["sync-token", "--role", "worker", "--version-id", UUID], aws)[1] == {"stored": True}  # again


def test_rotate_on_a_worker_or_without_leader(aws: boto3.Session, engine: FakeEngine) -> None:
    engine.on("GET", "/swarm", api_error("node_ls_from_worker"))
    assert run(["rotate", "--role", "manager", "--version-id", UUID], aws)[1]["error"] == "not_a_manager"
    engine.on("GET", "/swarm", api_error("jt_no_leader"))
    assert run(["check-token", "--role", "worker", "--version-id", UUID], aws)[1]["error"] == "no_leader"


# --- leave / info / usage / failures ------------------------------------------------------------------


def test_leave(aws: boto3.Session, fake: FakeDocker) -> None:
    fake.on("swarm", "leave", captured("leave_worker"))
    assert run(["leave"], aws)[1] == {"left": True}
    assert run(["leave", "--force"], aws)[1] == {"left": True}
    assert fake.calls == [("swarm", "leave"), ("swarm", "leave", "--force")]
    fake.on("swarm", "leave", captured("leave_again"))
    assert run(["leave"], aws)[1] == {"left": False}
    fake.on("swarm", "leave", captured("leave_manager_noforce"))
    assert run(["leave"], aws)[1]["error"] == "is_manager"


def test_info(fake: FakeDocker) -> None:
    fake.on("info", captured("info_not_in_swarm"))
    assert run(["info"], None)[1] == {"is_manager": False, "node_id": None, "state": "inactive"}
    fake.on("info", captured("info_no_leader"))
    assert run(["info"], None)[1]["is_manager"] is True
    fake.on("info", proc(0, "not json"))
    assert run(["info"], None)[1]["error"] == "failed"
    fake.on("info", proc(0, "[]"))
    assert run(["info"], None)[1]["error"] == "failed"
    fake.on(
        "info", proc(1, "", "Cannot connect to the Docker daemon at unix:///x. Is the docker daemon running?")
    )
    assert run(["info"], None)[1]["error"] == "daemon_unreachable"


@pytest.mark.parametrize(
    "argv", [[], ["bogus"], ["join"], ["join", "--role", "boss"], ["rotate", "--role", "worker"]]
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    code, result, _ = run(argv, None)
    assert (code, result["error"]) == (2, "usage")


def test_unexpected_exceptions_are_one_json_line(monkeypatch: pytest.MonkeyPatch, aws: boto3.Session) -> None:
    def throttled(*_: Any, **__: Any) -> Any:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": TOKEN_W}}, "DeleteItem")

    monkeypatch.setattr(agent, "take_ticket", throttled)
    code, result, text = run(["join", "--role", "worker"], aws)
    assert (code, result["error"]) == (1, "aws") and "ThrottlingException" in result["detail"]
    assert "SWMTKN" not in text

    def broken(*_: Any, **__: Any) -> Any:
        raise KeyError("x")

    monkeypatch.setattr(agent, "take_ticket", broken)
    assert run(["join", "--role", "worker"], aws)[1]["error"] == "failed"


def test_main_default_output_is_stdout_and_session_is_built_lazily(
    fake: FakeDocker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.on("info", captured("info_not_in_swarm"))
    assert agent.main(["info"], {}) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "inactive"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "t")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "t")
    ctx = agent.Context({"AWS_REGION": "eu-west-1"}, None)
    assert ctx.session.region_name == "eu-west-1"
    assert ctx.session is ctx.session


# --- docker(), env file, helpers ------------------------------------------------------------------------


def test_docker_runs_the_cli_and_never_raises(tmp_path: Path) -> None:
    cli = tmp_path / "docker"
    cli.write_text('#!/bin/sh\necho "host=$DOCKER_HOST args=$*"; cat >&2\n')
    cli.chmod(0o755)
    done = agent.docker(["node", "ls"], "unix:///s.sock", input="in", cli=str(cli))
    assert (done.returncode, done.stdout, done.stderr) == (0, "host=unix:///s.sock args=node ls\n", "in")
    assert agent.docker(["x"], cli=str(tmp_path / "missing")).returncode == 127
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    timed_out = agent.docker(["x"], cli=str(slow), timeout=0.2)
    assert (
        timed_out.returncode == 124 and agent.classify(timed_out.stderr, agent.JOIN_ERRORS) == "unreachable"
    )


def test_load_env_file(tmp_path: Path) -> None:
    f = tmp_path / "agent.env"
    f.write_text("# comment\nexport AUTOJOIN_HANDOFF_TABLE=ho\nAUTOJOIN_PRINCIPAL='p:i-1'\n\nnoise\n")
    assert agent.load_env_file(str(f)) == {"AUTOJOIN_HANDOFF_TABLE": "ho", "AUTOJOIN_PRINCIPAL": "p:i-1"}
    assert agent.load_env_file(str(tmp_path / "none")) == {}


def test_the_agent_is_one_shippable_file() -> None:
    source = Path(agent.__file__).read_text()
    imports = [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [m for m in imports if m.startswith("autojoin")]
    assert set(imports) <= {
        "__future__", "argparse", "hashlib", "hmac", "http.client", "json", "os", "re", "socket",
        "subprocess", "sys", "time", "urllib.parse", "urllib.request", "collections.abc", "typing",
    }  # fmt: skip
