"""SwarmOrchestrator without a lab: parsing and error mapping on outputs captured from docker 20.10.

The captures (tests/swarm/captured/docker-20.10.json) were taken from a real lab swarm; the runner here is
a scripted fake that replays them. The same adapter runs against a real lab in tests/swarm/.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr

from autojoin.adapters.swarm import orchestrator as orch_module
from autojoin.adapters.swarm.orchestrator import (
    SwarmOrchestrator,
    error_for,
    member_from_inspect,
    parse_agent_output,
    parse_json_lines,
    parse_members,
)
from autojoin.domain.model import Role
from autojoin.errors import (
    AlreadyInSwarm,
    CommandFailed,
    DemotionWouldLoseQuorum,
    InvalidJoinToken,
    LastManager,
    MustDemoteFirst,
    NodeNotDown,
    NodeNotFound,
    NodeNotReady,
    NoLeader,
    NotAManager,
    NoTicket,
    OrchestratorError,
    TransientAwsError,
    Unreachable,
)
from autojoin.node import agent
from autojoin.ports import CommandResult, CommandRunner

CAPTURED = json.loads((Path(__file__).parents[2] / "swarm" / "captured" / "docker-20.10.json").read_text())


def cap(name: str) -> CommandResult:
    c = CAPTURED[name]
    return CommandResult(c["exit_code"], c["stdout"], c["stderr"])


def agent_says(obj: dict[str, object], exit_code: int = 0) -> CommandResult:
    return CommandResult(exit_code, json.dumps(obj) + "\n", "")


Reply = CommandResult | Exception | Callable[[Sequence[str]], CommandResult]


class ScriptedRunner(CommandRunner):
    """Replays results per (instance, argv prefix); records every call."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, tuple[str, ...], Reply]] = []
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def on(self, instance_id: str, prefix: Sequence[str], reply: Reply) -> ScriptedRunner:
        self.rules.insert(0, (instance_id, tuple(prefix), reply))  # later rules win
        return self

    def run(self, instance_id: str, argv: Sequence[str], *, timeout: float = 60.0) -> CommandResult:
        self.calls.append((instance_id, tuple(argv)))
        for iid, prefix, reply in self.rules:
            if iid == instance_id and tuple(argv[: len(prefix)]) == prefix:
                if isinstance(reply, Exception):
                    raise reply
                if isinstance(reply, CommandResult):
                    return reply
                return reply(argv)
        raise AssertionError(f"unexpected command on {instance_id}: {argv}")


def make(runner: ScriptedRunner, managers: Sequence[str] = ("i-m1", "i-m2", "i-m3")) -> SwarmOrchestrator:
    return SwarmOrchestrator(runner, lambda: list(managers))


# --- parsing ----------------------------------------------------------------------------------------


def test_members_from_captured_node_ls_and_inspect() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["docker", "node", "ls"], cap("node_ls_q"))
    runner.on("i-m1", ["docker", "node", "inspect"], cap("inspect_compact"))
    members = make(runner).members()
    assert [m.hostname for m in members] == ["ajx-n1", "ajx-n2", "ajx-n3", "ajx-n4"]
    leader, m2, _m3, worker = members
    assert leader.leader and leader.role is Role.MANAGER and leader.reachable and leader.ready
    assert leader.address == "10.200.0.11"
    assert not m2.leader and m2.role is Role.MANAGER
    assert m2.labels == {"az": "a", "instance-id": "i-1"} and m2.instance_id == "i-1"
    assert leader.labels == {} and leader.instance_id is None
    assert worker.role is Role.WORKER and not worker.ready and worker.reachable and worker.available
    assert runner.calls[0] == ("i-m1", ("docker", "node", "ls", "-q"))
    assert runner.calls[1][1][:5] == ("docker", "node", "inspect", "--format", orch_module.INSPECT_FORMAT)
    assert runner.calls[1][1][5:] == tuple(CAPTURED["node_ls_q"]["stdout"].split())


