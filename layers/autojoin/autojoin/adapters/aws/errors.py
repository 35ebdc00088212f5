"""ClientError → autojoin errors, in one place."""

from __future__ import annotations

from botocore.exceptions import ClientError

from autojoin.errors import NotFound, TransientAwsError

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ResourceContention",
        "ResourceContentionFault",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServiceError",
        "InternalError",
    }
)
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "InvalidInstanceID.NotFound"})


def code_of(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: ClientError, what: str) -> Exception:
    """The project's error for ``exc``; the caller raises it ``from exc``. Messages carry no values."""
    code = code_of(exc)
    if code in TRANSIENT_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
        return TransientAwsError(f"{what}: {code}")
    if code in NOT_FOUND_CODES:
        return NotFound(f"{what}: {code}")
    return exc
