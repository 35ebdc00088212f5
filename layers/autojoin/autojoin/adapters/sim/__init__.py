"""In-memory adapters for simulations and tests: a simulated clock and a Raft-faithful Docker Swarm."""

from autojoin.adapters.sim.clock import Scheduled, SimClock
from autojoin.adapters.sim.swarm import SimSwarm

__all__ = ["Scheduled", "SimClock", "SimSwarm"]