def test_member_from_full_inspect_with_labels_and_unspecified_address() -> None:
    full = json.loads(CAPTURED["node_inspect"]["stdout"])
    m = member_from_inspect(full[0])
    assert (m.hostname, m.role, m.leader, m.address) == ("ajx-n1", Role.MANAGER, True, "10.200.0.11")
    node = dict(full[1])
    node["Status"] = {"State": "ready", "Addr": "0.0.0.0"}
    node["Spec"] = {**node["Spec"], "Labels": {"instance-id": "i-0abc", "az": "us-east-1a"}}
    node["ManagerStatus"] = {"Reachability": "unreachable", "Addr": "10.0.0.7:2377"}
    m = member_from_inspect(node)
    assert m.address == "10.0.0.7" and m.instance_id == "i-0abc" and not m.reachable
    worker = member_from_inspect(json.loads(CAPTURED["node_inspect"]["stdout"])[2])
    assert worker.role is Role.WORKER and worker.reachable


def test_parse_helpers_reject_what_is_not_one_object_per_line() -> None:
    assert parse_json_lines(CAPTURED["node_ls_json"]["stdout"])[0]["Hostname"] == "ajx-n1"
    with pytest.raises(ValueError):
        parse_json_lines("[1, 2]\n")
    assert parse_members("\n") == []
    assert parse_agent_output("") is None
    assert parse_agent_output("noise\nnot json\n") is None
    assert parse_agent_output("[1]\n") is None
    assert parse_agent_output('warning\n{"node_id": "x"}\n\n') == {"node_id": "x"}


# --- the one message -> error table -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("capture", "error"),
    [
        ("node_ls_no_leader", NoLeader),
        ("jt_no_leader", NoLeader),
        ("inspect_no_leader", NoLeader),
        ("node_ls_from_worker", NotAManager),
        ("node_ls_not_in_swarm", NotAManager),
        ("rm_manager", MustDemoteFirst),
        ("rm_self_last", MustDemoteFirst),
        ("leave_manager_noforce", MustDemoteFirst),
        ("demote_last", LastManager),
        ("leave_last_manager", LastManager),
        ("rm_ready_worker", NodeNotDown),
        ("rm_just_left", NodeNotDown),
        ("join_already", AlreadyInSwarm),
        ("init_again", AlreadyInSwarm),
        ("join_rotated", InvalidJoinToken),
        ("join_malformed", InvalidJoinToken),
        ("inspect_missing", NodeNotFound),
        ("update_missing", NodeNotFound),
        ("join_unreachable", Unreachable),
        ("node_ls_deadline", Unreachable),
        ("leave_again", CommandFailed),
    ],
)
def test_every_captured_error_maps_to_its_error(capture: str, error: type[OrchestratorError]) -> None:
    got = error_for(cap(capture).stderr, "docker x", 1)
    assert type(got) is error
    assert "SWMTKN" not in str(got)


def test_a_demotion_refused_for_quorum_has_its_own_error() -> None:
    # swarmkit's controlapi text (the raft safeguard says "may result in loss of quorum")
    for text in (
        "Error response from daemon: rpc error: code = FailedPrecondition desc = can't remove member from "
        "the raft: this would result in a loss of quorum",
        "Error response from daemon: raft: member cannot be removed, because removing it may result in loss "
        "of quorum",
    ):
        got = error_for(text, "docker node demote", 1)
        assert type(got) is DemotionWouldLoseQuorum


def test_cannot_connect_to_the_daemon_is_unreachable() -> None:
    text = "Cannot connect to the Docker daemon at unix:///x/docker.sock. Is the docker daemon running?"
    assert isinstance(error_for(text, "docker node ls"), Unreachable)


# --- trying managers in turn ------------------------------------------------------------------------


def test_tries_the_next_manager_and_then_prefers_the_one_that_answered() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["docker"], Unreachable("ssm: Undeliverable"))
    runner.on("i-m2", ["docker"], cap("node_ls_from_worker"))
    runner.on("i-m3", ["docker", "node", "promote"], cap("promote_already"))
    orch = make(runner)
    orch.promote("abc")
    assert [c[0] for c in runner.calls] == ["i-m1", "i-m2", "i-m3"]
    runner.calls.clear()
    orch.promote("abc")
    assert [c[0] for c in runner.calls] == ["i-m3"]


