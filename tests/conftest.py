import os

import pytest
from hypothesis import HealthCheck, settings

# CI explores the same examples on every run (a red run is reproducible, never a coin toss);
# local runs draw new ones and keep failures in .hypothesis/ to replay them. How fast examples are
# drawn depends on the machine's load, not on the code: CI does not fail on it.
settings.register_profile(
    "ci", derandomize=True, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

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
