"""``paypipe status`` on what embedded runs leave behind: every payment's state agrees with the
run's reconciliation, a refunded and a parked payment show as such, an unknown id is one line
with exit status 1, and the projector's queue and table never see a card number, CVV or account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paypipe.cli import main
from paypipe.domain.bank_simulator import BankSimulator
from paypipe.embedded.demo import RunReport, run_demo
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import payment_requested
from paypipe.embedded.status_files import timeline_items, write_status_files
from paypipe.events import models as ev
from paypipe.ops.dlq_aws import peek
from paypipe.ops.status import read_embedded

pytestmark = pytest.mark.embedded

# The run's final state (reconciliation) -> the state paypipe status reports.
EXPECTED = {
    "PaymentRejected": "rejected",
    "PaymentDeclined": "declined",
    "FundsRefunded": "refunded",
    "PayoutBatched": "paid_out",
    "PayoutNetted": "netted",
    "returned": "returned",
    "review": "in_review",
    "disputed": "disputed",
    "set_aside": "set_aside",
}
PAN, CVV, ACCOUNT = "378282246310005", "7319", "4400718293"


@dataclass
class Demo:
    out: Path
    report: RunReport


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The sample run with the bank's answers: paid out, rejected, declined (its reviews expire), returned."""
    out = tmp_path_factory.mktemp("run")
    report = run_demo(40, seed=7, out_dir=out, bank=BankSimulator(seed=7))
    return Demo(out, report)


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["status", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_payments_state_is_the_one_the_run_reconciled_it_to(demo: Demo):
    states = demo.report.reconciliation.payment_states
    checked = {state for state in states.values() if state in EXPECTED}
    assert {"PaymentRejected", "PaymentDeclined", "PayoutBatched", "returned"} <= checked
    for payment_id, state in states.items():
        if state in EXPECTED:
            found = read_embedded(demo.out, payment_id).state
            assert (payment_id, found.name) == (payment_id, EXPECTED[state])
            assert found.terminal is (state not in {"review", "disputed", "set_aside"})


@pytest.mark.parametrize("state", ["PaymentRejected", "PaymentDeclined", "PayoutBatched", "returned"])
def test_status_prints_the_state_and_each_event_with_its_step_and_facts(demo, capsys, state):
    payment_id = next(p for p, s in demo.report.reconciliation.payment_states.items() if s == state)
    code, out, err = status(capsys, payment_id, "--embedded", str(demo.out))
    assert (code, err) == (0, "")
    head, *lines = out.splitlines()
    assert head.startswith(f"payment {payment_id}: {EXPECTED[state]} ")
    assert any(
        " client " in line and "PaymentRequested" in line and "amount_cents=" in line for line in lines
    )
    if state == "PayoutBatched":
        assert any(
            "PayoutBatched" in line and "trace_number=" in line and "file_key=" in line for line in lines
        )
    if state == "returned":
        assert any("PayoutReturned" in line and "return_code=R" in line for line in lines)
    code, out, _ = status(capsys, payment_id, "--embedded", str(demo.out), "--json")
    view = json.loads(out)
    assert (code, view["payment_id"], view["state"]) == (0, payment_id, EXPECTED[state])
    assert view["timeline"][0]["event_type"] == "PaymentRequested"


def test_an_unknown_payment_is_one_line_and_exit_status_1(demo, capsys):
    code, out, err = status(capsys, "no-such-payment", "--embedded", str(demo.out))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "no-such-payment" in err


def test_a_directory_without_the_run_files_is_exit_status_3(tmp_path, capsys):
    code, _, err = status(capsys, "pay-1", "--embedded", str(tmp_path))
    assert code == 3 and err.count("\n") == 1 and "timeline.jsonl" in err


# -- a refund, a parked request, a forged event --------------------------------------------------


@dataclass
class Small:
    out: Path
    projector_bodies: list[str]
    table_text: str
    pipeline: EmbeddedPipeline


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Small]:
    out = tmp_path_factory.mktemp("small")
    with EmbeddedPipeline() as pipeline:
        request = payment_requested(
            "st-refund", customer_id="c-st", amount_cents=4_200, pan=PAN, cvv=CVV,
            account_number=ACCOUNT, occurred_at=pipeline.clock.now(),
        )  # fmt: skip
        assert pipeline.publish([request]).ok
        # What the projector's queue received, before it ran: the request reduced to its key facts.
        bodies = [m.body for m in peek(pipeline.client("sqs"), pipeline.stack.outputs["ProjectorQueueUrl"])]
        pipeline.drain()
        (held,) = [e for e in pipeline.observed() if isinstance(e, ev.FundsHeld)]
        now = pipeline.clock.now()
        opened = ev.DisputeOpened.create(
            payment_id="st-refund", producer="client", cause=held,
            data=ev.DisputeOpenedData(dispute_id="dsp-st", reason="not delivered"), occurred_at=now,
        )  # fmt: skip
        assert pipeline.publish([opened]).ok
        pipeline.drain()
        refund = ev.DisputeResolvedData(dispute_id="dsp-st", outcome=ev.DisputeOutcome.REFUND)
        resolved = ev.DisputeResolved.create(
            payment_id="st-refund", producer="client", cause=opened, data=refund, occurred_at=now
        )
        # A client forging a step's event: recorded as untrusted, believed by nobody.
        forged = ev.to_detail(held) | {"event_id": "forged-1", "producer": "client"}
        unsupported = ev.to_detail(
            payment_requested("st-parked", customer_id="c-p", amount_cents=900, pan=PAN, occurred_at=now)
        )
        events = pipeline.client("events")
        bus = pipeline.stack.outputs["EventBusName"]
        entries = [("FundsHeld", forged), ("PaymentRequested", unsupported | {"schema_version": "9.0"})]
        assert pipeline.publish([resolved]).ok
        for detail_type, detail in entries:
            events.put_events(
                Entries=[
                    {"EventBusName": bus, "Source": ev.CLIENT_SOURCE, "DetailType": detail_type}
                    | {"Detail": json.dumps(detail)}
                ]
            )
        pipeline.drain()
        write_status_files(pipeline, out)
        yield Small(out, bodies, json.dumps(timeline_items(pipeline)), pipeline)


