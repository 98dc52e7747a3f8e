"""The simulated acquirer with its state in DynamoDB, so every Lambda container sees one acquirer.

One item per authorization (``pk = auth#<reference>``; an authorization's reference derives from
its authorize key, so every operation finds its item before it happens) holds what the
simulator remembers of it: each key's request fingerprint (a SHA-256: no card data is stored) and
decided outcome, the attempts per key and the authorization's amounts, under a version check.
A call loads that item into a `SimulatedAcquirer`, runs there, and saves the item back with the
settlement lines it booked (one item each, ``gsi1pk = day#<date>`` sharded, so a day's report is
an index query and no item is shared between payments) and the chargeback notices it booked (one
item each, ``gsi1pk = notice`` sharded, sorted by when each falls due; deleted once relayed) in
one transaction. A call that loses the
race to another container is a retryable processor error: the port's retry loads it again. A call
that books no line (an authorization, a void, a refused one) is a single conditional put.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from botocore.exceptions import ClientError

from paypipe.adapters.dynamo_index import query_shards, shard_key
from paypipe.domain.acquirer_simulator import (
    Authorization,
    Faults,
    SimulatedAcquirer,
    SimulatorState,
    authorization_reference,
)
from paypipe.domain.card_processing import (
    Approved,
    AuthorizeRequest,
    CaptureRequest,
    Decided,
    DeclineCode,
    Declined,
    DisputeNotice,
    NoticeKind,
    Operation,
    ProcessorError,
    RefundRequest,
    Request,
    Result,
    VoidRequest,
)
from paypipe.domain.settlement import FeeSchedule, SettlementLine, line_from_record, line_record

DAY_INDEX = "day"
NOTICE_INDEX = "notice"


@dataclass(frozen=True)
class _Loaded:
    acquirer: SimulatedAcquirer
    version: int


class DynamoAcquirer:
    """`CardProcessor` answered by the simulator over the acquirer table (see the module)."""

    def __init__(
        self,
        table_name: str,
        client: Any,
        now: Callable[[], datetime],
        *,
        faults: Faults | None = None,
        fees: FeeSchedule | None = None,
    ) -> None:
        self._table = table_name
        self._ddb = client
        self._now = now
        self._faults = faults or Faults()
        self._fees = fees or FeeSchedule()

    def authorize(self, request: AuthorizeRequest) -> Result:
        return self._run(request, lambda acquirer: acquirer.authorize(request))

    def capture(self, request: CaptureRequest) -> Result:
        return self._run(request, lambda acquirer: acquirer.capture(request))

    def void(self, request: VoidRequest) -> Result:
        return self._run(request, lambda acquirer: acquirer.void(request))

    def refund(self, request: RefundRequest) -> Result:
        return self._run(request, lambda acquirer: acquirer.refund(request))

    def lookup(self, request: Request) -> Decided | None:
        return self._load(_reference(request)).acquirer.lookup(request)

    def settlement_lines(self, day: date) -> list[SettlementLine]:
        """The day's report lines, in the order the operations happened."""
        items = query_shards(self._ddb, self._table, f"{DAY_INDEX}#{day.isoformat()}")
        return [line_from_record(json.loads(item["line"]["S"])) for item in items]

    def due_notices(self, as_of: datetime, limit: int | None = None) -> list[DisputeNotice]:
        """The chargeback notices due by ``as_of`` and not acknowledged, oldest first."""
        items = query_shards(self._ddb, self._table, NOTICE_INDEX, before=f"{_utc(as_of)}~", limit=limit)
        return [_notice(json.loads(item["notice"]["S"])) for item in items]

    def acknowledge(self, notice: DisputeNotice) -> None:
        self._ddb.delete_item(TableName=self._table, Key=_notice_key(notice))

    def _run(self, request: Request, call: Callable[[SimulatedAcquirer], Result]) -> Result:
        reference = _reference(request)
        loaded = self._load(reference)
        result = call(loaded.acquirer)
        if not self._save(reference, loaded):
            return ProcessorError(_operation(request), request.key, "concurrent call on the authorization")
        return result

    def _load(self, reference: str) -> _Loaded:
        item = self._ddb.get_item(TableName=self._table, Key=_state_key(reference), ConsistentRead=True).get(
            "Item"
        )
        state = SimulatorState() if item is None else _state(json.loads(item["state"]["S"]))
        version = 0 if item is None else int(item["version"]["N"])
        acquirer = SimulatedAcquirer(now=self._now, faults=self._faults, fees=self._fees, state=state)
        return _Loaded(acquirer, version)

    def _save(self, reference: str, loaded: _Loaded) -> bool:
        """Write the state back if no other call did since it was loaded, with its new lines."""
        state = loaded.acquirer.state
        item = {
            **_state_key(reference),
            "state": {"S": json.dumps(_state_record(state), sort_keys=True)},
            "version": {"N": str(loaded.version + 1)},
        }
        condition = "attribute_not_exists(pk)" if loaded.version == 0 else "version = :seen"
        put: dict[str, Any] = {"TableName": self._table, "Item": item, "ConditionExpression": condition}
        if loaded.version:
            put["ExpressionAttributeValues"] = {":seen": {"N": str(loaded.version)}}
        booked = [self._line_put(reference, loaded.version, n, line) for n, line in enumerate(state.lines)]
        booked += [self._notice_put(notice) for notice in state.notices]
        try:
            if booked:  # the state and its new lines and notices together, or neither
                self._ddb.transact_write_items(TransactItems=[{"Put": put}, *booked])
            else:  # a single conditional put costs half a transaction's units
                self._ddb.put_item(**put)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code not in {"TransactionCanceledException", "ConditionalCheckFailedException"}:
                raise
            return False
        return True

    def _line_put(self, reference: str, version: int, number: int, line: SettlementLine) -> dict[str, Any]:
        line_id = f"{reference}#{version}#{number}"
        record = line_record(line)
        at = self._now().isoformat()
        item = {
            "pk": {"S": f"line#{line_id}"},
            "sk": {"S": "line"},
            "line": {"S": json.dumps(record, sort_keys=True)},
            "gsi1pk": {"S": shard_key(f"{DAY_INDEX}#{line.day.isoformat()}", line_id)},
            "gsi1sk": {"S": f"{at}#{line_id}"},
        }
        return {"Put": {"TableName": self._table, "Item": item}}

    def _notice_put(self, notice: DisputeNotice) -> dict[str, Any]:
        record = {**asdict(notice), "due_at": _utc(notice.due_at), "kind": notice.kind.value}
        item = {
            **_notice_key(notice),
            "notice": {"S": json.dumps(record, sort_keys=True)},
            "gsi1pk": {"S": shard_key(NOTICE_INDEX, notice.notice_id)},
            "gsi1sk": {"S": f"{_utc(notice.due_at)}#{notice.notice_id}"},
        }
        return {"Put": {"TableName": self._table, "Item": item}}


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _notice_key(notice: DisputeNotice) -> dict[str, Any]:
    return {"pk": {"S": f"notice#{notice.notice_id}"}, "sk": {"S": "notice"}}


