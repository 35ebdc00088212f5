"""observability's lazy tracer: decorating a handler builds nothing, the first call builds the Powertools
Tracer once and passes every argument through; the X-Ray SDK's sampling client is made on first use."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.client import BaseClient

from autojoin import observability
from autojoin.observability import LazyTracer, _OnDemandClient, _xray_sampling_client_on_demand


def test_decorating_builds_nothing_and_the_first_call_builds_the_tracer_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tracer = LazyTracer("svc")
    seen: list[tuple[Any, Any, Any]] = []

    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: Any, context: Any, deps: Any = None) -> str:
        seen.append((event, context, deps))
        return "done"

    assert not tracer.built
    assert handler({"a": 1}, None, deps="D") == "done"
    built = tracer.real
    assert tracer.built
    assert handler({"b": 2}, None) == "done"
    assert tracer.real is built
    assert seen == [({"a": 1}, None, "D"), ({"b": 2}, None, None)]
    assert handler.__name__ == "handler"


def test_module_tracer_is_lazy() -> None:
    assert isinstance(observability.tracer, LazyTracer)


def test_xray_client_is_made_on_first_use_and_others_at_once() -> None:
    session = botocore.session.get_session()
    original = botocore.session.Session.create_client

    def create(service: str) -> BaseClient:
        return session.create_client(
            service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )

    with _xray_sampling_client_on_demand():
        xray = create("xray")
        sts = create("sts")
    assert botocore.session.Session.create_client is original
    assert isinstance(xray, _OnDemandClient)
    assert xray._client is None
    assert not isinstance(sts, _OnDemandClient)
    assert xray.meta.service_model.service_name == "xray"  # made now, and it is the real client
    assert xray._client is not None