def test_a_refunded_payment_shows_its_dispute_and_ignores_a_forged_event(small, capsys):
    code, out, _ = status(capsys, "st-refund", "--embedded", str(small.out))
    assert code == 0
    assert out.startswith("payment st-refund: refunded (terminal)")
    assert "DisputeOpened" in out and "HoldFrozen" in out and "FundsRefunded" in out
    (forged,) = [line for line in out.splitlines() if "UNTRUSTED" in line]
    assert "FundsHeld" in forged and " client " in forged


def test_a_parked_payment_shows_its_queue_and_reason(small, capsys):
    code, out, _ = status(capsys, "st-parked", "--embedded", str(small.out), "--json")
    view = json.loads(out)
    assert code == 0 and view["state"] == "requested"
    assert {(p["queue"], p["reason"], p["event_type"]) for p in view["dlq"]} == {
        ("ValidateDLQ", "UnknownEvent", "PaymentRequested")
    }
    code, out, _ = status(capsys, "st-parked", "--embedded", str(small.out))
    assert "parked in ValidateDLQ: UnknownEvent (PaymentRequested" in out


def test_the_projector_queue_and_table_never_hold_card_or_account_numbers(small):
    (request,) = [json.loads(body) for body in small.projector_bodies]
    assert set(request["detail"]["data"]) == {"amount_cents", "currency", "provider_id", "customer"}
    for text in [*small.projector_bodies, small.table_text, (small.out / "dlq.jsonl").read_text()]:
        assert PAN not in text and ACCOUNT not in text and f'"{CVV}"' not in text


def test_status_of_a_stack_reads_its_timeline_table_and_peeks_its_dlqs(small, capsys, monkeypatch):
    """The embedded stack stands in for a deployed one: its DLQs are found by their paypipe:stack
    tag (the embedded stack has no CloudFormation outputs), its table as the output would name it."""
    table = small.pipeline.stack.outputs["TimelineTableName"]
    monkeypatch.setattr("paypipe.ops.status_aws.timeline_table", lambda _aws, _stack: table)
    code, out, _ = status(
        capsys, "st-parked", "--stack", "paypipe-embedded", "--region", "us-east-1", "--json"
    )
    view = json.loads(out)
    assert (code, view["state"]) == (0, "requested")
    assert [(p["queue"], p["reason"]) for p in view["dlq"]] == [("ValidateDLQ", "UnknownEvent")]
    assert PAN not in out
    code, out, _ = status(capsys, "st-refund", "--stack", "paypipe-embedded", "--region", "us-east-1")
    assert code == 0 and out.startswith("payment st-refund: refunded (terminal)")
    depth = small.pipeline.queue_depths()["ValidateDLQUrl"]
    assert depth == 1  # peeked, not taken
    code, _, err = status(capsys, "nobody", "--stack", "paypipe-embedded", "--region", "us-east-1")
    assert code == 1 and err.count("\n") == 1
