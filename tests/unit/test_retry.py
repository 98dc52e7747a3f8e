import pytest
from botocore.exceptions import ClientError

from paypipe.runtime.retry import retry_throttled


def error(code):
    return ClientError({"Error": {"Code": code, "Message": "x"}}, "Op")


def flaky(failures, code="ProvisionedThroughputExceededException"):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= failures:
            raise error(code)
        return "done"

    return call, calls


def test_throttling_is_retried_until_success():
    call, calls = flaky(3)
    assert retry_throttled(call, max_wait_seconds=0) == "done"
    assert len(calls) == 4


def test_gives_up_after_the_attempts():
    call, calls = flaky(10)
    with pytest.raises(ClientError):
        retry_throttled(call, attempts=3, max_wait_seconds=0)
    assert len(calls) == 3


def test_other_errors_are_not_retried():
    call, calls = flaky(1, code="ConditionalCheckFailedException")
    with pytest.raises(ClientError):
        retry_throttled(call, max_wait_seconds=0)
    assert len(calls) == 1
