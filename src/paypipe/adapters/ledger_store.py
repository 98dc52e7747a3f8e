"""Escrow ledger persisted in DynamoDB; every decision is made by ``paypipe.domain.ledger``.

Items (table keys ``pk``/``sk``, index ``gsi1`` on ``gsi1pk``/``gsi1sk``):
- ``ledger#payment#<payment id>`` / ``hold``: the hold, its disputes, returned payouts and its optimistic
  ``version``; while HELD it sits in gsi1 under ``ledger#hold#due`` sorted by
  ``<hold_until>#<payment id>``, otherwise while a dispute is open under ``ledger#dispute#open``
  sorted by ``<oldest open dispute not yet signalled as aged>#<payment id>``.
- ``ledger#payment#<payment id>`` / ``transfer#<transfer id>``: one journal entry (balanced
  postings); written once, guarded by ``attribute_not_exists``.
- ``ledger#account#<currency>#<kind>#<owner>`` / ``balance``: ``balance_cents`` (credits -
  debits) and a write counter ``version``.

A command reads the payment's items and balances, runs the pure core and writes its result
in one TransactWriteItems: the hold under a version check, new transfers under
``attribute_not_exists``, balances as atomic ``ADD`` deltas where a debit of a non-negative
account is guarded by ``balance_cents >= :debit``. Shared pool accounts (escrow, card
clearing, settlement) are therefore not version-locked, so concurrent payments do not
contend on them. When the transaction is cancelled (a duplicate or concurrent command won)
the command is re-read and re-decided: the core then answers ``Duplicate`` or ``Rejected``,
or the write is retried.
"""

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

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
HOLD_SK = "hold"
TRANSFER_SK_PREFIX = "transfer#"
BALANCE_SK = "balance"
ACCOUNT_PK_PREFIX = "ledger#account#"
_RETRYABLE_CANCELLATIONS = frozenset({"None", "ConditionalCheckFailed", "TransactionConflict"})
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so string order is time order


class LedgerContentionError(RuntimeError):
    """Optimistic writes kept losing to concurrent commands; safe to retry the command later."""


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _payment_pk(payment_id: str) -> str:
    return f"ledger#payment#{payment_id}"


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
    """gsi1 keys: the due index while HELD, else the open-dispute index while a dispute is open."""
    if hold.status is HoldStatus.HELD:
        return {"gsi1pk": _s(DUE_INDEX_KEY), "gsi1sk": _s(f"{_time(hold.hold_until)}#{hold.payment_id}")}
    unsignalled = [d.opened_at for d in hold.open_disputes() if d.aged_at is None]
    if not hold.open_disputes():
        return {}
    oldest = _time(min(unsignalled)) if unsignalled else _ALL_SIGNALLED
    return {"gsi1pk": _s(DISPUTE_INDEX_KEY), "gsi1sk": _s(f"{oldest}#{hold.payment_id}")}


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
    )


def _transfer_item(transfer: Transfer) -> "Item":
    item: Item = {
        "pk": _s(_payment_pk(transfer.payment_id)),
        "sk": _s(f"{TRANSFER_SK_PREFIX}{transfer.transfer_id}"),
        "transfer_id": _s(transfer.transfer_id),
        "kind": _s(transfer.kind),
        "payment_id": _s(transfer.payment_id),
        "currency": _s(transfer.currency),
        "at": _s(_time(transfer.at)),
        "postings": {
            "L": [
                {
                    "M": {
                        "account_kind": _s(p.account.kind),
                        "owner": _s(p.account.owner),
                        "side": _s(p.side),
                        "amount_cents": _n(p.amount_cents),
                    }
                }
                for p in transfer.postings
            ]
        },
    }
    if transfer.reference is not None:
        item["reference"] = _s(transfer.reference)
    return item


