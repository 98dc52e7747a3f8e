"""processor feed (scheduled): the card processor's chargeback notices -> DisputeOpened and
DisputeResolved under the source ``paypipe.processor``, the only producer the release step lets
open a dispute at the network and decide it.

A chargeback follows the dispute flow of the phase its payment is in (a frozen hold, a payout
held back, a clawback from the provider): lost, the hold is refunded to the customer with
``chargeback`` set (the network already gave the card its money back, so the refund function
does not refund it again); won, the hold is released. Each event's id derives from the notice,
and a notice is acknowledged only once its event is on the bus, so a run that fails part-way is
caught up by the next without a duplicate anyone acts on. A decision whose opening is relayed in
the same run waits for the next run (the opening is then ahead of it on the release queue), and
a notice that makes no valid event (the processor's fault) is logged, counted and skipped, left
unacknowledged for an operator, so it never stops the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from paypipe.domain import card_processing as cp
from paypipe.events import models as ev
from paypipe.runtime.aws import int_setting
from paypipe.runtime.entry import LambdaHandler, publisher
from paypipe.runtime.logging import get_logger
from paypipe.runtime.publisher import EventPublisher
from paypipe.steps.charge import processor_from_env
from paypipe.steps.common import scheduled_time

STEP = ev.PROCESSOR_PRODUCER
_DECISIONS = {cp.NoticeKind.WON: ev.DisputeOutcome.RELEASE, cp.NoticeKind.LOST: ev.DisputeOutcome.REFUND}


def notice_event(notice: cp.DisputeNotice) -> ev.Event:
    """The event a notice tells (ValidationError when its fields make none)."""
    model: type[ev.Event]
    data: ev.Payload
    if notice.kind is cp.NoticeKind.OPENED:
        model, data = (
            ev.DisputeOpened,
            ev.DisputeOpenedData(dispute_id=notice.dispute_id, reason=notice.reason),
        )
    else:
        outcome = _DECISIONS[notice.kind]
        model, data = (
            ev.DisputeResolved,
            ev.DisputeResolvedData(dispute_id=notice.dispute_id, outcome=outcome),
        )
    return model.create(
        payment_id=notice.payment_id,
        data=data,
        producer=STEP,
        dedup_key=notice.notice_id,
        occurred_at=notice.due_at,
    )


@dataclass
class ProcessorFeed:
    feed: cp.DisputeFeed
    events: EventPublisher
    max_notices: int = 500

    def relay(self, as_of: datetime) -> dict[str, int]:
        relayed: list[tuple[cp.DisputeNotice, ev.Event]] = []
        opened_now: set[str] = set()
        waiting = malformed = 0
        for notice in self.feed.due_notices(as_of, self.max_notices):
            if notice.kind is not cp.NoticeKind.OPENED and notice.dispute_id in opened_now:
                waiting += 1  # its opening goes first: decided on the next run
                continue
            try:
                relayed.append((notice, notice_event(notice)))
            except ValidationError as error:
                fields = sorted({".".join(str(part) for part in e["loc"]) for e in error.errors()})
                get_logger(step=STEP).error(
                    "chargeback notice skipped", notice_id=notice.notice_id, fields=fields
                )
                malformed += 1
                continue
            if notice.kind is cp.NoticeKind.OPENED:
                opened_now.add(notice.dispute_id)
        result = self.events.publish([event for _, event in relayed])
        published = {event.event_id for event in result.published}
        for notice, event in relayed:
            if event.event_id in published:
                self.feed.acknowledge(notice)
        return {
            "relayed": len(published),
            "failed": len(result.failed),
            "waiting": waiting,
            "malformed": malformed,
        }


def build() -> LambdaHandler:
    feed = ProcessorFeed(processor_from_env(), publisher(STEP), int_setting("FEED_MAX_NOTICES", 500))

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, int]:
        return feed.relay(scheduled_time(event))

    return handler
