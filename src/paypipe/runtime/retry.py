"""Retrying throttled AWS calls inside long-running jobs (ACH cut, expiry sweep).

The SDK already retries throttling a few times. A job that makes thousands of calls in one
invocation still meets calls whose throttling outlasts those retries, and failing the whole job
for one of them means no attempt ever finishes. Each call (always an idempotent one here) is
retried on its own instead.
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import ClientError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def is_throttling(error: BaseException) -> bool:
    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in THROTTLING_CODES


def retry_throttled[T](call: Callable[[], T], *, attempts: int = 5, max_wait_seconds: float = 2.0) -> T:
    """``call()``, retried with jittered backoff while it fails with throttling."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.05, max=max_wait_seconds),
        retry=retry_if_exception(is_throttling),
        reraise=True,
    )
    return retrying(call)