def test_no_leader_wins_over_unreachable_when_no_manager_answers() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["docker"], cap("node_ls_deadline"))
    runner.on("i-m2", ["docker"], cap("node_ls_no_leader"))
    runner.on("i-m3", ["docker"], Unreachable("cut off"))
    with pytest.raises(NoLeader):
        make(runner).members()


def test_not_a_manager_wins_over_unreachable_and_unreachable_is_last_resort() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["docker"], Unreachable("cut off"))
    runner.on("i-m2", ["docker"], cap("node_ls_from_worker"))
    with pytest.raises(NotAManager):
        make(runner, ["i-m1", "i-m2"]).members()
    runner = ScriptedRunner().on("i-m1", ["docker"], Unreachable("cut off"))
    with pytest.raises(Unreachable, match="cut off"):
        make(runner, ["i-m1", "i-m1"]).members()
    with pytest.raises(Unreachable, match="no candidate manager"):
        make(ScriptedRunner(), []).members()


def test_a_refusal_is_raised_at_once_without_trying_other_managers() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["docker", "node", "rm"], cap("rm_manager"))
    with pytest.raises(MustDemoteFirst):
        make(runner).remove("abc")
    assert len(runner.calls) == 1
    runner.on("i-m1", ["docker", "node", "rm"], cap("rm_just_left"))
    with pytest.raises(NodeNotDown):
        make(runner).remove("abc")
    runner.on("i-m1", ["docker", "node", "demote"], cap("demote_last"))
    with pytest.raises(LastManager):
        make(runner).demote("abc")
    runner.on("i-m1", ["docker", "node", "update"], cap("update_missing"))
    with pytest.raises(NodeNotFound):
        make(runner).label("nosuchnode", {"az": "a"})
    runner.on("i-m1", ["docker", "node", "update"], CommandResult(1, "", "Error response from daemon: ???"))
    with pytest.raises(CommandFailed):
        make(runner).drain("abc")


def test_remove_of_a_node_already_gone_is_done() -> None:
    runner = ScriptedRunner().on("i-m1", ["docker", "node", "rm"], cap("rm_missing"))
    make(runner).remove("nosuchnode")
    runner.on("i-m1", ["docker", "node", "rm"], CommandResult(0, "abc\n", ""))
    make(runner).remove("abc")
    assert runner.calls[-1] == ("i-m1", ("docker", "node", "rm", "abc"))


def test_members_reads_again_when_a_node_vanishes_between_ls_and_inspect() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["docker", "node", "ls"], cap("node_ls_q"))
    replies = [cap("inspect_missing"), cap("inspect_compact")]
    runner.on("i-m1", ["docker", "node", "inspect"], lambda _argv: replies.pop(0))
    assert len(make(runner).members()) == 4
    runner.on("i-m1", ["docker", "node", "inspect"], cap("inspect_missing"))
    with pytest.raises(NodeNotFound):
        make(runner).members()


def test_members_inspects_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orch_module, "INSPECT_CHUNK", 3)
    lines = CAPTURED["inspect_compact"]["stdout"].splitlines()
    by_id = {json.loads(line)["ID"]: line for line in lines}
    runner = ScriptedRunner()
    runner.on("i-m1", ["docker", "node", "ls"], cap("node_ls_q"))
    runner.on(
        "i-m1",
        ["docker", "node", "inspect"],
        lambda argv: CommandResult(0, "\n".join(by_id[i] for i in argv[5:]) + "\n", ""),
    )
    assert [m.hostname for m in make(runner).members()] == ["ajx-n1", "ajx-n2", "ajx-n3", "ajx-n4"]
    assert [len(c[1]) - 5 for c in runner.calls if c[1][2] == "inspect"] == [3, 1]


def test_member_by_id() -> None:
    line = CAPTURED["inspect_compact"]["stdout"].splitlines()[3]
    runner = ScriptedRunner().on("i-m1", ["docker", "node", "inspect"], CommandResult(0, line + "\n", ""))
    assert make(runner).member("ajx-n4").hostname == "ajx-n4"


