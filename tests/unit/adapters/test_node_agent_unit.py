"""The node agent without a lab: moto for DynamoDB / Secrets Manager / STS, a fake docker CLI.

The fake replays docker 20.10's real messages (tests/swarm/captured/); tests/swarm/ runs the agent against
real daemons.
"""

from __future__ import annotations

import io
import json
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


# --- join --------------------------------------------------------------------------------------------


def test_join_takes_the_ticket_joins_and_prints_only_the_node_id(
    aws: boto3.Session, fake: FakeDocker
) -> None:
    offer(aws)
    fake.on("swarm", "join", proc(0, "This node joined a swarm as a worker.\n"))
    fake.on("info", proc(0, INFO_ACTIVE))
    code, result, text = run(["join", "--role", "worker"], aws, {"DOCKER_HOST": "unix:///x.sock"})
    assert (code, result) == (0, {"node_id": "node9", "manager": "10.0.0.1:2377"})
    assert "SWMTKN" not in text
    assert fake.calls[0] == (
        "swarm",
        "join",
        "--token",
        TOKEN_W,
        "--advertise-addr",
        "10.0.0.9",
        "10.0.0.1:2377",
    )
    assert fake.hosts[0] == "unix:///x.sock"
    assert run(["join", "--role", "worker"], aws)[1]["error"] == "no_ticket"  # read-once


def test_join_tries_each_manager_and_stops_a_timed_out_attempt(aws: boto3.Session, fake: FakeDocker) -> None:
    offer(aws, managers=["10.0.0.1:2377", "10.0.0.2:2377"])
    fake.on(
        "swarm", "join", lambda argv: captured("join_unreachable") if argv[-1] == "10.0.0.1:2377" else proc(0)
    )
    fake.on("swarm", "leave", captured("leave_worker"))
    fake.on("info", proc(0, INFO_ACTIVE))
    code, result, _ = run(["join", "--role", "worker"], aws)
    assert (code, result["manager"]) == (0, "10.0.0.2:2377")
    assert [c[:2] for c in fake.calls] == [
        ("swarm", "join"),
        ("swarm", "leave"),
        ("swarm", "join"),
        ("info", "--format"),
    ]
    assert fake.calls[1] == ("swarm", "leave", "--force")


def test_join_with_no_manager_answering_is_unreachable(aws: boto3.Session, fake: FakeDocker) -> None:
    offer(aws, managers=["10.0.0.1:2377", "10.0.0.2:2377"])
    fake.on(
        "swarm", "join", proc(1, "", "Error response from daemon: rpc error: code = Unavailable desc = x")
    )
    fake.on("swarm", "leave", proc(0))
    code, result, _ = run(["join", "--role", "worker"], aws)
    assert (code, result["error"]) == (1, "unreachable")


@pytest.mark.parametrize(
    ("capture", "code"),
    [
        ("join_rotated", "invalid_join_token"),
        ("join_malformed", "invalid_join_token"),
        ("join_already", "already_in_swarm"),
    ],
)
def test_join_refusals_are_reported_without_the_token(
    aws: boto3.Session, fake: FakeDocker, capture: str, code: str
) -> None:
    offer(aws, managers=["10.0.0.1:2377", "10.0.0.2:2377"])
    fake.on("swarm", "join", captured(capture))
    status, result, text = run(["join", "--role", "worker"], aws)
    assert (status, result["error"]) == (1, code)
    assert len(fake.calls) == 1  # a refusal is final: no second manager
    assert "SWMTKN" not in text


def test_a_token_echoed_in_an_error_is_redacted(aws: boto3.Session, fake: FakeDocker) -> None:
    offer(aws)
    fake.on("swarm", "join", proc(1, "", f"Error response from daemon: weird {TOKEN_W}"))
    _, result, text = run(["join", "--role", "worker"], aws)
    assert result["error"] == "failed" and TOKEN_W not in text and "SWMTKN-<redacted>" in text


def test_join_checks_role_and_managers_and_config(aws: boto3.Session, fake: FakeDocker) -> None:
    offer(aws, role="manager")
    assert run(["join", "--role", "worker"], aws)[1]["error"] == "wrong_role"
    offer(aws, managers=[])
    assert run(["join", "--role", "worker"], aws)[1]["error"] == "no_managers"
    env = {k: v for k, v in ENV.items() if k != "AUTOJOIN_HANDOFF_TABLE"}
    out = io.StringIO()
    assert agent.main(["join", "--role", "worker"], env, aws, out=out) == 1
    assert json.loads(out.getvalue()) == {"error": "config", "detail": "AUTOJOIN_HANDOFF_TABLE is not set"}
    assert fake.calls == []


