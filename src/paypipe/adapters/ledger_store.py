"""Escrow ledger persisted in DynamoDB; every decision is made by ``paypipe.domain.ledger``.

Items (table keys ``pk``/``sk``, index ``gsi1`` on ``gsi1pk``/``gsi1sk``):
- ``ledger#payment#<payment id>`` / ``hold``: the payment's item. Its hold (disputes, returned
  payouts, optimistic ``version``) and its ``journal``: every transfer of the payment as a compact
  entry (id after ``<payment id>:``, kind, time, reference, postings ``<account kind>:<signed
  cents>``; the owner and currency are the hold's). While HELD it sits in gsi1 under
  ``ledger#hold#due#<shard>`` sorted by ``<hold_until>#<payment id>``, otherwise while a dispute is
  open under ``ledger#dispute#open#<shard>`` sorted by ``<oldest open dispute not yet signalled as
  aged>#<payment id>`` (the shard: ``paypipe.adapters.dynamo_index.shard_key`` of the payment id,
  so no index partition takes every payment's writes).
- ``ledger#account#<currency>#clawback#<provider>`` / ``balance``: ``balance_cents`` (credits -
  debits) of a provider's clawback account, the one balance a decision reads across payments (a
  payout nets it).

No item is written by every payment. Pool accounts (card clearing, escrow, disputes, settlement),
customer and provider accounts are not stored: their balance is the sum of the payments' journals
(``balances``), and each payment's own share of a non-negative account never goes below zero (the
core checks the command against that share), so neither does the sum.

A command reads the payment's item (and for a payout the provider's clawback balance), runs the
pure core and writes the item whole with one conditional PutItem under the version check; only
when a transfer posts to a clawback account does it become a TransactWriteItems with that
account's ``ADD`` delta (for a payout, guarded by the balance its netting read). When a condition
fails (a duplicate or concurrent command won) the command is re-read and re-decided: the core then
answers ``Duplicate`` or ``Rejected``, or the write is retried.
"""

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from paypipe.adapters.dynamo_index import query_shards, shard_key
from paypipe.domain import ledger
from paypipe.domain.ledger import (
    AccountId,
    AccountKind,
    Applied,
    Dispute,
    DisputeOutcome,
    DisputePhase,
    Hold,
    HoldRequest,
    HoldStatus,
    LedgerState,
    Outcome,
    PayoutReturn,
    Posting,
    ReturnedPayout,
    Side,
    Transfer,
    TransferKind,
    balance_deltas,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        PutTypeDef,
        TransactWriteItemTypeDef,
        UpdateTypeDef,
    )

    type Item = dict[str, AttributeValueTypeDef]

DUE_INDEX = "gsi1"
DUE_INDEX_KEY = "ledger#hold#due"
DISPUTE_INDEX_KEY = "ledger#dispute#open"
_ALL_SIGNALLED = "~"  # sorts after every time: a hold whose open disputes were all signalled as aged
PAYMENT_PK_PREFIX = "ledger#payment#"
HOLD_SK = "hold"
JOURNAL = "journal"
BALANCE_SK = "balance"
ACCOUNT_PK_PREFIX = "ledger#account#"
_PROVIDER_KINDS = frozenset({AccountKind.PROVIDER, AccountKind.CLAWBACK})
_STORED_KINDS = frozenset({AccountKind.CLAWBACK})  # kept as one item per provider (payouts net it)
_ACCOUNT_FILTER: "Item" = {":prefix": {"S": ACCOUNT_PK_PREFIX}, ":balance": {"S": BALANCE_SK}}
_RETRYABLE_CANCELLATIONS = frozenset({"None", "ConditionalCheckFailed", "TransactionConflict"})
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so string order is time order


class LedgerContentionError(RuntimeError):
    """Optimistic writes kept losing to concurrent commands; safe to retry the command later."""


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _payment_pk(payment_id: str) -> str:
    return f"{PAYMENT_PK_PREFIX}{payment_id}"


def _account_key(account: AccountId) -> "Item":
    pk = f"{ACCOUNT_PK_PREFIX}{account.currency}#{account.kind}#{account.owner}"
    return {"pk": {"S": pk}, "sk": {"S": BALANCE_SK}}


def _s(value: str) -> "AttributeValueTypeDef":
    return {"S": value}


