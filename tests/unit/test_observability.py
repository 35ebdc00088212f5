"""The log scrubber works on the final formatted line, whatever carries the token; AWS loggers stay quiet."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from autojoin import observability
from autojoin.observability import QUIET_LOGGERS, harden_logging, logger

TOKEN = "SWMTKN-1-" + "3" * 50 + "-" + "abcdefghijklmnopqrstuvwxy"


def test_every_surface_of_a_powertools_record_is_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    logger.append_keys(leaky=f"k {TOKEN}")
    try:
        logger.info("plain %s", TOKEN)
        logger.info("extra", extra={"detail": TOKEN, "nested": {"token": TOKEN}})
        logger.info({"message": "a dict message", "token": TOKEN})
        try:
            raise ValueError(f"bad {TOKEN}")
        except ValueError:
            logger.exception("with a traceback")
    finally:
        logger.remove_keys(["leaky"])
    out = capsys.readouterr().out
    assert out.count("\n") == 4 and "with a traceback" in out and "ValueError" in out
    assert "SWMTKN" not in out
    assert out.count(observability.REDACTED) >= 8


@pytest.fixture
def root_handler() -> Iterator[io.StringIO]:
    """A handler on the root logger, as the Lambda runtime installs one, with the root at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s %(detail)s"))
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    harden_logging()  # what the functions do at import (observability), again for this new handler
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def test_root_handlers_are_scrubbed_and_aws_loggers_pinned_to_warning(root_handler: io.StringIO) -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).debug("Response body: %s", TOKEN, extra={"detail": ""})
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    assert root_handler.getvalue() == ""  # botocore's DEBUG bodies never reach a handler
    other = logging.getLogger("some.library")
    other.warning("args %s", TOKEN, extra={"detail": TOKEN})
    try:
        raise RuntimeError(TOKEN)
    except RuntimeError:
        other.error("failed", exc_info=True, extra={"detail": "x"})
    text = root_handler.getvalue()
    assert "args" in text and "RuntimeError" in text
    assert "SWMTKN" not in text
