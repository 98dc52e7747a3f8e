"""The SQS consumer of S3 object notifications (EventBridge ``Object Created`` from the default bus).

Records are handled as pipeline events are (see ``paypipe.runtime.consumer``): partial batch
responses, outgoing events published in batches, input that can never succeed parked in the
DLQ with its reason. What differs is trust: only notifications from S3 itself (source
``aws.s3``) of the one bucket and prefix the step reads are acted on. Once an object's events
are all published the step is told (``done``), so a redelivery after that reads nothing again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from paypipe.events.models import Event
from paypipe.runtime.consumer import BatchOutcome, Consumer, PermanentError, Receipt
from paypipe.runtime.publisher import EventPublisher

S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class ObjectRoute:
    handle: Callable[[StoredObject, Receipt], Sequence[Event]]
    done: Callable[[StoredObject], None]


def stored_object(body: str, bucket: str, prefix: str) -> StoredObject:
    """The object a notification names; PermanentError for one this step must not read."""
    try:
        envelope = json.loads(body)
        source, detail_type, detail = envelope["source"], envelope["detail-type"], envelope["detail"]
        found = StoredObject(
            bucket=str(detail["bucket"]["name"]),
            key=str(detail["object"]["key"]),
            etag=str(detail["object"].get("etag") or detail["object"].get("eTag") or ""),
            size=int(detail["object"].get("size", 0)),
        )
    except json.JSONDecodeError as error:
        raise PermanentError("MalformedJson", f"body is not JSON: {error.msg}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise PermanentError("NotAnObjectNotification", f"body lacks {error}") from None
    if source != S3_SOURCE or detail_type != OBJECT_CREATED:
        raise PermanentError(
            "UntrustedSource", f"{detail_type!r} from {source!r} is not an S3 object notification"
        )
    if found.bucket != bucket or not found.key.startswith(prefix):
        raise PermanentError(
            "UnexpectedObject", f"s3://{found.bucket}/{found.key} is not under s3://{bucket}/{prefix}"
        )
    if not found.etag:
        raise PermanentError("NotAnObjectNotification", "the notification names no ETag")
    return found


class ObjectConsumer(Consumer):
    """Feeds each notified object of ``bucket``/``prefix`` to ``route``."""

    def __init__(
        self,
        step: str,
        route: ObjectRoute,
        *,
        bucket: str,
        prefix: str,
        publisher: EventPublisher,
        sqs_client: Any,
        dlq_url: str | None,
        max_receive_count: int,
    ) -> None:
        super().__init__(
            step,
            {},
            publisher=publisher,
            sqs_client=sqs_client,
            dlq_url=dlq_url,
            max_receive_count=max_receive_count,
            idempotency_store=None,
        )
        self._object_route = route
        self._bucket = bucket
        self._prefix = prefix
        self._objects: dict[str, StoredObject] = {}

    def process(self, records: Sequence[Mapping[str, Any]]) -> BatchOutcome:
        self._objects = {}
        outcome = super().process(records)
        finished = set(self._objects) - set(outcome.failed_message_ids) - set(outcome.parked_message_ids)
        for message_id in sorted(finished):
            self._object_route.done(self._objects[message_id])
        return outcome

    def _decide(self, record: SQSRecord, receipt: Receipt) -> list[Event]:
        found = stored_object(record.body, self._bucket, self._prefix)
        structlog.contextvars.bind_contextvars(object_key=found.key)
        events = list(self._object_route.handle(found, receipt))
        self._objects[record.message_id] = found
        return events
