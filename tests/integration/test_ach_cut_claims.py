"""The ACH cut claims every payout in the ledger before it writes a file: refused payouts are set
aside (durably, even across a crash) and never stop the others."""

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from paypipe.adapters.account_vault import AccountVault
from paypipe.adapters.payouts_store import PayoutsStore
from paypipe.embedded.evidence import ach_file_entries, ledger
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import card_number, payment_requested
from paypipe.events import models as ev
from tests.integration.scenario_kit import request_distinct

pytestmark = pytest.mark.embedded


def released(
    pipeline: EmbeddedPipeline, count: int, *, own_accounts: bool = False, prefix: str = "c"
) -> list[str]:
    """``count`` payments held and released (their payouts pending), at the pipeline's clock;
    ``own_accounts``: each payee with an account of its own; ids start with ``prefix``."""
    request_distinct(pipeline, count, prefix, own_accounts=own_accounts)
    held = [
        e
        for e in pipeline.observed()
        if isinstance(e, ev.FundsHeld) and e.payment_id.startswith(f"{prefix}-")
    ]
    completions = [
        ev.ServiceCompleted.create(
            payment_id=hold.payment_id,
            data=ev.ServiceCompletedData(completed_at=pipeline.clock.now()),
            producer="client",
            cause=hold,
        )
        for hold in held
    ]
    assert pipeline.publish(completions).ok
    pipeline.drain()
    return sorted(hold.payment_id for hold in held)


def payouts(pipeline: EmbeddedPipeline) -> PayoutsStore:
    return PayoutsStore(pipeline.stack.outputs["PayoutsTableName"], pipeline.client("dynamodb"))


def status(pipeline: EmbeddedPipeline, payment_id: str) -> str:
    item = pipeline.client("dynamodb").get_item(
        TableName=pipeline.stack.outputs["PayoutsTableName"],
        Key={"pk": {"S": f"payout#{payment_id}"}, "sk": {"S": "payout"}},
    )["Item"]
    return str(item["status"]["S"])


def test_payouts_the_ledger_refuses_are_set_aside_and_the_rest_are_filed():
    with EmbeddedPipeline() as pipeline:
        good = released(pipeline, 3)
        store = payouts(pipeline)
        template = store.payouts([good[0]])[0]
        forged = replace(template, payment_id="never-held")
        inflated = good[1]
        store.add_pending(forged, pipeline.clock.now())
        pipeline.client("dynamodb").delete_item(
            TableName=pipeline.stack.outputs["PayoutsTableName"],
            Key={"pk": {"S": f"payout#{inflated}"}, "sk": {"S": "payout"}},
        )
        store.add_pending(
            replace(template, payment_id=inflated, amount_cents=9_999_999), pipeline.clock.now()
        )
        unwritable = replace(template, payment_id="bad-bank", routing_number="123456789")
        store.add_pending(unwritable, pipeline.clock.now())
        # A token the vault never issued, and one of another tenant: no file can carry either.
        store.add_pending(
            replace(template, payment_id="no-account", account_token="acct_unknown"), pipeline.clock.now()
        )
        store.add_pending(replace(template, payment_id="other-tenant", tenant_id="t2"), pipeline.clock.now())

        result = pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=1))
        pipeline.drain()

        entries, _ = ach_file_entries(pipeline)
        paid = sorted(e.amount_cents for e in entries if e.is_credit)
        assert paid == sorted(store.payouts([pid])[0].amount_cents for pid in (good[0], good[2]))
        refused = ("never-held", inflated, "bad-bank", "no-account", "other-tenant")
        assert {status(pipeline, pid) for pid in refused} == {"set_aside"}
        # before any claim; the others at the claim
        assert sorted(result["set_aside"]) == ["bad-bank", "no-account", "other-tenant"]
        reasons = {e.payment_id: e.data.reason for e in pipeline.observed() if isinstance(e, ev.ItemSetAside)}
        assert reasons == {
            "bad-bank": "UNWRITABLE",
            "no-account": "ACCOUNT_UNAVAILABLE",
            "other-tenant": "ACCOUNT_UNAVAILABLE",
            "never-held": "NO_HOLD",
            inflated: "AMOUNT_MISMATCH",
        }
        assert store.pending() == [] and store.open_batches() == []
        assert ledger(pipeline).get_hold(inflated).payout_ref is None  # type: ignore[union-attr]


