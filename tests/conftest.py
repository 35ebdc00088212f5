"""Suite-wide settings: Hypothesis profiles that make a run repeatable and a failure reproducible.

- ``default`` (every run, CI included): ``derandomize`` — the examples follow from each test's own code, so
  two runs of the suite try the same inputs and give the same result; no example database (a failure saved
  by one run would make the next differ); ``print_blob`` — a failure prints the ``@reproduce_failure``
  line that replays it exactly; ``deadline=None`` — 2 shared cores make per-example timings meaningless
  (speed is the benchmark scripts' job) and a deadline there only produces Flaky errors.
- ``explore`` (``HYPOTHESIS_PROFILE=explore``): random examples, 10x as many, for hunting new bugs locally;
  a failure it finds is still printed with its reproduce blob.
- ``mutate`` (``make mutate``): as ``default``.

Per-test ``settings(...)`` keep their own example counts and inherit the rest from the loaded profile.

Each session also starts with the package's memo caches (``functools.lru_cache``: the quorum and placement
maths) empty: ``make mutate`` forks every mutant's run from a process whose clean run filled them, and a
cached answer would hide a mutated helper that only a cached function calls (placement's ``_partitions``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("default", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("mutate", parent=settings.get_profile("default"))
settings.register_profile(
    "explore",
    derandomize=False,
    print_blob=True,
    deadline=None,
    max_examples=settings.get_profile("default").max_examples * 10,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-swarm tests start dockerd nodes (and may install docker.io) in their first test's setup: they get
    30 minutes each instead of the suite's 10 (pyproject.toml ``timeout``); an explicit mark wins."""
    for item in items:
        if item.get_closest_marker("swarm") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(1800))


@pytest.fixture(scope="session", autouse=True)
def _empty_memo_caches() -> Iterator[None]:
    for name, module in list(sys.modules.items()):
        if name.startswith("autojoin.") and module is not None:
            for value in list(vars(module).values()):
                clear = getattr(value, "cache_clear", None)
                if callable(clear):
                    clear()
    yield