def test_join_without_a_principal_override_uses_the_callers_user_id(
    aws: boto3.Session, fake: FakeDocker
) -> None:
    user_id = aws.client("sts").get_caller_identity()["UserId"]
    offer(aws, principal=user_id)
    fake.on("swarm", "join", proc(0))
    fake.on("info", proc(0, INFO_ACTIVE))
    env = {k: v for k, v in ENV.items() if k != "AUTOJOIN_PRINCIPAL"}
    out = io.StringIO()
    assert agent.main(["join", "--role", "worker"], env, aws, out=out) == 0


def test_advertise_address_falls_back_to_imds(
    aws: boto3.Session, fake: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    offer(aws)
    fake.on("swarm", "join", proc(0))
    fake.on("info", proc(0, INFO_ACTIVE))
    monkeypatch.setattr(agent, "imds_local_ipv4", lambda: "10.1.2.3")
    assert run(["join", "--role", "worker"], aws, {"AUTOJOIN_ADVERTISE_ADDR": ""})[0] == 0
    assert "10.1.2.3" in fake.calls[0]

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


# --- init / rotate / check-token ---------------------------------------------------------------------


def test_init_stores_both_role_tokens(aws: boto3.Session, fake: FakeDocker) -> None:
    fake.on("swarm", "init", proc(0, "Swarm initialized: current node (node9) is now a manager.\n"))
    fake.on("swarm", "join-token", "-q", "manager", proc(0, TOKEN_M + "\n"))
    fake.on("swarm", "join-token", "-q", "worker", proc(0, TOKEN_W + "\n"))
    fake.on("info", proc(0, INFO_ACTIVE))
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


def test_join_token_that_is_no_token_fails(aws: boto3.Session, fake: FakeDocker) -> None:
    fake.on("swarm", "init", proc(0))
    fake.on("swarm", "join-token", proc(0, "\n"))
    assert run(["init"], aws)[1] == {"error": "failed", "detail": "docker swarm join-token printed no token"}


def test_rotate_stores_the_new_token_as_pending_and_a_retry_is_a_no_op(
    aws: boto3.Session, fake: FakeDocker
) -> None:
    version = "33333333-3333-3333-3333-333333333333"
    sm = aws.client("secretsmanager")
    agent.store_token(sm, "wrk", TOKEN_W)
    fake.on("swarm", "join-token", "--rotate", proc(0, TOKEN_W2 + "\n"))
    fake.on("swarm", "join-token", "-q", proc(0, TOKEN_W2 + "\n"))
    code, result, text = run(["rotate", "--role", "worker", "--version-id", version], aws)
    assert (code, result) == (0, {"rotated": True}) and "SWMTKN" not in text
    assert agent.pending_token(sm, "wrk", version) == TOKEN_W2
    assert run(["rotate", "--role", "worker", "--version-id", version], aws)[1] == {
        "rotated": False,
        "already": True,
    }
    assert run(["check-token", "--role", "worker", "--version-id", version], aws)[1] == {"matches": True}
    fake.on("swarm", "join-token", "-q", proc(0, TOKEN_M + "\n"))  # rotated again since, by someone else
    assert run(["check-token", "--role", "worker", "--version-id", version], aws)[1] == {"matches": False}
    assert run(["rotate", "--role", "worker", "--version-id", version], aws)[1] == {
        "rotated": False,
        "already": True,
    }
    assert agent.pending_token(sm, "wrk", version) == TOKEN_W2
    assert [c for c in fake.calls if "--rotate" in c] == [("swarm", "join-token", "--rotate", "-q", "worker")]
    other = "44444444-4444-4444-4444-444444444444"
    assert run(["check-token", "--role", "manager", "--version-id", other], aws)[1] == {"matches": False}


def test_rotate_on_a_worker_or_without_leader(aws: boto3.Session, fake: FakeDocker) -> None:
    fake.on("swarm", "join-token", captured("node_ls_from_worker"))
    assert run(["rotate", "--role", "manager", "--version-id", UUID], aws)[1]["error"] == "not_a_manager"
    fake.on("swarm", "join-token", captured("jt_no_leader"))
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
        "__future__", "argparse", "hmac", "json", "os", "re", "subprocess", "sys", "time", "urllib.request",
        "collections.abc", "typing",
    }  # fmt: skip
