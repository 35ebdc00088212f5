"""Fixtures for the real-swarm tests: one lab per session (its own root and prefix), moto in-process.

The lab FAILS the session (never skips) when it cannot start: not root, docker.io missing and not
installable, a daemon that does not come up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import boto3
import pytest
from moto import mock_aws

from autojoin.lab import Lab, LabError

from .swarm_support import TABLE, Cluster

# Not the user's `autojoin lab` (ajl) nor the shared recipe's (swl). AUTOJOIN_TEST_LAB_PREFIX lets two
# checkouts run the real-swarm tests side by side (namespaces are named after the prefix; keep it short:
# "<prefix>-n11-h" must fit in 15 characters).
LAB_PREFIX = os.environ.get("AUTOJOIN_TEST_LAB_PREFIX", "ajt")
LAB_ROOT = f"/tmp/autojoin-test-lab-{LAB_PREFIX}"


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    lab = Lab(LAB_ROOT, LAB_PREFIX, stop_wait=5)
    try:
        if os.geteuid() != 0:
            raise LabError("the real-swarm tests need root (network namespaces, dockerd)")
        try:
            Lab.preflight()
        except LabError:
            lab.install()  # swarm-lab.sh install: Debian's docker.io, iproute2, util-linux
        lab.up()  # a fresh, empty lab: tests add bare nodes and autojoin forms the swarms
    except (LabError, OSError) as exc:
        pytest.fail(f"the real-swarm lab cannot start: {exc}", pytrace=False)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def aws() -> Iterator[boto3.Session]:
    """moto in-process for one test module: the agent's boto3 calls (in-process) reach it.

    Module scope, not session: a mock left active would leak its state into later modules' own mocks.
    """
    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "principal", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "principal", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield session
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def new_cluster(lab: Lab, aws: boto3.Session) -> Callable[[str], Cluster]:
    def make(name: str) -> Cluster:
        return Cluster(name, lab, aws)

    return make
