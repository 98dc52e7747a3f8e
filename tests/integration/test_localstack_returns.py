"""The bank's answers end to end on LocalStack: infra/sam/template.yaml deployed through CloudFormation.

The ACH cut writes a payout file; the simulated bank answers it under the ACH bucket's ``inbound/``
prefix; S3 tells the account's default event bus (the bucket's EventBridge notifications), the
AchReturns rule queues the notification and the deployed ach_returns function books the return and
stores the correction, which the next cut applies. Nothing is forwarded by hand.

A return is booked only once its entry has settled, and the bank answers days after that: before
the bank delivers, the test moves the functions' clock forward to the delivery day
(``FunctionsClock``, LocalStack in host mode only). The fixtures are in conftest.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, time, timedelta
from typing import Any

import pytest

from paypipe.adapters.ledger_store import LedgerStore
from paypipe.domain import nacha
from paypipe.domain.ach_calendar import EASTERN
from paypipe.domain.bank_simulator import TEST_ACCOUNTS, BankSimulator
from paypipe.domain.ledger import TransferKind
from paypipe.embedded.bank import SimulatedBank
from paypipe.events import models as ev
from paypipe.runtime.publisher import EventPublisher
from tests.integration.conftest import Tap, request
from tests.integration.localstack import FunctionsClock, aws, functions_clock_movable
from tests.integration.test_localstack_pipeline import invoke_scheduled

pytestmark = pytest.mark.integration

RETURNED, CORRECTED = "SIMR03", "SIMC01"  # the simulated bank always returns R03, always sends a C01
CORRECTED_TO = dict(next(a for a in TEST_ACCOUNTS if a.account_number == CORRECTED).corrected)[
    "account number"
]
DELIVERED_AT = time(9)  # Eastern, on the answers' delivery day


@pytest.fixture
def functions_clock(stack_outputs: dict[str, str]) -> Iterator[FunctionsClock]:
    if not functions_clock_movable():
        pytest.skip("moving the functions' clock needs this checkout's LocalStack in host mode")
    clock = FunctionsClock()
    yield clock
    clock.reset()  # the next tests expect the host's clock


def payee_routing_number(rng: random.Random) -> str:
    """A valid routing number of this run's payees: what the bank said of an account is kept by
    routing and account number, so a LocalStack reused from an earlier run knows none of them."""
    first_eight = f"0{rng.randrange(1, 10)}{rng.randrange(10**6):06d}"
    return first_eight + nacha.routing_check_digit(first_eight)


def pay(
    tap: Tap, client: EventPublisher, payments: list[ev.PaymentRequested], now: Callable[[], datetime]
) -> None:
    """Request ``payments``, complete each once held (at the functions' time), wait for the releases."""
    assert client.publish(payments).ok
    ids = [p.payment_id for p in payments]
    tap.wait_for("holds", lambda: all(tap.of(pid, ev.FundsHeld) for pid in ids))
    holds = [tap.of(pid, ev.FundsHeld)[0] for pid in ids]
    completions = [
        ev.ServiceCompleted.create(
            payment_id=hold.payment_id,
            producer="client",
            cause=hold,
            occurred_at=now(),
            data=ev.ServiceCompletedData(completed_at=now()),
        )
        for hold in holds
    ]
    assert client.publish(completions).ok
    tap.wait_for("releases", lambda: all(tap.of(pid, ev.FundsReleased) for pid in ids))


def cut(tap: Tap, ids: Iterable[str], at: datetime) -> dict[str, ev.PayoutBatched]:
    """Run the ACH cut at ``at`` until each payout of ``ids`` is filed (the ach_batch consumer
    records a payout before a cut can take it); each one's PayoutBatched."""
    wanted = list(ids)
    tap.wait_for(
        "payouts filed",
        lambda: all(tap.of(pid, ev.PayoutBatched) for pid in wanted),
        on_poll=lambda: invoke_scheduled("AchCutFunction", at),
    )
    return {pid: tap.of(pid, ev.PayoutBatched)[-1] for pid in wanted}


def filed_entry(bucket: str, payout: ev.PayoutBatched) -> nacha.EntryDetail:
    text = aws("s3").get_object(Bucket=bucket, Key=payout.data.file_key)["Body"].read().decode()
    entries = {e.trace_number: e for b in nacha.parse(text, strict=True).batches for e in b.entries}
    return entries[payout.data.trace_number]


def payout_status(stack_outputs: dict[str, str], payment_id: str) -> str:
    item = aws("dynamodb").get_item(
        TableName=stack_outputs["PayoutsTableName"],
        Key={"pk": {"S": f"payout#{payment_id}"}, "sk": {"S": "payout"}},
    )["Item"]
    return str(item["status"]["S"])


def only(tap: Tap, payment_id: str, event_type: type[ev.Event]) -> Any:
    """The one event of ``event_type`` of the payment (the tap may read a redelivered copy twice)."""
    (event,) = {e.event_id: e for e in tap.of(payment_id, event_type)}.values()
    return event


def answered_traces(bank: SimulatedBank) -> set[str]:
    """The original trace numbers of the entries the bank's planned files answer."""
    answers = [e for planned in bank.planned for b in planned.file.batches for e in b.entries]
    traces = {e.entry_return.original_trace_number for e in answers if e.entry_return}
    return traces | {e.correction.original_trace_number for e in answers if e.correction}


def test_the_banks_return_and_correction_are_applied_and_the_next_payout_goes_to_the_corrected_account(
    stack_outputs: dict[str, str],
    tap: Tap,
    client: EventPublisher,
    run_id: str,
    functions_clock: FunctionsClock,
) -> None:
    rng = random.Random(f"{run_id}-returns")
    bucket = stack_outputs["AchBucketName"]
    routing = payee_routing_number(rng)
    accounts = {"returned": RETURNED, "corrected": CORRECTED, "posted": f"{rng.randrange(10**9):09d}"}
    started = functions_clock.now().replace(microsecond=0)
    payments = {
        name: request(
            f"{run_id}-{name}", rng, routing_number=routing, account_number=account, occurred_at=started
        )
        for name, account in accounts.items()
    }
    ids = {name: payment.payment_id for name, payment in payments.items()}
    pay(tap, client, list(payments.values()), functions_clock.now)
    first = cut(tap, ids.values(), started + timedelta(days=1))
    assert filed_entry(bucket, first[ids["returned"]]).dfi_account_number.strip() == RETURNED

    # The bank reads the file(s) and plans its answers: the return and the correction, nothing else.
    bank = SimulatedBank(aws("s3"), BankSimulator(return_rate=0, noc_rate=0))
    for folder in sorted({p.data.file_key.rsplit("/", 1)[0] + "/" for p in first.values()}):
        bank.answer_new_files(bucket, folder)
    traces = {name: first[pid].data.trace_number for name, pid in ids.items()}
    answered = answered_traces(bank)
    assert {traces["returned"], traces["corrected"]} <= answered and traces["posted"] not in answered

    delivery_day = max(planned.delivery_date for planned in bank.planned)
    functions_clock.move_to(datetime.combine(delivery_day, DELIVERED_AT, EASTERN))
    inbound = bank.deliver_due(delivery_day, bucket)
    assert inbound and all(key.startswith("inbound/") for key in inbound)
    tap.wait_for(
        "the return and the correction (or an answer parked)",
        lambda: bool(
            (
                tap.of(ids["returned"], ev.PayoutReturned)
                and tap.of(ids["corrected"], ev.PayeeAccountCorrected)
            )
            or any(tap.of(pid, ev.AchInboundParked) for pid in ids.values())
        ),
    )
    parked = [e.data.reason for pid in ids.values() for e in tap.of(pid, ev.AchInboundParked)]
    assert parked == []

    returned = only(tap, ids["returned"], ev.PayoutReturned)
    assert returned.data.original_trace_number == traces["returned"]
    assert (returned.data.return_code, returned.data.next_step) == ("R03", "await_account_update")
    assert returned.data.account_unusable and returned.data.inbound_key in inbound
    assert returned.data.amount_cents == payments["returned"].data.amount_cents
    assert_payout_reversed(stack_outputs, ids["returned"])
    assert payout_status(stack_outputs, ids["returned"]) == "waiting"

    corrected = only(tap, ids["corrected"], ev.PayeeAccountCorrected)
    assert corrected.data.original_trace_number == traces["corrected"]
    assert (corrected.data.change_code, corrected.data.account_last4) == ("C01", CORRECTED_TO[-4:])
    assert corrected.data.inbound_key in inbound
    assert not tap.of(ids["posted"], (ev.PayoutReturned, ev.PayeeAccountCorrected))
    assert payout_status(stack_outputs, ids["posted"]) == "assigned"

    # A later payment to the corrected payee is paid to the account the bank gave.
    again = request(
        f"{run_id}-corrected-again",
        rng,
        routing_number=routing,
        account_number=CORRECTED,
        provider_id=payments["corrected"].data.provider_id,
        occurred_at=functions_clock.now().replace(microsecond=0),
    )
    pay(tap, client, [again], functions_clock.now)
    second = cut(tap, [again.payment_id], functions_clock.now() + timedelta(days=1))
    assert filed_entry(bucket, second[again.payment_id]).dfi_account_number.strip() == CORRECTED_TO
    # The returned payout still waits for new details of its account.
    assert len(tap.of(ids["returned"], ev.PayoutBatched)) == 1
    assert payout_status(stack_outputs, ids["returned"]) == "waiting"


def assert_payout_reversed(stack_outputs: dict[str, str], payment_id: str) -> None:
    """One PAYOUT_RETURN transfer, mirroring the payout's postings."""
    transfers = LedgerStore(stack_outputs["LedgerTableName"], aws("dynamodb")).transfers(payment_id)
    (payout,) = [t for t in transfers if t.kind is TransferKind.PAYOUT]
    (reversal,) = [t for t in transfers if t.kind is TransferKind.PAYOUT_RETURN]
    assert reversal.reference == payout.transfer_id

    def signed(transfer: Any) -> dict[Any, int]:
        totals: dict[Any, int] = {}
        for posting in transfer.postings:
            totals[posting.account] = totals.get(posting.account, 0) + posting.signed_cents
        return totals

    assert signed(reversal) == {account: -cents for account, cents in signed(payout).items()}
