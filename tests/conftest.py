import os

import pytest

# Never reach a real AWS endpoint from tests.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def aws():
    """moto for every service, with the process-wide client cache reset around the test."""
    from moto import mock_aws

    from paypipe.runtime.aws import reset_clients

    with mock_aws():
        reset_clients()
        yield
    reset_clients()
