"""DynamoDB provider forwarding every request to a moto server.

LocalStack's own DynamoDB needs DynamoDB Local (Java, downloaded at first use); on a host
without network access the stack's tables live in a moto server instead. Selected with
``PROVIDER_OVERRIDE_DYNAMODB=moto_server``; ``PAYPIPE_DYNAMODB_BACKEND_URL`` is the server.
"""

import os

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.aws.forwarder import HttpFallbackDispatcher
from localstack.services.plugins import Service, aws_provider


class MotoServerDynamoDB(DynamodbApi):
    """Implements nothing: every operation falls through to the moto server."""


@aws_provider(api="dynamodb", name="moto_server")
def dynamodb_moto_server() -> Service:
    backend_url = os.environ.get("PAYPIPE_DYNAMODB_BACKEND_URL", "http://127.0.0.1:4567")
    return Service.for_provider(
        MotoServerDynamoDB(),
        dispatch_table_factory=lambda provider: HttpFallbackDispatcher(
            provider, lambda _account, _region: backend_url
        ),
    )