def _parse_transfer(item: "Item") -> Transfer:
    currency = item["currency"]["S"]
    postings = tuple(
        Posting(
            AccountId(AccountKind(p["account_kind"]["S"]), currency, p["owner"]["S"]),
            Side(p["side"]["S"]),
            int(p["amount_cents"]["N"]),
        )
        for p in (entry["M"] for entry in item["postings"]["L"])
    )
    return Transfer(
        transfer_id=item["transfer_id"]["S"],
        kind=TransferKind(item["kind"]["S"]),
        payment_id=item["payment_id"]["S"],
        currency=currency,
        postings=postings,
        at=_parse_time(item["at"]["S"]),
        reference=_optional_str(item, "reference"),
    )


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
        try:
            accounts = ledger.payment_accounts(request.customer_id, request.provider_id, request.currency)
        except ValueError:
            accounts = ()  # the core rejects the request as invalid
        return self._execute(request.payment_id, lambda state: ledger.place_hold(state, request), accounts)

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
        self, payment_id: str, *, dispute_id: str, at: datetime, window: timedelta | None = None
    ) -> Outcome:
        return self._execute(
            payment_id,
            lambda state: ledger.open_dispute(state, payment_id, dispute_id=dispute_id, at=at, window=window),
        )

    def resolve_dispute(
        self, payment_id: str, *, dispute_id: str, outcome: DisputeOutcome, at: datetime
    ) -> Outcome:
        return self._execute(
            payment_id,
            lambda state: ledger.resolve_dispute(
                state, payment_id, dispute_id=dispute_id, outcome=outcome, at=at
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
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="gsi1pk = :key AND gsi1sk < :upper",
            # '$' sorts right after the '#' separator, so a time equal to ``moment`` is included
            ExpressionAttributeValues={":key": _s(key), ":upper": _s(f"{_time(moment)}$")},
            PaginationConfig={"MaxItems": limit, "PageSize": limit},
        )
        return [item["payment_id"]["S"] for page in pages for item in page.get("Items", [])]

    def get_hold(self, payment_id: str) -> Hold | None:
        return self._load_payment(payment_id)[0]

    def transfers(self, payment_id: str) -> list[Transfer]:
        """The payment's journal in time order."""
        return sorted(self._load_payment(payment_id)[1], key=lambda t: (t.at, t.transfer_id))

    def balance(self, account: AccountId) -> int:
        return self._load_balances([account]).get(account, 0)

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
        """Every account's balance (a full consistent Scan; see ``verify_balanced``)."""
        found: dict[AccountId, int] = {}
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            ConsistentRead=True,
            FilterExpression="begins_with(pk, :prefix) AND sk = :balance",
            ExpressionAttributeValues={":prefix": _s(ACCOUNT_PK_PREFIX), ":balance": _s(BALANCE_SK)},
        ):
            for item in page.get("Items", []):
                account = AccountId(
                    AccountKind(item["account_kind"]["S"]), item["currency"]["S"], item["owner"]["S"]
                )
                found[account] = int(item["balance_cents"]["N"])
        return found

    def holds(self) -> list[Hold]:
        """Every hold (a full Scan, for reconciliation)."""
        return [_parse_hold(item) for item in self._scan("sk = :hold", {":hold": _s(HOLD_SK)})]

    def all_transfers(self) -> list[Transfer]:
        """Every payment's journal entries (a full Scan, for reconciliation)."""
        items = self._scan("begins_with(sk, :transfer)", {":transfer": _s(TRANSFER_SK_PREFIX)})
        return sorted((_parse_transfer(item) for item in items), key=lambda t: (t.at, t.transfer_id))

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
        accounts_if_new: Sequence[AccountId] = (),
    ) -> Outcome:
        for attempt in range(self._max_attempts):
            hold, transfers = self._load_payment(payment_id)
            accounts = hold.accounts if hold is not None else tuple(accounts_if_new)
            state = LedgerState(
                holds={payment_id: hold} if hold is not None else {},
                balances=self._load_balances(accounts),
                transfers={t.transfer_id: t for t in transfers},
            )
            outcome = command(state)
            if not isinstance(outcome, Applied):
                return outcome
            if self._write(outcome):
                return outcome
            if attempt + 1 < self._max_attempts:
                self._sleep(self._backoff_seconds * 2**attempt)
        raise LedgerContentionError(f"gave up on payment {payment_id} after {self._max_attempts} attempts")

    def _write(self, applied: Applied) -> bool:
        """Apply the write set atomically; False when a condition lost to another writer."""
        try:
            self._client.transact_write_items(TransactItems=self._write_set(applied))
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = {reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])}
            if not reasons <= _RETRYABLE_CANCELLATIONS:
                raise
            return False
        return True

    def _write_set(self, applied: Applied) -> list["TransactWriteItemTypeDef"]:
        expected = applied.expected_hold_version
        hold_put: PutTypeDef = {"TableName": self._table, "Item": _hold_item(applied.hold)}
        if expected == 0:
            hold_put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            hold_put["ConditionExpression"] = "version = :expected"
            hold_put["ExpressionAttributeValues"] = {":expected": _n(expected)}
        transfer_puts: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _transfer_item(transfer),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for transfer in applied.transfers
        ]
        return [{"Put": hold_put}, *transfer_puts, *self._balance_updates(applied.transfers)]

    def _balance_updates(self, transfers: Iterable[Transfer]) -> list["TransactWriteItemTypeDef"]:
        updates: list[TransactWriteItemTypeDef] = []
        for account, delta in sorted(balance_deltas(transfers).items()):
            values: dict[str, AttributeValueTypeDef] = {
                ":delta": _n(delta),
                ":one": _n(1),
                ":kind": _s(account.kind),
                ":currency": _s(account.currency),
                ":owner": _s(account.owner),
            }
            update: UpdateTypeDef = {
                "TableName": self._table,
                "Key": _account_key(account),
                "UpdateExpression": "ADD balance_cents :delta, #version :one "
                "SET account_kind = :kind, currency = :currency, #owner = :owner",
                "ExpressionAttributeNames": {"#version": "version", "#owner": "owner"},
                "ExpressionAttributeValues": values,
            }
            if delta < 0 and not account.may_go_negative:
                values[":debit"] = _n(-delta)
                update["ConditionExpression"] = "balance_cents >= :debit"
            updates.append({"Update": update})
        return updates

    def _load_payment(self, payment_id: str) -> tuple[Hold | None, list[Transfer]]:
        hold: Hold | None = None
        transfers: list[Transfer] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(_payment_pk(payment_id))},
        ):
            for item in page.get("Items", []):
                sort_key = item["sk"]["S"]
                if sort_key == HOLD_SK:
                    hold = _parse_hold(item)
                elif sort_key.startswith(TRANSFER_SK_PREFIX):
                    transfers.append(_parse_transfer(item))
        return hold, transfers

    def _load_balances(self, accounts: Sequence[AccountId]) -> dict[AccountId, int]:
        by_pk = {_account_key(account)["pk"]["S"]: account for account in accounts}
        balances: dict[AccountId, int] = {}
        pending: list[Item] = [_account_key(account) for account in accounts]
        while pending:
            response = self._client.batch_get_item(
                RequestItems={self._table: {"Keys": pending, "ConsistentRead": True}}
            )
            for item in response.get("Responses", {}).get(self._table, []):
                balances[by_pk[item["pk"]["S"]]] = int(item["balance_cents"]["N"])
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
            pending = list(unprocessed["Keys"]) if unprocessed else []
        return balances
