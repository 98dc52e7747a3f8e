"""The ledger's stateful property test run against the DynamoDB store (moto): every command goes
to the pure core over the whole ledger (the model) and to the store, which decides it over one
payment's item; both must answer alike and hold the same holds, journal and balances."""

import os
from typing import Any

import boto3
from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant, rule
from moto import mock_aws

from paypipe.adapters.ledger_store import LedgerStore
from paypipe.domain.ledger import AccountKind, Applied, Duplicate, Outcome, Rejected
from tests.tables import create_table
from tests.unit.test_ledger import Command, LedgerMachine, balances

TABLE = "ledger-machine"


def same_answer(model: Outcome, stored: Outcome) -> bool:
    match model, stored:
        case Applied(), Applied():
            return (model.hold, model.transfers) == (stored.hold, stored.transfers)
        case Duplicate(), Duplicate():
            return model == stored
        case Rejected(), Rejected():
            return model.reason is stored.reason
    return False


class StoreMachine(LedgerMachine):
    def __init__(self) -> None:
        super().__init__()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "testing")
        self.mock = mock_aws()
        self.mock.start()
        client: Any = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE, gsi=True)
        self.store = LedgerStore(TABLE, client, sleep=lambda _: None)

    def teardown(self) -> None:
        self.mock.stop()

    def _send(self, command: Command) -> Outcome:
        model = super()._send(command)
        name, args = command
        stored = getattr(self.store, name)(**args)
        assert same_answer(model, stored), (command, model, stored)
        return model

    @rule()
    def sweep(self) -> None:
        due = sorted(h.payment_id for h in self.state.holds.values() if h.is_due(self.now))
        super().sweep()
        swept = self.store.release_due(self.now, limit=100)
        assert sorted(o.hold.payment_id for o in swept if isinstance(o, Applied)) == due

    @invariant()
    def the_store_holds_what_the_model_holds(self) -> None:
        assert {h.payment_id: h for h in self.store.holds()} == dict(self.state.holds)
        assert {t.transfer_id: t for t in self.store.all_transfers()} == dict(self.state.transfers)
        assert {a: c for a, c in self.store.balances().items() if c} == balances(self.state)
        stored = self.store.stored_balances()
        assert {a: c for a, c in stored.items() if c} == {
            a: c for a, c in balances(self.state).items() if a.kind is AccountKind.CLAWBACK
        }


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=15, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