def test_a_payout_held_back_stays_out_of_its_batch_across_a_crash_and_is_paid_once_free(monkeypatch):
    with EmbeddedPipeline() as pipeline:
        first, disputed = released(pipeline, 2)
        opened = ev.DisputeOpened.create(
            payment_id=disputed, data=ev.DisputeOpenedData(dispute_id="d1", reason="r"), producer="client"
        )
        assert pipeline.publish([opened]).ok
        pipeline.drain()
        crashes = []

        def crash_once(self, pending):
            if not crashes:
                crashes.append(pending.payout.payment_id)
                raise RuntimeError("the cut died after excluding the member")
            return original(self, pending)

        original = PayoutsStore.block
        monkeypatch.setattr(PayoutsStore, "block", crash_once)
        pipeline.run_schedule(
            "AchCutFunction", pipeline.clock.now() + timedelta(days=1)
        )  # retried like Lambda
        pipeline.drain()
        assert crashes == [disputed]
        assert status(pipeline, disputed) == "blocked"
        (file_entry,) = [e for e in ach_file_entries(pipeline)[0] if e.is_credit]
        assert file_entry.amount_cents == payouts(pipeline).payouts([first])[0].amount_cents

        resolved = ev.DisputeResolved.create(
            payment_id=disputed,
            data=ev.DisputeResolvedData(dispute_id="d1", outcome=ev.DisputeOutcome.RELEASE),
            producer="client",
        )
        assert pipeline.publish([resolved]).ok
        pipeline.drain()
        pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=1))
        pipeline.drain()
        credits = [e for e in ach_file_entries(pipeline)[0] if e.is_credit]
        assert len(credits) == 2
        batched = [e for e in pipeline.observed() if isinstance(e, ev.PayoutBatched)]
        assert sorted(e.payment_id for e in batched) == sorted([first, disputed])


def test_a_hold_the_sweep_cannot_read_is_set_aside_and_the_others_still_expire():
    with EmbeddedPipeline() as pipeline:
        import random

        rng = random.Random(3)
        now = pipeline.clock.now()
        requests = [
            payment_requested(
                f"s-{index}",
                customer_id=f"sc-{index}",
                amount_cents=7_000,
                pan=card_number(rng),
                occurred_at=now + timedelta(seconds=index),
                ip_address=f"192.0.2.{index + 50}",
            )
            for index in range(3)
        ]
        assert pipeline.play(requests).ok
        pipeline.drain()
        table = pipeline.stack.outputs["LedgerTableName"]
        pipeline.client("dynamodb").update_item(  # a hold item damaged by hand
            TableName=table,
            Key={"pk": {"S": "ledger#payment#s-0"}, "sk": {"S": "hold"}},
            UpdateExpression="REMOVE amount_cents",
        )
        hold_days = int(pipeline.stack.parameters["HoldDays"])
        result = pipeline.run_schedule("ReleaseSweepFunction", now + timedelta(days=hold_days + 1))
        pipeline.drain()
        assert result == {"expiries_published": 2, "disputes_aged": 0, "set_aside": 1}
        released = sorted(e.payment_id for e in pipeline.observed() if isinstance(e, ev.FundsReleased))
        assert released == ["s-1", "s-2"]
        (aside,) = [e for e in pipeline.observed() if isinstance(e, ev.ItemSetAside)]
        assert (aside.payment_id, aside.data.job, aside.data.reason) == (
            "s-0",
            "release_sweep",
            "UNREADABLE_HOLD",
        )
        again = pipeline.run_schedule("ReleaseSweepFunction", now + timedelta(days=hold_days + 1, minutes=5))
        assert again == {"expiries_published": 0, "disputes_aged": 0, "set_aside": 0}  # out of the index


def _throttled() -> ClientError:
    error = {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}
    return ClientError({"Error": error}, "GetItem")


def test_a_payee_account_the_vault_throttles_waits_for_the_next_cut_and_the_others_are_filed(monkeypatch):
    with EmbeddedPipeline() as pipeline:
        good = released(pipeline, 4, own_accounts=True)
        stuck = good[0]
        stuck_token = payouts(pipeline).payouts([stuck])[0].account_token
        calls: Counter[str] = Counter()
        original = AccountVault.detokenize

        def throttling(self, token, *, tenant):
            calls[token] += 1
            if token == stuck_token or calls[token] == 1:  # every account once; one account always
                raise _throttled()
            return original(self, token, tenant=tenant)

        monkeypatch.setattr(AccountVault, "detokenize", throttling)
        monkeypatch.setattr("paypipe.runtime.retry.wait_random_exponential", lambda **_: lambda _: 0)
        first = pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=1))
        pipeline.drain()
        assert isinstance(first, dict), first  # the cut finished
        filed = {e.payment_id for e in pipeline.observed() if isinstance(e, ev.PayoutBatched)}
        assert filed == set(good) - {stuck}
        assert status(pipeline, stuck) == "pending"
        assert not [e for e in pipeline.observed() if isinstance(e, ev.ItemSetAside)]

        monkeypatch.setattr(AccountVault, "detokenize", original)
        pipeline.run_schedule("AchCutFunction", pipeline.clock.now() + timedelta(days=2))
        pipeline.drain()
        credits = [e for e in ach_file_entries(pipeline)[0] if e.is_credit]
        assert len(credits) == len(good)