def _n(value: int) -> "AttributeValueTypeDef":
    return {"N": str(value)}


def _optional_times(**moments: datetime | None) -> "Item":
    return {name: _s(_time(moment)) for name, moment in moments.items() if moment is not None}


def _hold_item(hold: Hold) -> "Item":
    item: Item = {
        "pk": _s(_payment_pk(hold.payment_id)),
        "sk": _s(HOLD_SK),
        "payment_id": _s(hold.payment_id),
        "customer_id": _s(hold.customer_id),
        "provider_id": _s(hold.provider_id),
        "amount_cents": _n(hold.amount_cents),
        "currency": _s(hold.currency),
        "hold_until": _s(_time(hold.hold_until)),
        "held_at": _s(_time(hold.held_at)),
        "status": _s(hold.status),
        "version": _n(hold.version),
        "disputes": {"L": [{"M": _dispute_item(d)} for d in hold.disputes]},
        "returned_payouts": {"L": [{"M": _returned_payout_item(r)} for r in hold.returned_payouts]},
        "released_cents": _n(hold.released_cents),
        "refunded_cents": _n(hold.refunded_cents),
        "reversed_cents": _n(hold.reversed_cents),
        "paid_out_cents": _n(hold.paid_out_cents),
        "netted_cents": _n(hold.netted_cents),
        "card_fee_cents": _n(hold.card_fee_cents),
        **_optional_times(
            updated_at=hold.updated_at,
            resolved_at=hold.resolved_at,
            reversed_at=hold.reversed_at,
            paid_out_at=hold.paid_out_at,
        ),
    }
    if hold.resolution_id is not None:
        item["resolution_id"] = _s(hold.resolution_id)
    if hold.payout_ref is not None:
        item["payout_ref"] = _s(hold.payout_ref)
    item.update(_index_entry(hold))
    return item


def _index_entry(hold: Hold) -> "Item":
    """gsi1 keys: the due index while HELD, else the open-dispute index while a dispute is open;
    each index is spread over shards by payment id."""
    if hold.status is HoldStatus.HELD:
        sort_key = f"{_time(hold.hold_until)}#{hold.payment_id}"
        return {"gsi1pk": _s(shard_key(DUE_INDEX_KEY, hold.payment_id)), "gsi1sk": _s(sort_key)}
    unsignalled = [d.opened_at for d in hold.open_disputes() if d.aged_at is None]
    if not hold.open_disputes():
        return {}
    oldest = _time(min(unsignalled)) if unsignalled else _ALL_SIGNALLED
    index_key = shard_key(DISPUTE_INDEX_KEY, hold.payment_id)
    return {"gsi1pk": _s(index_key), "gsi1sk": _s(f"{oldest}#{hold.payment_id}")}


def _dispute_item(dispute: Dispute) -> "Item":
    item: Item = {
        "dispute_id": _s(dispute.dispute_id),
        "phase": _s(dispute.phase),
        "opened_at": _s(_time(dispute.opened_at)),
        "episode": _s(dispute.episode),
        **_optional_times(closed_at=dispute.closed_at, aged_at=dispute.aged_at),
    }
    if dispute.outcome is not None:
        item["outcome"] = _s(dispute.outcome)
    if dispute.network:
        item["network"] = {"BOOL": True}
    if dispute.after_refund:
        item["after_refund"] = {"BOOL": True}
    return item


def _returned_payout_item(returned: ReturnedPayout) -> "Item":
    return {
        "attempt": _n(returned.attempt),
        "payout_ref": _s(returned.payout_ref),
        "trace_number": _s(returned.trace_number),
        "return_code": _s(returned.return_code),
        "paid_out_cents": _n(returned.paid_out_cents),
        "netted_cents": _n(returned.netted_cents),
        "paid_out_at": _s(_time(returned.paid_out_at)),
        "returned_at": _s(_time(returned.returned_at)),
    }


def _parse_returned_payout(item: "Item") -> ReturnedPayout:
    return ReturnedPayout(
        attempt=int(item["attempt"]["N"]),
        payout_ref=item["payout_ref"]["S"],
        trace_number=item["trace_number"]["S"],
        return_code=item["return_code"]["S"],
        paid_out_cents=int(item["paid_out_cents"]["N"]),
        netted_cents=int(item["netted_cents"]["N"]),
        paid_out_at=_parse_time(item["paid_out_at"]["S"]),
        returned_at=_parse_time(item["returned_at"]["S"]),
    )


