"""ach_returns: the bank's files (returns and notifications of change) -> ledger, payee accounts, events.

The bank drops files under the ACH bucket's inbound prefix; S3 tells the default event bus, whose
rule fills this step's queue. Each entry is matched to the payout it answers by its original
trace number (``entry#<trace>`` in the Payouts table, written before the payout's file):

- a return is booked in the ledger (the payout is reversed: the provider is owed it again), the
  payout is queued to be sent again or waits for new account details (``domain.ach_returns``),
  an account that takes no credits is marked unusable, and ``PayoutReturned`` says so;
- a return of a prenote (a zero-dollar entry: nothing to reverse) marks the account unusable, so
  its payouts wait for new details, and ``PrenoteReturned`` says so;
- a notification of change (to a payout or a prenote) stores the corrected details (the account
  number through the vault) for the next cut to apply, records that the bank gave them (they need
  no prenote), and ``PayeeAccountCorrected`` says so;
- an entry that matches no payout, or that the rules say not to book, is parked with its reason
  (``AchInboundParked``, with the answer the originator may send).

Every effect is idempotent on the entry's trace number, so a file read twice, two files with the
same content, or a file read again after a failure half way change nothing twice. A file that
cannot be read as NACHA is parked whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Protocol

from paypipe.adapters.account_vault import AccountToken
from paypipe.adapters.payee_accounts import PayeeAccounts, StoredCorrection
from paypipe.adapters.payouts_store import PayoutsStore
from paypipe.domain import ach_returns as rules
from paypipe.domain import ledger, nacha
from paypipe.domain.ach_batching import PendingPayout
from paypipe.domain.ach_calendar import EASTERN
from paypipe.domain.ach_returns import AccountCorrection, FiledEntry, Parked
from paypipe.events import models as ev
from paypipe.runtime import metrics
from paypipe.runtime.aws import client, int_setting, lazy_client, setting
from paypipe.runtime.consumer import Receipt
from paypipe.runtime.entry import publisher
from paypipe.runtime.logging import get_logger
from paypipe.runtime.objects import ObjectConsumer, ObjectRoute, StoredObject
from paypipe.runtime.retry import retry_throttled
from paypipe.steps.common import LedgerPort, ledger_from_env
from paypipe.steps.vaults import account_vault_from_env

STEP = "ach_returns"
INBOUND_PREFIX = "inbound/"
ANSWERS_PREFIX = "answers/"  # the originator's answers to the bank (dishonored returns, refused NOCs)


class AccountVaultPort(Protocol):
    def tokenize(self, routing_number: str, account_number: str, *, tenant: str) -> AccountToken: ...

    def detokenize(self, token: str, *, tenant: str) -> str: ...


class S3Port(Protocol):
    def get_object(self, **kwargs: object) -> dict[str, object]: ...

    def put_object(self, **kwargs: object) -> dict[str, object]: ...


@dataclass(frozen=True)
class Inbound:
    """One entry of a bank file being applied."""

    key: str
    entry: nacha.EntryDetail
    received_at: datetime

    @property
    def received_on(self) -> date:
        return self.received_at.astimezone(EASTERN).date()


@dataclass
class ReturnsStep:
    payouts: PayoutsStore
    accounts: PayeeAccounts
    ledger: LedgerPort
    vault: AccountVaultPort
    s3: S3Port

    def on_object(self, found: StoredObject, receipt: Receipt) -> list[ev.Event]:
        if not self.accounts.claim_file(found.bucket, found.key, found.etag, receipt.received_at):
            get_logger(step=STEP).info("bank file already read", key=found.key)
            return []
        body = retry_throttled(
            partial(self.s3.get_object, Bucket=found.bucket, Key=found.key, IfMatch=found.etag)
        )
        text = body["Body"].read().decode("ascii", errors="replace")  # type: ignore[attr-defined]
        try:
            ach_file = nacha.parse(text, strict=False)
        except nacha.NachaParseError as error:
            return [_parked_file(found.key, "MALFORMED_FILE", str(error), receipt.received_at)]
        events: list[ev.Event] = []
        for batch in ach_file.batches:
            for entry in batch.entries:
                events.extend(self._apply(Inbound(found.key, entry, receipt.received_at)))
        metrics.emit("BankEntriesRead", sum(len(b.entries) for b in ach_file.batches), step=STEP)
        return self._prepare_answers(found, ach_file, events, receipt.received_at)

    def _prepare_answers(
        self, found: StoredObject, received: nacha.AchFile, events: list[ev.Event], at: datetime
    ) -> list[ev.Event]:
        """Write the dishonored returns and refused notifications the parked entries call for (under
        ``answers/``, for the ODFI to send), and name each file in its parked events."""
        parked = [e for e in events if isinstance(e, ev.AchInboundParked) and e.data.answer != "none"]
        keys: dict[str, str] = {}
        for kind in ("dishonored_return", "refused_correction"):
            mine = [
                e.data for e in parked if e.data.answer == kind and e.data.trace_number and e.data.answer_code
            ]
            if not mine:
                continue
            try:
                keys[kind] = self._write_answer(found, received, kind, mine, at)
            except ValueError:  # the parked events still say what to answer; an operator prepares it
                get_logger(step=STEP).error(
                    "answer file not prepared", kind=kind, key=found.key, exc_info=True
                )
        return [
            e.model_copy(update={"data": e.data.model_copy(update={"answer_key": keys.get(e.data.answer)})})
            if isinstance(e, ev.AchInboundParked) and e.data.answer in keys
            else e
            for e in events
        ]

    def _write_answer(
        self,
        found: StoredObject,
        received: nacha.AchFile,
        kind: str,
        parked: list[ev.AchInboundParkedData],
        at: datetime,
    ) -> str:
        odfi = received.header.immediate_destination[:8]
        first = self.payouts.trace_block(odfi, len(parked))
        if kind == "dishonored_return":
            dishonors = [nacha.Dishonor(p.trace_number or "", p.answer_code or "") for p in parked]
            answer = nacha.dishonored_return_file(
                received, dishonors, created_at=at, first_trace_sequence=first
            )
        else:
            refusals = [nacha.Refusal(p.trace_number or "", p.answer_code or "") for p in parked]
            answer = nacha.refused_correction_file(
                received, refusals, created_at=at, first_trace_sequence=first
            )
        key = f"{ANSWERS_PREFIX}{kind}/{found.key.removeprefix(INBOUND_PREFIX)}"
        body = nacha.write(answer).encode("ascii")
        retry_throttled(
            partial(self.s3.put_object, Bucket=found.bucket, Key=key, Body=body, ContentType="text/plain")
        )
        return key

    def done(self, found: StoredObject) -> None:
        self.accounts.finish_file(found.bucket, found.key, found.etag)

    def _apply(self, inbound: Inbound) -> list[ev.Event]:
        entry = inbound.entry
        if (answer := entry.entry_return) is not None:
            return self._return(inbound, answer.code, answer.original_trace_number)
        if isinstance(correction := entry.correction, nacha.EntryCorrection):
            return self._correction(inbound, correction)
        reason = "REFUSED_CORRECTION_RECEIVED" if correction is not None else "NOT_AN_ANSWER"
        detail = f"entry {entry.trace_number} (transaction code {entry.transaction_code}) answers no payout"
        return [_parked(inbound, None, Parked(reason, detail))]

    # -- returns ------------------------------------------------------------------------------

    def _return(self, inbound: Inbound, code: str, trace: str) -> list[ev.Event]:
        filed = self.payouts.entry(trace)
        if filed is None:
            parked = Parked(
                "UNMATCHED_TRACE", f"no payout entry has trace number {trace}", "dishonored_return", "R61"
            )
            return [_parked(inbound, None, parked, trace, code)]
        problem = rules.return_problem(filed, code, inbound.entry.amount_cents, inbound.received_on)
        if problem is not None:
            return [_parked(inbound, filed, problem, trace, code)]
        if filed.prenote:
            return self._prenote_return(inbound, filed, code)
        command = ledger.PayoutReturn(
            filed.payment_id, code, trace, inbound.received_at, payout_ref=filed.batch_id
        )
        outcome = retry_throttled(partial(self.ledger.return_payout, command))
        if isinstance(outcome, ledger.Rejected):
            return [_parked(inbound, filed, _refused_return(outcome), trace, code)]
        if self.payouts.mark_returned(trace, code, inbound.key) != inbound.key:
            # Booked from another bank file: this one returns the entry a second time.
            detail = f"entry {trace} was already returned {code} by another file"
            return [
                _parked(
                    inbound,
                    filed,
                    Parked("DUPLICATE_RETURN", detail, "dishonored_return", "R67"),
                    trace,
                    code,
                )
            ]
        hold = outcome.hold
        step = rules.next_step(code, resends=len(hold.returned_payouts) - 1)
        if hold.payout_ref is None:  # not yet paid out again: (re)apply what follows the return
            self._after_return(filed, code, step, inbound.received_at)
        data = ev.PayoutReturnedData(
            original_trace_number=trace,
            return_code=code,
            reason=nacha.RETURN_REASONS[code].title,
            amount_cents=filed.amount_cents,
            provider_id=filed.provider_id,
            batch_id=filed.batch_id,
            inbound_key=inbound.key,
            account_unusable=rules.stops_credits(code),
            next_step=step,
        )
        return [
            ev.PayoutReturned.create(
                payment_id=filed.payment_id,
                data=data,
                producer=STEP,
                dedup_key=f"return:{trace}",
                occurred_at=inbound.received_at,
            )
        ]

    def _prenote_return(self, inbound: Inbound, filed: FiledEntry, code: str) -> list[ev.Event]:
        """No payment moved: nothing to reverse. The account takes no payouts until its details change."""
        trace = filed.trace_number
        if self.payouts.mark_returned(trace, code, inbound.key) != inbound.key:
            detail = f"prenote {trace} was already returned by another file"
            parked = Parked("DUPLICATE_RETURN", detail, "dishonored_return", "R67")
            return [_parked(inbound, filed, parked, trace, code)]
        self.accounts.mark_unusable(
            filed.account_fingerprint, return_code=code, trace_number=trace, at=inbound.received_at
        )
        data = ev.PrenoteReturnedData(
            original_trace_number=trace,
            return_code=code,
            reason=nacha.RETURN_REASONS[code].title,
            provider_id=filed.provider_id,
            batch_id=filed.batch_id,
            inbound_key=inbound.key,
        )
        return [
            ev.PrenoteReturned.create(
                payment_id=filed.payment_id,
                data=data,
                producer=STEP,
                dedup_key=f"prenote-return:{trace}",
                occurred_at=inbound.received_at,
            )
        ]

    def _after_return(self, filed: FiledEntry, code: str, step: rules.NextStep, at: datetime) -> None:
        if rules.stops_credits(code) and filed.account_fingerprint:
            self.accounts.mark_unusable(
                filed.account_fingerprint, return_code=code, trace_number=filed.trace_number, at=at
            )
        pending = PendingPayout(
            self.payouts.payouts([filed.payment_id])[0], self.payouts.released_at(filed.payment_id)
        )
        if step == "resend":
            self.payouts.unblock(pending)
        else:
            self.payouts.wait(pending, f"RETURNED_{code}")

    # -- notifications of change ----------------------------------------------------------------

    def _correction(self, inbound: Inbound, noc: nacha.EntryCorrection) -> list[ev.Event]:
        trace = noc.original_trace_number
        filed = self.payouts.entry(trace)
        if filed is None:
            parked = Parked(
                "UNMATCHED_TRACE", f"no payout entry has trace number {trace}", "refused_correction", "C61"
            )
            return [_parked(inbound, None, parked, trace, noc.code)]
        found = rules.correction_from(noc.code, noc.corrected_data)
        if isinstance(found, Parked):
            return [_parked(inbound, filed, found, trace, noc.code)]
        stored = self._store_correction(filed, found, trace, inbound.received_at)
        data = ev.PayeeAccountCorrectedData(
            original_trace_number=trace,
            change_code=noc.code,
            reason=nacha.CHANGE_REASONS[noc.code].title,
            provider_id=filed.provider_id,
            inbound_key=inbound.key,
            routing_number=found.routing_number,
            account_last4=stored.account_last4 if found.account_number else None,
            account_type=ev.AccountType(found.account_type) if found.account_type else None,
            apply_by=rules.apply_by(inbound.received_on).isoformat(),
        )
        return [
            ev.PayeeAccountCorrected.create(
                payment_id=filed.payment_id,
                data=data,
                producer=STEP,
                dedup_key=f"correction:{trace}",
                occurred_at=inbound.received_at,
            )
        ]

    def _store_correction(
        self, filed: FiledEntry, found: AccountCorrection, trace: str, at: datetime
    ) -> StoredCorrection:
        """Vault the corrected account (its number stays in memory) and record it for the next cut."""
        payout = self.payouts.payouts([filed.payment_id])[0]
        tenant = payout.tenant_id
        account = found.account_number or retry_throttled(
            partial(self.vault.detokenize, payout.account_token, tenant=tenant)
        )
        routing = found.routing_number or payout.routing_number
        token = retry_throttled(partial(self.vault.tokenize, routing, account, tenant=tenant))
        stored = StoredCorrection(
            change_code=found.change_code,
            original_trace_number=trace,
            routing_number=routing,
            account_token=token.token,
            account_last4=token.last4,
            account_type=found.account_type or payout.account_type,
            account_fingerprint=token.fingerprint,
            received_at=at.isoformat(),
        )
        # The corrected account is known first: a cut between the two never prenotes it.
        self.accounts.mark_given_by_bank(token.fingerprint, original_trace_number=trace, at=at)
        self.accounts.correct(filed.account_fingerprint, stored)
        return stored


def _refused_return(outcome: ledger.Rejected) -> Parked:
    if outcome.reason is ledger.Rejection.NOT_FOUND:
        raise RuntimeError(outcome.message)  # the entry is filed, so its hold is there: retried
    if outcome.reason in (ledger.Rejection.ALREADY_RETURNED, ledger.Rejection.IDEMPOTENCY_CONFLICT):
        return Parked("DUPLICATE_RETURN", outcome.message, "dishonored_return", "R67")
    if outcome.reason is ledger.Rejection.NOT_PAID_OUT:
        return Parked("NOT_OUTSTANDING", outcome.message, "dishonored_return", "R67")
    return Parked(f"LEDGER_{outcome.reason.value}", outcome.message)


def inbound_file_id(key: str) -> str:
    """The id parked events of a file name when no payment matches (an Identifier)."""
    return "achin-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def _parked(
    inbound: Inbound,
    filed: FiledEntry | None,
    parked: Parked,
    original_trace: str | None = None,
    code: str | None = None,
) -> ev.Event:
    get_logger(step=STEP).warning(
        "bank entry parked", reason=parked.reason, trace_number=inbound.entry.trace_number, code=code
    )
    data = ev.AchInboundParkedData(
        inbound_key=inbound.key,
        reason=parked.reason,
        detail=parked.detail[:500],
        trace_number=inbound.entry.trace_number if inbound.entry.trace_number.isdigit() else None,
        original_trace_number=original_trace,
        code=code,
        answer=parked.answer,
        answer_code=parked.answer_code,
    )
    payment_id = filed.payment_id if filed else inbound_file_id(inbound.key)
    return ev.AchInboundParked.create(
        payment_id=payment_id,
        data=data,
        producer=STEP,
        dedup_key=f"parked:{inbound.key}:{inbound.entry.trace_number}:{parked.reason}",
        occurred_at=inbound.received_at,
    )


def _parked_file(key: str, reason: str, detail: str, at: datetime) -> ev.Event:
    get_logger(step=STEP).error("bank file parked", reason=reason, key=key, detail=detail[:300])
    data = ev.AchInboundParkedData(inbound_key=key, reason=reason, detail=detail[:500])
    return ev.AchInboundParked.create(
        payment_id=inbound_file_id(key), data=data, producer=STEP, dedup_key=f"file:{reason}", occurred_at=at
    )


def build() -> ObjectConsumer:
    table = setting("PAYOUTS_TABLE")
    dynamodb = client("dynamodb")
    step = ReturnsStep(
        payouts=PayoutsStore(table, dynamodb),
        accounts=PayeeAccounts(table, dynamodb),
        ledger=ledger_from_env(),
        vault=account_vault_from_env(),
        s3=client("s3"),
    )
    return ObjectConsumer(
        STEP,
        ObjectRoute(step.on_object, step.done),
        bucket=setting("ACH_BUCKET"),
        prefix=setting("ACH_INBOUND_PREFIX", INBOUND_PREFIX),
        publisher=publisher(STEP),
        sqs_client=lazy_client("sqs"),  # the DLQ's: parking is rare
        dlq_url=setting("DLQ_URL"),
        max_receive_count=int_setting("MAX_RECEIVE_COUNT", 5),
    )