def test_cluster_changes_send_the_expected_argv() -> None:
    ok = CommandResult(0, "x\n", "")
    runner = ScriptedRunner().on("i-m1", ["docker"], ok)
    orch = make(runner)
    orch.label("n1", {"instance-id": "i-1", "az": "a"})
    orch.label("n1", {})
    orch.promote("n1")
    orch.demote("n1")
    orch.drain("n1")
    assert [c[1] for c in runner.calls] == [
        ("docker", "node", "update", "--label-add", "az=a", "--label-add", "instance-id=i-1", "n1"),
        ("docker", "node", "promote", "n1"),
        ("docker", "node", "demote", "n1"),
        ("docker", "node", "update", "--availability", "drain", "n1"),
    ]


# --- leave: on the node itself ----------------------------------------------------------------------


def test_leave_runs_on_the_node_and_is_idempotent() -> None:
    runner = ScriptedRunner()
    runner.on("i-w1", ["docker", "swarm", "leave"], cap("leave_worker"))
    orch = make(runner)
    orch.leave("i-w1")
    orch.leave("i-w1", force=True)
    assert runner.calls == [
        ("i-w1", ("docker", "swarm", "leave")),
        ("i-w1", ("docker", "swarm", "leave", "--force")),
    ]
    runner.on("i-w1", ["docker", "swarm", "leave"], cap("leave_again"))
    orch.leave("i-w1")  # not in a swarm: nothing to do
    runner.on("i-w1", ["docker", "swarm", "leave"], cap("leave_manager_noforce"))
    with pytest.raises(MustDemoteFirst):
        orch.leave("i-w1")
    runner.on("i-w1", ["docker", "swarm", "leave"], cap("leave_last_manager"))
    with pytest.raises(LastManager):
        orch.leave("i-w1")


# --- the node agent through the runner ---------------------------------------------------------------


def test_init_and_join_run_the_agent_on_the_instance_and_return_its_node_id() -> None:
    runner = ScriptedRunner()
    runner.on("i-new", ["autojoin-node", "init"], agent_says({"node_id": "n1"}))
    runner.on("i-new", ["autojoin-node", "join"], agent_says({"node_id": "n2", "manager": "10.0.0.1:2377"}))
    runner.on("i-new", ["autojoin-node", "info"], agent_says({"node_id": "n2", "state": "active"}))
    orch = make(runner)
    assert orch.init("i-new", "10.0.0.1") == "n1"
    assert orch.join("i-new", Role.WORKER) == "n2"
    assert orch.node_info("i-new")["state"] == "active"
    assert [c[1] for c in runner.calls] == [
        ("autojoin-node", "init", "--advertise-addr", "10.0.0.1"),
        ("autojoin-node", "join", "--role", "worker"),
        ("autojoin-node", "info"),
    ]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("no_ticket", NoTicket),
        ("node_not_ready", NodeNotReady),
        ("invalid_join_token", InvalidJoinToken),
        ("already_in_swarm", AlreadyInSwarm),
        ("unreachable", Unreachable),
        ("daemon_unreachable", Unreachable),
        ("no_leader", NoLeader),
        ("not_a_manager", NotAManager),
        ("is_manager", MustDemoteFirst),
        ("aws", TransientAwsError),
        ("wrong_role", CommandFailed),
    ],
)
def test_agent_error_codes_map_to_errors(code: str, error: type[Exception]) -> None:
    runner = ScriptedRunner().on("i-new", ["autojoin-node"], agent_says({"error": code, "detail": "x"}, 1))
    with pytest.raises(error):
        make(runner).join("i-new", Role.MANAGER)


