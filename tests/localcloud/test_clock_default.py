"""The local cloud's simulated time: by default no wall-clock time is counted into it (deterministic runs on a
loaded machine); counting a handler's wall time is opt-in (count_wall_time=True, the real-swarm lab)."""

from __future__ import annotations

import time
from typing import Any

from tests.localcloud.fixtures.engine_kit import Recorder, engine_cloud, in_service, wire_lifecycle

POLICY = "TerminationPolicyFunction"


def _policy_call_after_real_work(**kwargs: Any) -> Any:
    with engine_cloud(**kwargs) as (cloud, stack):
        wire_lifecycle(cloud)
        cloud.set_desired(stack.manager_group, 3)
        cloud.run_until_idle(60)
        assert len(in_service(cloud, stack.manager_group)) == 3

        def busy(event: dict[str, Any]) -> dict[str, list[str]]:
            time.sleep(0.01)  # real time only: the simulated clock does not move
            return {"InstanceIDs": [event["Instances"][0]["InstanceId"]]}

        cloud.register_handler(POLICY, Recorder(busy))
        cloud.set_desired(stack.manager_group, 2)
        cloud.run_until_idle(0)
        return cloud.policy_calls[-1]


def test_by_default_a_handlers_wall_time_is_not_simulated_time() -> None:
    call = _policy_call_after_real_work()
    assert call.elapsed_seconds == 0.0
    assert not call.over_budget


def test_counting_wall_time_is_opt_in() -> None:
    call = _policy_call_after_real_work(count_wall_time=True)
    assert call.elapsed_seconds > 0.0  # the 10 ms the handler slept, whatever the machine's speed