def _parse_dispute(item: "Item") -> Dispute:
    outcome = _optional_str(item, "outcome")
    return Dispute(
        dispute_id=item["dispute_id"]["S"],
        phase=DisputePhase(item["phase"]["S"]),
        opened_at=_parse_time(item["opened_at"]["S"]),
        episode=item["episode"]["S"],
        outcome=DisputeOutcome(outcome) if outcome else None,
        closed_at=_optional_time(item, "closed_at"),
        aged_at=_optional_time(item, "aged_at"),
        network=item.get("network", {}).get("BOOL", False),
        after_refund=item.get("after_refund", {}).get("BOOL", False),
    )


def _parse_disputes(item: "Item") -> tuple[Dispute, ...]:
    if "disputes" in item:
        return tuple(_parse_dispute(entry["M"]) for entry in item["disputes"]["L"])
    # Items written before disputes had phases: their open disputes froze the hold.
    held_at = _parse_time(item["held_at"]["S"])
    legacy = item.get("open_disputes", {"L": []})["L"]
    return tuple(Dispute(v["S"], DisputePhase.ESCROW, held_at, v["S"]) for v in legacy)


def _optional_str(item: "Item", name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _optional_time(item: "Item", name: str) -> datetime | None:
    return _parse_time(item[name]["S"]) if name in item else None


def _optional_int(item: "Item", name: str) -> int:
    return int(item[name]["N"]) if name in item else 0


def _parse_hold(item: "Item") -> Hold:
    return Hold(
        payment_id=item["payment_id"]["S"],
        customer_id=item["customer_id"]["S"],
        provider_id=item["provider_id"]["S"],
        amount_cents=int(item["amount_cents"]["N"]),
        currency=item["currency"]["S"],
        hold_until=_parse_time(item["hold_until"]["S"]),
        held_at=_parse_time(item["held_at"]["S"]),
        status=HoldStatus(item["status"]["S"]),
        version=int(item["version"]["N"]),
        updated_at=_optional_time(item, "updated_at"),
        disputes=_parse_disputes(item),
        resolution_id=_optional_str(item, "resolution_id"),
        resolved_at=_optional_time(item, "resolved_at"),
        released_cents=int(item["released_cents"]["N"]),
        refunded_cents=int(item["refunded_cents"]["N"]),
        reversed_cents=_optional_int(item, "reversed_cents"),
        reversed_at=_optional_time(item, "reversed_at"),
        payout_ref=_optional_str(item, "payout_ref"),
        paid_out_cents=int(item["paid_out_cents"]["N"]),
        netted_cents=_optional_int(item, "netted_cents"),
        paid_out_at=_optional_time(item, "paid_out_at"),
        returned_payouts=tuple(
            _parse_returned_payout(entry["M"]) for entry in item.get("returned_payouts", {"L": []})["L"]
        ),
        card_fee_cents=_optional_int(item, "card_fee_cents"),
    )


def _owner(hold: Hold, kind: AccountKind) -> str:
    if kind is AccountKind.CUSTOMER:
        return hold.customer_id
    return hold.provider_id if kind in _PROVIDER_KINDS else ""


def _journal_entry(hold: Hold, transfer: Transfer) -> "AttributeValueTypeDef":
    """A transfer as a compact map: id suffix, kind, time, reference, postings ``<kind>:<signed>``."""
    prefix = f"{hold.payment_id}:"
    if not transfer.transfer_id.startswith(prefix) or transfer.payment_id != hold.payment_id:
        raise ValueError(f"transfer {transfer.transfer_id} is not of payment {hold.payment_id}")
    for posting in transfer.postings:
        if posting.account.owner != _owner(hold, posting.account.kind):
            raise ValueError(f"transfer {transfer.transfer_id} posts to {posting.account}, not the payment's")
    entry: Item = {
        "i": _s(transfer.transfer_id.removeprefix(prefix)),
        "k": _s(transfer.kind),
        "t": _s(_time(transfer.at)),
        "p": {"L": [_s(f"{p.account.kind}:{p.signed_cents}") for p in transfer.postings]},
    }
    if transfer.reference is not None:
        entry["r"] = _s(transfer.reference)
    return {"M": entry}


def _parse_posting(hold: Hold, text: str) -> Posting:
    kind_text, _, signed_text = text.partition(":")
    kind = AccountKind(kind_text)
    signed = int(signed_text)
    side = Side.CREDIT if signed > 0 else Side.DEBIT
    return Posting(AccountId(kind, hold.currency, _owner(hold, kind)), side, abs(signed))


def _parse_journal(hold: Hold, item: "Item") -> list[Transfer]:
    return [
        Transfer(
            transfer_id=f"{hold.payment_id}:{entry['i']['S']}",
            kind=TransferKind(entry["k"]["S"]),
            payment_id=hold.payment_id,
            currency=hold.currency,
            postings=tuple(_parse_posting(hold, p["S"]) for p in entry["p"]["L"]),
            at=_parse_time(entry["t"]["S"]),
            reference=_optional_str(entry, "r"),
        )
        for entry in (value["M"] for value in item.get(JOURNAL, {"L": []})["L"])
    ]


def _payment_item(hold: Hold, journal: Iterable[Transfer]) -> "Item":
    return _hold_item(hold) | {JOURNAL: {"L": [_journal_entry(hold, t) for t in journal]}}


class LedgerStore:
    def __init__(
        self,
        table_name: str,
        client: "DynamoDBClient",
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 0.02,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table_name
        self._client = client
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._sleep = sleep

    # --- commands ---------------------------------------------------------------------------------

    def place_hold(self, request: HoldRequest) -> Outcome:
        return self._execute(request.payment_id, lambda state: ledger.place_hold(state, request))

    def release(
        self, payment_id: str, *, amount_cents: int | None = None, resolution_id: str, at: datetime
    ) -> Outcome:
        return self._execute(
            payment_id,
            lambda state: ledger.release(
                state, payment_id, amount_cents=amount_cents, resolution_id=resolution_id, at=at
            ),
        )

    def refund(self, payment_id: str, *, resolution_id: str, at: datetime) -> Outcome:
        return self._execute(
            payment_id, lambda state: ledger.refund(state, payment_id, resolution_id=resolution_id, at=at)
        )

    def open_dispute(
        self,
        payment_id: str,
        *,
        dispute_id: str,
        at: datetime,
        window: timedelta | None = None,
        network: bool = False,
        network_fee_cents: int = 0,
    ) -> Outcome:
        return self._execute(
            payment_id,
            lambda state: ledger.open_dispute(
                state,
                payment_id,
                dispute_id=dispute_id,
                at=at,
                window=window,
                network=network,
                network_fee_cents=network_fee_cents,
            ),
        )

    def resolve_dispute(
        self,
        payment_id: str,
        *,
        dispute_id: str,
        outcome: DisputeOutcome,
        at: datetime,
        network: bool = False,
    ) -> Outcome:
        return self._execute(
            payment_id,
            lambda state: ledger.resolve_dispute(
                state, payment_id, dispute_id=dispute_id, outcome=outcome, at=at, network=network
            ),
        )

    def return_to_card(self, payment_id: str, *, refund_id: str, amount_cents: int, at: datetime) -> Outcome:
        return self._execute(
            payment_id,
            lambda state: ledger.return_to_card(
                state, payment_id, refund_id=refund_id, amount_cents=amount_cents, at=at
            ),
        )

    def mark_dispute_aged(self, payment_id: str, *, dispute_id: str, at: datetime) -> Outcome:
        return self._execute(
            payment_id,
            lambda state: ledger.mark_dispute_aged(state, payment_id, dispute_id=dispute_id, at=at),
        )

    def expire(self, payment_id: str, *, as_of: datetime) -> Outcome:
        return self._execute(payment_id, lambda state: ledger.expire(state, payment_id, as_of=as_of))

    def record_payout(
        self,
        payment_id: str,
        *,
        amount_cents: int,
        payout_ref: str,
        at: datetime,
        max_entry_cents: int | None = None,
    ) -> Outcome:
        return self._execute(
            payment_id,
            lambda state: ledger.record_payout(
                state,
                payment_id,
                amount_cents=amount_cents,
                payout_ref=payout_ref,
                at=at,
                max_entry_cents=max_entry_cents,
            ),
            reads_clawback=True,
        )

    def return_payout(self, command: PayoutReturn) -> Outcome:
        return self._execute(command.payment_id, lambda state: ledger.return_payout(state, command))

    def release_due(self, as_of: datetime, limit: int) -> list[Outcome]:
        """The expiry sweep: release up to ``limit`` due holds, oldest first."""
        return [self.expire(payment_id, as_of=as_of) for payment_id in self.due_holds(as_of, limit)]

    # --- queries ----------------------------------------------------------------------------------

    def due_holds(self, as_of: datetime, limit: int) -> list[str]:
        """Payment ids of HELD holds with ``hold_until <= as_of`` (gsi1 is eventually consistent)."""
        return self._index_before(DUE_INDEX_KEY, as_of, limit)

    def aged_disputes(self, opened_before: datetime, limit: int) -> list[str]:
        """Payment ids with an open dispute opened at or before the time, not yet signalled as aged."""
        return self._index_before(DISPUTE_INDEX_KEY, opened_before, limit)

    def set_aside(self, payment_id: str, *, reason: str) -> None:
        """Take a hold that cannot be read out of the indexes (the sweep goes on without it); the
        item is kept as it is, marked with the reason, for an operator."""
        self._client.update_item(
            TableName=self._table,
            Key={"pk": _s(_payment_pk(payment_id)), "sk": _s(HOLD_SK)},
            UpdateExpression="SET set_aside = :reason REMOVE gsi1pk, gsi1sk",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":reason": _s(reason)},
        )

    def _index_before(self, key: str, moment: datetime, limit: int) -> list[str]:
        """The ``limit`` first entries before ``moment`` over every shard of the index, in sort order."""
        # '$' sorts right after the '#' separator, so a time equal to ``moment`` is included
        items = query_shards(
            self._client, self._table, key, index=DUE_INDEX, before=f"{_time(moment)}$", limit=limit
        )
        return [item["pk"]["S"].removeprefix(PAYMENT_PK_PREFIX) for item in items]

    def get_hold(self, payment_id: str) -> Hold | None:
        return self._load_payment(payment_id)[0]

    def transfers(self, payment_id: str) -> list[Transfer]:
        """The payment's journal in time order."""
        return _in_time_order(self._load_payment(payment_id)[1])

    def balance(self, account: AccountId) -> int:
        """A provider's clawback balance is stored; any other account is summed over the journals
        (a full Scan, see ``balances``)."""
        if account.kind is AccountKind.CLAWBACK:
            return self._load_clawback(account)
        return self.balances().get(account, 0)

    def verify_balanced(self) -> dict[str, int]:
        """Sum of all balances per currency; every value must be 0.

        A full consistent Scan: it is not a snapshot, so run it while writes are quiet
        or treat a non-zero total as a reason to re-check rather than as proof of loss.
        """
        totals: dict[str, int] = {}
        for account, cents in self.balances().items():
            totals[account.currency] = totals.get(account.currency, 0) + cents
        return totals

    def balances(self) -> dict[AccountId, int]:
        """Every account's balance as the sum of the payments' journals (a full consistent Scan;
        see ``verify_balanced``). Pool accounts exist only as this sum."""
        deltas = balance_deltas(self.all_transfers())
        return {account: cents for account, cents in sorted(deltas.items())}

    def stored_balances(self) -> dict[AccountId, int]:
        """The balances kept as items (each provider's clawback account), for reconciliation
        against ``balances``."""
        found: dict[AccountId, int] = {}
        for item in self._scan("begins_with(pk, :prefix) AND sk = :balance", _ACCOUNT_FILTER):
            account = AccountId(
                AccountKind(item["account_kind"]["S"]), item["currency"]["S"], item["owner"]["S"]
            )
            found[account] = int(item["balance_cents"]["N"])
        return found

    def holds(self) -> list[Hold]:
        """Every hold (a full Scan, for reconciliation)."""
        return [hold for hold, _ in self._payments()]

    def all_transfers(self) -> list[Transfer]:
        """Every payment's journal entries (a full Scan, for reconciliation)."""
        return _in_time_order(t for _, journal in self._payments() for t in journal)

    def _payments(self) -> list[tuple[Hold, list[Transfer]]]:
        found = []
        for item in self._scan("sk = :hold", {":hold": _s(HOLD_SK)}):
            hold = _parse_hold(item)
            found.append((hold, _parse_journal(hold, item)))
        return found

    def _scan(self, condition: str, values: "Item") -> list["Item"]:
        return [
            item
            for page in self._client.get_paginator("scan").paginate(
                TableName=self._table,
                ConsistentRead=True,
                FilterExpression=condition,
                ExpressionAttributeValues=values,
            )
            for item in page.get("Items", [])
        ]

    # --- plumbing ---------------------------------------------------------------------------------

    def _execute(
        self,
        payment_id: str,
        command: Callable[[LedgerState], Outcome],
        *,
        reads_clawback: bool = False,
    ) -> Outcome:
        for attempt in range(self._max_attempts):
            hold, journal = self._load_payment(payment_id)
            balances = balance_deltas(journal)  # the payment's own share of each account
            seen: dict[AccountId, int] = {}
            if hold is not None and reads_clawback:
                clawback = AccountId.clawback(hold.provider_id, hold.currency)
                balances[clawback] = seen[clawback] = self._load_clawback(clawback)
            state = LedgerState(
                holds={payment_id: hold} if hold is not None else {},
                balances=balances,
                transfers={t.transfer_id: t for t in journal},
            )
            outcome = command(state)
            if not isinstance(outcome, Applied):
                return outcome
            if self._write(outcome, [*journal, *outcome.transfers], seen):
                return outcome
            if attempt + 1 < self._max_attempts:
                self._sleep(self._backoff_seconds * 2**attempt)
        raise LedgerContentionError(f"gave up on payment {payment_id} after {self._max_attempts} attempts")

    def _write(self, applied: Applied, journal: Sequence[Transfer], seen: Mapping[AccountId, int]) -> bool:
        """Write the payment item under its version check, and the clawback delta if any, in one
        transaction only then; False when a condition lost to another writer."""
        put = self._payment_put(applied, journal)
        updates = [
            self._clawback_update(account, delta, seen.get(account))
            for account, delta in sorted(balance_deltas(applied.transfers).items())
            if account.kind in _STORED_KINDS
        ]
        try:
            if not updates:
                self._client.put_item(**put)
                return True
            items: list[TransactWriteItemTypeDef] = [{"Put": put}]
            items.extend({"Update": update} for update in updates)
            self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                return False
            if code != "TransactionCanceledException":
                raise
            reasons = {reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])}
            if not reasons <= _RETRYABLE_CANCELLATIONS:
                raise
            return False
        return True

    def _payment_put(self, applied: Applied, journal: Sequence[Transfer]) -> "PutTypeDef":
        expected = applied.expected_hold_version
        put: PutTypeDef = {"TableName": self._table, "Item": _payment_item(applied.hold, journal)}
        if expected == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :expected"
            put["ExpressionAttributeValues"] = {":expected": _n(expected)}
        return put

    def _clawback_update(self, account: AccountId, delta: int, seen: int | None) -> "UpdateTypeDef":
        """ADD the delta; when the decision read the balance (a payout's netting), only onto that
        balance, so a concurrent change makes the command decide again."""
        values: dict[str, AttributeValueTypeDef] = {
            ":delta": _n(delta),
            ":kind": _s(account.kind),
            ":currency": _s(account.currency),
            ":owner": _s(account.owner),
        }
        update: UpdateTypeDef = {
            "TableName": self._table,
            "Key": _account_key(account),
            "UpdateExpression": "ADD balance_cents :delta SET account_kind = :kind, currency = :currency, "
            "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": values,
        }
        if seen is not None:
            values[":seen"] = _n(seen)
            update["ConditionExpression"] = (
                "balance_cents = :seen" if seen else "attribute_not_exists(pk) OR balance_cents = :seen"
            )
        return update

    def _load_payment(self, payment_id: str) -> tuple[Hold | None, list[Transfer]]:
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": _s(_payment_pk(payment_id)), "sk": _s(HOLD_SK)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None, []
        hold = _parse_hold(item)
        return hold, _parse_journal(hold, item)

    def _load_clawback(self, account: AccountId) -> int:
        response = self._client.get_item(
            TableName=self._table, Key=_account_key(account), ConsistentRead=True
        )
        item = response.get("Item")
        return int(item["balance_cents"]["N"]) if item is not None else 0


def _in_time_order(transfers: Iterable[Transfer]) -> list[Transfer]:
    return sorted(transfers, key=lambda t: (t.at, t.transfer_id))