def test_agent_failures_without_a_known_code_use_the_message_table() -> None:
    runner = ScriptedRunner()
    detail = CAPTURED["node_ls_no_leader"]["stderr"]
    runner.on("i-new", ["autojoin-node"], agent_says({"error": "failed", "detail": detail}, 1))
    with pytest.raises(NoLeader):
        make(runner).join("i-new", Role.MANAGER)
    runner.on("i-new", ["autojoin-node"], CommandResult(127, "", "autojoin-node: command not found"))
    with pytest.raises(CommandFailed):
        make(runner).join("i-new", Role.MANAGER)
    runner.on("i-new", ["autojoin-node"], CommandResult(1, '{"node_id": "n"}\n', ""))
    with pytest.raises(CommandFailed):
        make(runner).join("i-new", Role.MANAGER)


def test_rotate_and_check_run_the_agent_on_a_manager_that_answers() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["autojoin-node"], Unreachable("cut"))
    runner.on("i-m2", ["autojoin-node"], agent_says({"error": "not_a_manager", "detail": ""}, 1))
    runner.on("i-m3", ["autojoin-node", "rotate"], agent_says({"rotated": True}))
    runner.on("i-m3", ["autojoin-node", "check-token"], agent_says({"matches": True}))
    orch = make(runner)
    orch.rotate_token(Role.WORKER, "v-1")
    assert orch.token_works(Role.WORKER, "v-1") is True
    assert runner.calls[2] == ("i-m3", ("autojoin-node", "rotate", "--role", "worker", "--version-id", "v-1"))
    assert runner.calls[3] == (
        "i-m3",
        ("autojoin-node", "check-token", "--role", "worker", "--version-id", "v-1"),
    )
    runner.on("i-m3", ["autojoin-node", "check-token"], agent_says({"matches": False}))
    assert orch.token_works(Role.WORKER, "v-1") is False
    runner.on("i-m3", ["autojoin-node", "rotate"], agent_says({"error": "aws", "detail": "Throttling"}, 1))
    with pytest.raises(TransientAwsError):
        orch.rotate_token(Role.MANAGER, "v-2")
    failing = ScriptedRunner().on("i-m1", ["autojoin-node"], agent_says({"error": "no_leader"}, 1))
    with pytest.raises(NoLeader):
        make(failing, ["i-m1"]).rotate_token(Role.MANAGER, "v-3")


def test_rotate_sends_a_one_off_mac_of_the_current_token_never_the_token() -> None:
    token = "SWMTKN-1-" + "a" * 50 + "-" + "b" * 25
    runner = ScriptedRunner()
    runner.on("i-m1", ["autojoin-node", "rotate"], agent_says({"rotated": True}))
    runner.on("i-m1", ["autojoin-node", "sync-token"], agent_says({"stored": True}))
    orch = make(runner, ["i-m1"])
    orch.rotate_token(Role.WORKER, "v-1", SecretStr(token))
    orch.rotate_token(Role.WORKER, "v-1", SecretStr(token))
    orch.sync_token(Role.MANAGER, "v-2")
    (_, first), (_, second), (_, sync) = runner.calls
    assert first[:6] == ("autojoin-node", "rotate", "--role", "worker", "--version-id", "v-1")
    options = dict(zip(first[6::2], first[7::2], strict=True))
    assert set(options) == {"--nonce", "--current-mac"} and len(options["--nonce"]) == 32
    assert options["--current-mac"] == agent.token_mac(options["--nonce"], token)  # the node's own check
    assert first != second  # a fresh nonce every time: the MAC of one call says nothing about another
    assert sync == ("autojoin-node", "sync-token", "--role", "manager", "--version-id", "v-2")
    assert not any("SWMTKN" in arg for _iid, argv in runner.calls for arg in argv)


def test_custom_commands_and_no_token_in_any_argv() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["/usr/bin/docker"], CommandResult(0, "", ""))
    runner.on("i-m1", ["/opt/autojoin/agent"], agent_says({"node_id": "n"}))
    orch = SwarmOrchestrator(
        runner, lambda: ["i-m1"], docker=["/usr/bin/docker"], agent=["/opt/autojoin/agent"], timeout=5.0
    )
    orch.promote("n")
    orch.join("i-m1", Role.MANAGER)
    assert [c[1][0] for c in runner.calls] == ["/usr/bin/docker", "/opt/autojoin/agent"]
    assert not any("SWMTKN" in arg for _iid, argv in runner.calls for arg in argv)


