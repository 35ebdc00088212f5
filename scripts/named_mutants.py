"""The survivors named in issue 15, each applied by hand and run against the test written to kill it.

mutmut (make mutate) only mutates code inside functions; some of the named bugs live in class bodies
(pydantic ``Field(min_length=1)``), and each deserves a test that names it. For every mutant below this
copies the package to a temporary directory, applies the one change there (the worktree is never
touched), puts the copy first on PYTHONPATH (ahead of the editable install) and runs the named tests:
they must fail. The same tests are first run on the unchanged copy: they must pass. Exit 1 otherwise, or
when a mutant no longer applies (the code changed: update its line here).

    python scripts/named_mutants.py            # all
    python scripts/named_mutants.py withdraw   # those whose name contains "withdraw"
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "layers" / "autojoin" / "autojoin"
EDGES = "tests/unit/services/test_launch_edges.py::"
EVENTS = "tests/unit/test_events.py::"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # under layers/autojoin/autojoin
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant(
        "launch: cluster check `or` -> `and`",
        "services/launch.py",
        "group.cluster != self.config.cluster or group.role is None",
        "group.cluster != self.config.cluster and group.role is None",
        (EDGES + "test_a_group_of_another_cluster_is_ignored_even_when_it_carries_a_role",),
    ),
    Mutant(
        "launch: no readiness wait",
        "services/launch.py",
        "            self._await_ready(node_id, role, iid)\n",
        "            pass\n",
        (
            EDGES + "test_a_node_that_never_shows_ready_is_abandoned_after_the_join_wait",
            EDGES + "test_a_node_that_shows_ready_with_the_wrong_role_is_abandoned",
        ),
    ),
    Mutant(
        "launch: readiness accepts any role",
        "services/launch.py",
        "member is not None and member.ready and member.role is role",
        "member is not None and member.ready",
        (EDGES + "test_a_node_that_shows_ready_with_the_wrong_role_is_abandoned",),
    ),
    Mutant(
        "launch: join wait runs one poll too long",
        "services/launch.py",
        "if waited >= self.config.join_wait:",
        "if waited > self.config.join_wait:",
        (EDGES + "test_a_node_that_never_shows_ready_is_abandoned_after_the_join_wait",),
    ),
    Mutant(
        "launch: no withdraw() in the finally",
        "services/launch.py",
        "            finally:\n                self.handoff.withdraw(instance_id)\n",
        "            finally:\n                pass\n",
        (EDGES + "test_a_ticket_the_node_never_took_is_withdrawn_after_a_failed_join",),
    ),
    Mutant(
        "launch: snapshot zones from every group",
        "services/launch.py",
        "for g in groups if g.role is Role.MANAGER for z in g.zones",
        "for g in groups for z in g.zones",
        (EDGES + "test_the_snapshot_holds_the_manager_groups_zones_only",),
    ),
    Mutant(
        "launch: snapshot health `and` -> `or`",
        "services/launch.py",
        "healthy=m.ready and m.reachable,",
        "healthy=m.ready or m.reachable,",
        (EDGES + "test_the_snapshot_records_each_nodes_health_reachability_and_labels",),
    ),
    Mutant(
        "launch: a gone pending instance is joined anyway (its `continue` deleted)",
        "services/launch.py",
        "                self.state.remove_pending(self.config.cluster, action.instance_id)\n"
        "                continue\n",
        "                self.state.remove_pending(self.config.cluster, action.instance_id)\n",
        (
            EDGES + "test_a_pending_launch_whose_instance_has_gone_is_dropped_when_the_cluster_appears",
            EDGES + "test_a_pending_launch_whose_instance_is_unknown_or_group_deleted_is_dropped",
        ),
    ),
    Mutant(
        "launch: a booting node whose hook ended is deferred anyway",
        "services/launch.py",
        "            if waiting.outcome is Outcome.GONE:\n                return waiting\n"
        '            raise JoinDeferred(f"{iid} cannot run commands yet;',
        '            raise JoinDeferred(f"{iid} cannot run commands yet;',
        (EDGES + "test_a_booting_node_whose_hook_already_ended_is_gone_not_deferred",),
    ),
    Mutant(
        "launch: a booting first manager whose hook ended keeps its claim",
        "services/launch.py",
        "                self.state.release_bootstrap(cluster, instance.instance_id)\n"
        "                return waiting",
        "                return waiting",
        (EDGES + "test_a_booting_first_manager_whose_hook_already_ended_gives_up_its_claim",),
    ),
    Mutant(
        "launch: an abandoned launch keeps its pending record",
        "services/launch.py",
        "        self.state.remove_pending(self.config.cluster, instance.instance_id)\n"
        "        done = self.fleet.complete(action, LifecycleResult.ABANDON)",
        "        done = self.fleet.complete(action, LifecycleResult.ABANDON)",
        (EDGES + "test_a_manager_that_waited_and_then_fails_to_bootstrap_leaves_no_pending_record",),
    ),
    Mutant(
        "launch (make mutate survivor): a GONE decision without its instance",
        "services/launch.py",
        'Outcome.GONE, "lifecycle action already finished", instance.instance_id, role',
        'Outcome.GONE, "lifecycle action already finished", None, role',
        (EDGES + "test_each_path_gives_its_reason",),
    ),
    Mutant(
        "launch (make mutate survivor): a GONE decision without its role",
        "services/launch.py",
        'Outcome.GONE, "lifecycle action already finished", instance.instance_id, role',
        'Outcome.GONE, "lifecycle action already finished", instance.instance_id, None',
        (EDGES + "test_each_path_gives_its_reason",),
    ),
    Mutant(
        "launch (make mutate survivor): a PENDING decision without its role",
        "services/launch.py",
        '            f"{why}: waiting (hook kept alive)",\n'
        "            instance.instance_id,\n"
        "            role,\n",
        '            f"{why}: waiting (hook kept alive)",\n'
        "            instance.instance_id,\n"
        "            None,\n",
        (EDGES + "test_each_path_gives_its_reason",),
    ),
    Mutant(
        "launch (make mutate survivor): the join wait starts at 1 s",
        "services/launch.py",
        "        waited = 0.0\n",
        "        waited = 1.0\n",
        (EDGES + "test_the_join_wait_is_counted_in_whole_polls_from_zero",),
    ),
    Mutant(
        "launch (make mutate survivor): a node not listed yet crashes the readiness wait",
        "services/launch.py",
        "if m.node_id == node_id), None)",
        "if m.node_id == node_id), )",
        (EDGES + "test_a_node_the_orchestrator_does_not_list_yet_is_polled_for",),
    ),
    Mutant(
        "events: the flat SQS/SNS body is not recognised",
        "events.py",
        'if "LifecycleTransition" in event:',
        'if "LifecycleTransition" not in event:',
        (EVENTS + "test_the_flat_sqs_sns_body_is_a_lifecycle_action",),
    ),
    Mutant(
        "events: the flat body loses its RequestId",
        "events.py",
        'return _from_detail(flat, str(event.get("RequestId", "")))',
        'return _from_detail(flat, "")',
        (EVENTS + "test_the_flat_sqs_sns_body_is_a_lifecycle_action",),
    ),
    *[
        Mutant(
            f"events: {field} min_length {length}",
            "events.py",
            f'alias="{alias}", min_length=1)',
            f'alias="{alias}", min_length={length})',
            (EVENTS + "test_an_empty_token_group_or_hook_is_rejected_and_one_character_is_enough",),
        )
        for field, alias in (
            ("token", "LifecycleActionToken"),
            ("group", "AutoScalingGroupName"),
            ("hook", "LifecycleHookName"),
        )
        for length in (0, 2)
    ],
    Mutant(
        "entrypoints: the rejection reason becomes None",
        "entrypoints.py",
        'count("BadInput")\n        return {"outcome": "rejected", "reason": str(exc)}\n'
        "    logger.append_keys(cluster=deps.settings.cluster, instance_id=action.instance_id,"
        ' asg=action.group)\n    logger.debug("launch action"',
        'count("BadInput")\n        return {"outcome": "rejected", "reason": None}\n'
        "    logger.append_keys(cluster=deps.settings.cluster, instance_id=action.instance_id,"
        ' asg=action.group)\n    logger.debug("launch action"',
        (EVENTS + "test_on_launch_answers_rejected_input_with_the_reason",),
    ),
    Mutant(
        "rotation: setSecret says nothing useful",
        "services/rotation.py",
        '"nothing to set: the swarm already uses the pending token"',
        '""',
        ("tests/unit/services/test_rotation.py::test_four_steps_rotate_the_worker_token",),
    ),
    Mutant(
        "rotation (make mutate survivor): an already-current decision without its role",
        "services/rotation.py",
        'return RotationDecision(role, the_step, "version is already AWSCURRENT: nothing to do")',
        'return RotationDecision(None, the_step, "version is already AWSCURRENT: nothing to do")',
        ("tests/unit/services/test_rotation_messages.py::test_each_step_says_what_it_did",),
    ),
    Mutant(
        "rotation (make mutate survivor): a retried create without its role",
        "services/rotation.py",
        'return RotationDecision(role, the_step, "pending token already stored: nothing to do")',
        'return RotationDecision(None, the_step, "pending token already stored: nothing to do")',
        (
            "tests/unit/services/test_rotation_messages.py::test_a_retried_create_step_says_the_pending_token_is_there",
        ),
    ),
    Mutant(
        "rotation (make mutate survivor): a retried create without its step",
        "services/rotation.py",
        'return RotationDecision(role, the_step, "pending token already stored: nothing to do")',
        'return RotationDecision(role, None, "pending token already stored: nothing to do")',
        (
            "tests/unit/services/test_rotation_messages.py::test_a_retried_create_step_says_the_pending_token_is_there",
        ),
    ),
    Mutant(
        "cli: --version prints another version",
        "cli/main.py",
        'typer.echo(f"autojoin {__version__}")',
        'typer.echo("autojoin 0")',
        ("tests/unit/cli/test_cli_planning.py::test_version_is_the_installed_distributions",),
    ),
]


def pytest(copy: Path, tests: tuple[str, ...]) -> int:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--timeout", "120", *tests]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, check=False).returncode


def main() -> int:
    chosen = [m for m in MUTANTS if not sys.argv[1:] or any(a in m.name for a in sys.argv[1:])]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="autojoin-mutant-") as tmp:
        copy = Path(tmp)
        shutil.copytree(PACKAGE, copy / "autojoin", ignore=shutil.ignore_patterns("__pycache__"))
        all_tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        if pytest(copy, all_tests) != 0:
            print("error: the killing tests fail on the unchanged code", file=sys.stderr)
            return 1
        for m in chosen:
            target = copy / "autojoin" / m.file
            original = target.read_text()
            if original.count(m.old) != 1:
                print(f"STALE     {m.name}: its line is no longer in {m.file} exactly once")
                failed += 1
                continue
            target.write_text(original.replace(m.old, m.new))
            try:
                code = pytest(copy, m.tests)
            finally:
                target.write_text(original)
            killed = code != 0
            failed += not killed
            names = ", ".join(t.split("::")[-1] for t in m.tests)
            print(f"{'killed' if killed else 'SURVIVED':9} {m.name}  ({names})")
    print(f"{len(chosen) - failed}/{len(chosen)} named mutants killed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