def _notice(record: dict[str, Any]) -> DisputeNotice:
    return DisputeNotice(
        **{**record, "due_at": datetime.fromisoformat(record["due_at"]), "kind": NoticeKind(record["kind"])}
    )


def _state_key(reference: str) -> dict[str, Any]:
    return {"pk": {"S": f"auth#{reference}"}, "sk": {"S": "state"}}


def _reference(request: Request) -> str:
    if isinstance(request, AuthorizeRequest):
        return authorization_reference(request.key)
    return request.authorization_id


def _operation(request: Request) -> Operation:
    operations = {AuthorizeRequest: Operation.AUTHORIZE, CaptureRequest: Operation.CAPTURE}
    operations |= {VoidRequest: Operation.VOID, RefundRequest: Operation.REFUND}
    return operations[type(request)]


def _state_record(state: SimulatorState) -> dict[str, Any]:
    """The state to store, without its lines (each has its own item, written once)."""
    return {
        "decided": {
            key: [fingerprint, _outcome(decided)] for key, (fingerprint, decided) in state.decided.items()
        },
        "attempts": state.attempts,
        "authorizations": {ref: asdict(auth) for ref, auth in state.authorizations.items()},
    }


def _state(record: dict[str, Any]) -> SimulatorState:
    return SimulatorState(
        decided={
            key: (fingerprint, _decided(outcome)) for key, (fingerprint, outcome) in record["decided"].items()
        },
        attempts={key: int(count) for key, count in record["attempts"].items()},
        authorizations={ref: Authorization(**auth) for ref, auth in record["authorizations"].items()},
    )


def _outcome(decided: Decided) -> dict[str, Any]:
    return {"approved" if isinstance(decided, Approved) else "declined": asdict(decided)}


def _decided(outcome: dict[str, Any]) -> Decided:
    if "approved" in outcome:
        fields = outcome["approved"]
        return Approved(**{**fields, "operation": Operation(fields["operation"])})
    fields = outcome["declined"]
    return Declined(
        **{**fields, "operation": Operation(fields["operation"]), "code": DeclineCode(fields["code"])}
    )