@pytest.mark.parametrize(
    "stdout",
    [
        CAPTURED["inspect_compact"]["stdout"][:500],  # cut off (an output limit)
        '{"ID": "x", "Spec": {"Role": "boss"}}\n',  # a role the port does not know
        '{"Spec": {}}\n',  # no ID
        "",
    ],
)
def test_unparsable_inspect_output_is_a_command_failure(stdout: str) -> None:
    runner = ScriptedRunner().on("i-m1", ["docker", "node", "inspect"], CommandResult(0, stdout, ""))
    with pytest.raises(CommandFailed):
        make(runner).member("x")


def test_the_manager_that_answered_last_is_asked_first_without_listing_candidates_again() -> None:
    runner = ScriptedRunner()
    runner.on("i-m1", ["docker"], Unreachable("cut off"))
    runner.on("i-m2", ["docker", "node", "ls"], cap("node_ls_q"))
    runner.on("i-m2", ["docker", "node", "inspect"], cap("inspect_compact"))
    lookups: list[int] = []

    def managers() -> list[str]:  # in production: DynamoDB + Auto Scaling reads
        lookups.append(1)
        return ["i-m1", "i-m2"]

    orch = SwarmOrchestrator(runner, managers)
    orch.members()
    assert len(lookups) == 1  # found i-m2 after i-m1 failed
    for _ in range(3):
        orch.members()
    assert len(lookups) == 1  # i-m2 kept answering: no more lookups
    runner.on("i-m2", ["docker"], Unreachable("gone"))
    runner.on("i-m1", ["docker", "node", "ls"], cap("node_ls_q"))
    runner.on("i-m1", ["docker", "node", "inspect"], cap("inspect_compact"))
    orch.members()
    assert len(lookups) == 2  # the preferred failed: the candidates were listed again


def test_a_join_whose_agent_died_after_joining_reports_the_node_its_daemon_is_in() -> None:
    """The agent was killed after the daemon joined (no output, exit 137), or the runner timed out after
    delivering the join: the daemon is asked; an active node's id is the join's answer."""
    for lost in (CommandResult(137, "", ""), Unreachable("SSM command timed out")):
        runner = ScriptedRunner()
        runner.on("i-new", ["autojoin-node", "join"], lost)
        runner.on("i-new", ["autojoin-node", "info"], agent_says({"node_id": "n9", "state": "active"}))
        assert make(runner).join("i-new", Role.WORKER) == "n9"
        assert [c[1][:2] for c in runner.calls] == [("autojoin-node", "join"), ("autojoin-node", "info")]


def test_a_join_whose_agent_died_before_joining_keeps_its_error() -> None:
    """No answer and the daemon is in no swarm (or cannot say): the join's own error; an agent that
    answered with an error is believed (the daemon is not asked)."""
    for info in (
        agent_says({"node_id": None, "state": "inactive"}),
        agent_says({"node_id": "n9", "state": "pending"}),
        Unreachable("no route"),
    ):
        runner = ScriptedRunner()
        runner.on("i-new", ["autojoin-node", "join"], CommandResult(137, "", ""))
        runner.on("i-new", ["autojoin-node", "info"], info)
        with pytest.raises(CommandFailed):
            make(runner).join("i-new", Role.WORKER)
    runner = ScriptedRunner()
    runner.on("i-new", ["autojoin-node", "join"], Unreachable("SSM command timed out"))
    runner.on("i-new", ["autojoin-node", "info"], Unreachable("SSM command timed out"))
    with pytest.raises(Unreachable):
        make(runner).join("i-new", Role.WORKER)
    runner = ScriptedRunner()
    runner.on("i-new", ["autojoin-node", "join"], agent_says({"error": "unreachable", "detail": "x"}, 1))
    with pytest.raises(Unreachable):
        make(runner).join("i-new", Role.WORKER)
    assert [c[1][:2] for c in runner.calls] == [("autojoin-node", "join")]
