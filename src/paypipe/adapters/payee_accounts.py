"""What the bank said of payee accounts, and the bank files read (items of the Payouts table).

Item layouts are described with the table's others in ``paypipe.adapters.payouts_store``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from paypipe.adapters.payouts_store import batch_get
from paypipe.domain.prenotes import AccountHistory, FiledPrenote
from paypipe.runtime.retry import retry_throttled

MAX_CORRECTION_HOPS = 5  # a corrected account corrected again is followed this far


@dataclass(frozen=True)
class StoredCorrection:
    """A notification of change applied to an account: the details payouts to it now carry."""

    change_code: str
    original_trace_number: str
    routing_number: str
    account_token: str
    account_last4: str
    account_type: str
    account_fingerprint: str
    received_at: str


@dataclass(frozen=True)
class AccountState:
    fingerprint: str
    unusable_code: str | None = None  # the return code that stopped credits to it
    correction: StoredCorrection | None = None
    prenote: FiledPrenote | None = None  # once its file is uploaded
    paid_trace: str | None = None  # its first live entry
    given_by_bank_trace: str | None = None  # the entry whose notification of change gave these details

    def history(self, *, prenote_in_flight: bool = False) -> AccountHistory:
        """What the prenote gate needs of the account."""
        verified = self.paid_trace is not None or self.given_by_bank_trace is not None
        return AccountHistory(self.prenote, verified=verified, prenote_in_flight=prenote_in_flight)

    @property
    def takes_no_credits(self) -> bool:
        """Returned with a code that stops credits, and no correction gave other details since."""
        return self.unusable_code is not None and self.correction is None


class PayeeAccounts:
    def __init__(self, table_name: str, client: Any) -> None:
        self._table = table_name
        self._client = client

    def states(self, fingerprints: Iterable[str]) -> dict[str, AccountState]:
        """The state of each account the bank said something of (others are absent)."""
        keys = [(f"account#{fp}", "account") for fp in sorted({fp for fp in fingerprints if fp})]
        states = map(_state, batch_get(self._client, self._table, keys))
        return {state.fingerprint: state for state in states}

    def mark_unusable(self, fingerprint: str, *, return_code: str, trace_number: str, at: datetime) -> None:
        self._update(
            fingerprint,
            "SET unusable_code = :code, unusable_trace = :trace, unusable_at = :at",
            {":code": {"S": return_code}, ":trace": {"S": trace_number}, ":at": {"S": at.isoformat()}},
        )

    def record_prenote(self, fingerprint: str, prenote: FiledPrenote, *, batch_id: str, at: datetime) -> None:
        """The prenote to the account, once its file is uploaded (a later one replaces it)."""
        self._update(
            fingerprint,
            "SET prenote_trace = :trace, prenote_effective_date = :effective, prenote_batch = :batch, "
            "prenote_filed_at = :at",
            {
                ":trace": {"S": prenote.trace_number},
                ":effective": {"S": prenote.effective_date.isoformat()},
                ":batch": {"S": batch_id},
                ":at": {"S": at.isoformat()},
            },
        )

    def mark_paid(self, fingerprint: str, *, trace_number: str, at: datetime) -> None:
        """The account's first live entry (kept: later ones change nothing)."""
        self._update(
            fingerprint,
            "SET paid_trace = if_not_exists(paid_trace, :trace), paid_at = if_not_exists(paid_at, :at)",
            {":trace": {"S": trace_number}, ":at": {"S": at.isoformat()}},
        )

    def mark_given_by_bank(self, fingerprint: str, *, original_trace_number: str, at: datetime) -> None:
        """The account's details came from the bank, in a notification of change to that entry."""
        self._update(
            fingerprint,
            "SET given_by_bank_trace = if_not_exists(given_by_bank_trace, :trace), "
            "given_by_bank_at = if_not_exists(given_by_bank_at, :at)",
            {":trace": {"S": original_trace_number}, ":at": {"S": at.isoformat()}},
        )

    def correct(self, fingerprint: str, correction: StoredCorrection) -> None:
        """Record the correction (the first one of a trace number wins; a later one replaces it)."""
        self._update(
            fingerprint,
            "SET correction = :correction",
            {":correction": {"S": json.dumps(asdict(correction), sort_keys=True)}},
        )

    def replace_for_provider(self, tenant: str, provider_id: str, replacement: StoredCorrection) -> None:
        """The account the client gave for the provider's payouts whose own account takes no credits."""
        retry_throttled(
            partial(
                self._client.put_item,
                TableName=self._table,
                Item={
                    "pk": {"S": f"provider#{tenant}#{provider_id}"},
                    "sk": {"S": "account"},
                    "replacement": {"S": json.dumps(asdict(replacement), sort_keys=True)},
                },
            )
        )

    def replacements(self, providers: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredCorrection]:
        """The client's replacement account of each (tenant, provider) that has one."""
        keys = [(f"provider#{tenant}#{provider}", "account") for tenant, provider in sorted(set(providers))]
        found: dict[tuple[str, str], StoredCorrection] = {}
        for item in batch_get(self._client, self._table, keys):
            _, tenant, provider_id = item["pk"]["S"].split("#", 2)
            found[(tenant, provider_id)] = StoredCorrection(**json.loads(item["replacement"]["S"]))
        return found

    def _update(self, fingerprint: str, expression: str, values: dict[str, Any]) -> None:
        retry_throttled(
            partial(
                self._client.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"account#{fingerprint}"}, "sk": {"S": "account"}},
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
            )
        )

    def claim_file(self, bucket: str, key: str, etag: str, at: datetime) -> bool:
        """True the first time this object (bucket, key, ETag) is read; False once it was read."""
        try:
            retry_throttled(
                partial(
                    self._client.put_item,
                    TableName=self._table,
                    Item={
                        "pk": {"S": f"inbound#{bucket}/{key}"},
                        "sk": {"S": etag},
                        "status": {"S": "reading"},
                        "claimed_at": {"S": at.isoformat()},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR #status = :reading",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":reading": {"S": "reading"}},
                )
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def finish_file(self, bucket: str, key: str, etag: str) -> None:
        retry_throttled(
            partial(
                self._client.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"inbound#{bucket}/{key}"}, "sk": {"S": etag}},
                UpdateExpression="SET #status = :done",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":done": {"S": "done"}},
            )
        )


def _state(item: dict[str, Any]) -> AccountState:
    correction = item.get("correction", {}).get("S")
    prenote_trace = item.get("prenote_trace", {}).get("S")
    prenote = (
        FiledPrenote(prenote_trace, date.fromisoformat(item["prenote_effective_date"]["S"]))
        if prenote_trace
        else None
    )
    return AccountState(
        fingerprint=item["pk"]["S"].removeprefix("account#"),
        unusable_code=item.get("unusable_code", {}).get("S"),
        correction=StoredCorrection(**json.loads(correction)) if correction else None,
        prenote=prenote,
        paid_trace=item.get("paid_trace", {}).get("S"),
        given_by_bank_trace=item.get("given_by_bank_trace", {}).get("S"),
    )
