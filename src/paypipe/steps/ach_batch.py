"""ach_batch: FundsReleased -> pending payout; scheduled cut -> NACHA files in S3.

The cut is written to be re-run safely after a crash at any point: a batch is stored (with
its members) before its payouts leave the pending set, each member's payout is claimed in the
ledger before the file is written (the ledger refuses a payout a dispute holds back, or whose
release was refunded: that member is excluded from the batch, durably, and set aside), the
file content is a pure function of the stored batch and the ledger's claims, and events carry
deterministic ids. Every open batch is finished first on the next run. A claim nets what the
provider owes on clawbacks: the entry pays the rest, and a payout netted in full has no entry
(``PayoutNetted``). The cut function runs with reserved concurrency 1, so one cut at a time plans.

Stored payouts carry the payee account by its vault token; the cut alone detokenizes, in memory,
to write a file, and sets aside a payout whose account the vault cannot give back.

With prenotes on (``AchPrenote``), a payout to an account never prenoted nor paid stays pending:
the cut prenotes the account in the file its payout would have gone in (``domain.prenotes``), and
files the payouts once the waiting period after the prenote's settlement is over. The prenote is
indexed by trace number with the payout entries (so the bank's answers to it match) and recorded
on the account once its file is uploaded; so is each account's first live entry, prenotes on or off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from botocore.exceptions import ClientError

from paypipe.adapters.payee_accounts import MAX_CORRECTION_HOPS, AccountState, PayeeAccounts, StoredCorrection
from paypipe.adapters.payouts_store import FILE_ID_MODIFIERS, FileIdsExhaustedError, PayoutsStore, StoredBatch
from paypipe.adapters.vault import VaultError
from paypipe.domain import ledger, nacha
from paypipe.domain import prenotes as prenote_rules
from paypipe.domain.ach_batching import PayoutRecord, PendingPayout, PlannedBatch, plan_files
from paypipe.domain.ach_calendar import EASTERN
from paypipe.domain.ach_returns import FiledEntry
from paypipe.domain.ledger import Hold
from paypipe.domain.nacha import Payable
from paypipe.events import models as ev
from paypipe.runtime.aws import client, int_setting, setting
from paypipe.runtime.consumer import Consumer, Receipt, Route, content_conflict, content_fingerprint
from paypipe.runtime.entry import LambdaHandler, build_consumer, publisher
from paypipe.runtime.logging import get_logger
from paypipe.runtime.publisher import EventPublisher
from paypipe.runtime.retry import is_throttling, retry_throttled
from paypipe.steps.common import LedgerPort, ledger_from_env, scheduled_time
from paypipe.steps.vaults import account_vault_from_env

STEP = "ach_batch"
PAYOUT_FILES_PREFIX = "ach/"  # the ACH bucket's payout files (the bank's answers: ach_returns)


class AccountPort(Protocol):
    def detokenize(self, token: str, *, tenant: str) -> str: ...


@dataclass(frozen=True)
class CollectStep:
    payouts: PayoutsStore
    payee_accounts: PayeeAccounts | None = None

    def on_released(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.FundsReleased)
        data = event.data
        payee = data.payee
        payout = PayoutRecord(
            payment_id=event.payment_id,
            amount_cents=data.amount_cents,
            payee_name=payee.name,
            routing_number=payee.routing_number,
            account_token=payee.account_token,
            account_last4=payee.account_last4,
            account_type=payee.account_type.value,
            payee_type=payee.payee_type.value,
            tenant_id=payee.tenant_id,
            provider_id=data.provider_id,
            account_fingerprint=payee.account_fingerprint,
        )
        # No idempotency record: the payout is recorded once per payment, with the event's content.
        if not self.payouts.add_pending(payout, data.released_at, fingerprint=content_fingerprint(event)):
            raise content_conflict(f"{STEP}:{event.payment_id}:{event.event_type}")
        return []

    def on_account_replaced(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        """The client's new details for a provider: its payouts waiting after a return go there."""
        assert isinstance(event, ev.PayeeAccountReplaced) and self.payee_accounts is not None
        data = event.data
        replacement = StoredCorrection(
            change_code="UPDATE",
            original_trace_number="",
            routing_number=data.payee.routing_number,
            account_token=data.payee.account_token,
            account_last4=data.payee.account_last4,
            account_type=data.payee.account_type.value,
            account_fingerprint=data.payee.account_fingerprint,
            received_at=data.replaced_at.isoformat(),
        )
        self.payee_accounts.replace_for_provider(data.tenant_id, data.provider_id, replacement)
        for item in retry_throttled(self.payouts.waiting):
            payout = item.payout
            if isinstance(payout, PayoutRecord) and (payout.tenant_id, payout.provider_id) == (
                data.tenant_id,
                data.provider_id,
            ):
                moved = replace(corrected(payout, replacement), payee_name=data.payee.name)
                self.payouts.replace_payout(moved)
                self.payouts.unblock(PendingPayout(moved, item.released_at))
        return []


def file_key(batch: StoredBatch) -> str:
    return f"{PAYOUT_FILES_PREFIX}{batch.effective_date:%Y/%m/%d}/{batch.batch_id}.ach"


@dataclass(frozen=True)
class CutResult:
    files: list[str]
    set_aside: list[str]  # payment ids
    deferred: int  # planned batches waiting for the next creation date
    failed: list[str]  # batches that could not be finished (retried by the next cut)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "set_aside": self.set_aside,
            "deferred": self.deferred,
            "failed": self.failed,
        }


@dataclass
class AchCutter:
    payouts: PayoutsStore
    ledger: LedgerPort
    s3: Any
    bucket: str
    kms_key_id: str
    originator: nacha.Originator
    events: EventPublisher
    accounts: AccountPort
    max_entries_per_batch: int = 2500
    submission_lead: timedelta = timedelta(minutes=15)
    payee_accounts: PayeeAccounts | None = None  # what the bank said of payee accounts
    prenotes: bool = False  # prenote accounts never prenoted nor paid before paying them

    def cut(self, now: datetime) -> CutResult:
        """Finish open batches, then cut every due payout into files.

        One bad payout or batch never stops the others: a payout no file can carry is set aside
        (``ItemSetAside``), a batch that fails stays open for the next cut, and files the ODFI's
        creation date has no modifier left for wait for the next date (``AchFilesDeferred``).
        The cut raises only at the end, after doing all it could, if a batch failed.
        """
        keys: list[str] = []
        failed: list[str] = []
        in_flight: set[str] = set()  # accounts prenoted in a batch that is still open
        for batch in retry_throttled(self.payouts.open_batches):
            if not self._try_finish(batch, keys, failed):
                in_flight |= {payout.account_fingerprint for payout in batch.prenotes}
        released = self._recheck_blocked() + self._recheck_waiting()
        changed, states = self._with_account_changes(retry_throttled(self.payouts.pending))
        pending, set_aside = self._writable(changed, now)
        live, prenote_for = self._gate(pending, states, in_flight, now)
        plan = plan_files(
            live,
            now,
            max_entries_per_batch=self.max_entries_per_batch,
            max_same_day_batch_cents=nacha.SAME_DAY_LIMIT_CENTS if self.originator.offset_account else None,
            submission_lead=self.submission_lead,
            prenotes=prenote_for,
        )
        deferred = [planned for planned in plan if not self._open_and_finish(planned, now, keys, failed)]
        if deferred:
            self._publish([files_deferred(deferred, now)])
        log = get_logger(step="ach_cut")
        report = log.info if keys or plan or released or set_aside else log.debug
        report(
            "ach cut finished",
            files=len(keys),
            planned=len(plan),
            unblocked=released,
            set_aside=len(set_aside),
            deferred=len(deferred),
            failed=len(failed),
        )
        if failed:
            raise RuntimeError(f"{len(failed)} ACH batches could not be finished; the next cut retries them")
        return CutResult(keys, set_aside, len(deferred), failed)

    def _open_and_finish(
        self, planned: PlannedBatch, now: datetime, keys: list[str], failed: list[str]
    ) -> bool:
        """False when the batch must wait for the next creation date (no file id modifier left)."""
        traces = nacha.traces_needed(planned.payouts, self.originator) + len(planned.prenotes)
        odfi = self.originator.odfi_routing
        try:
            batch = retry_throttled(partial(self.payouts.open_batch, planned, now, odfi=odfi, traces=traces))
        except FileIdsExhaustedError:
            return False
        self._try_finish(batch, keys, failed)
        return True

    def _try_finish(self, batch: StoredBatch, keys: list[str], failed: list[str]) -> bool:
        """False when the batch failed (it stays open for the next cut)."""
        try:
            key = self._finish(batch)
        except Exception:
            get_logger(step="ach_cut").error(
                "ach batch failed; it stays open", batch_id=batch.batch_id, exc_info=True
            )
            failed.append(batch.batch_id)
            return False
        if key is not None:
            keys.append(key)
        return True

    def _gate(
        self,
        pending: Sequence[PendingPayout],
        states: Mapping[str, AccountState],
        in_flight: set[str],
        now: datetime,
    ) -> tuple[Sequence[PendingPayout], Sequence[PendingPayout]]:
        """The payouts that go out now, and those whose account this cut prenotes (the others wait)."""
        if not self.prenotes:
            return pending, ()
        accounts = {
            fingerprint: states.get(fingerprint, AccountState(fingerprint)).history(
                prenote_in_flight=fingerprint in in_flight
            )
            for fingerprint in set(states) | in_flight
        }
        decided = prenote_rules.gate(pending, accounts, now.astimezone(EASTERN).date())
        if decided.held:
            get_logger(step="ach_cut").info(
                "payouts wait for prenotes", waiting=len(decided.held), prenotes=len(decided.prenote_for)
            )
        return decided.live, decided.prenote_for

    def _writable(
        self, pending: Sequence[PendingPayout], now: datetime
    ) -> tuple[list[PendingPayout], list[str]]:
        """The pending payouts a file can carry; the others are set aside with their reason."""
        writable: list[PendingPayout] = []
        events: list[ev.Event] = []
        for item in pending:
            try:
                problem = self._problem(item.payout)
            except ClientError as error:
                if not is_throttling(error):
                    raise
                # Still throttled after its retries: this payout waits for the next cut, the rest go on.
                get_logger(step="ach_cut").warning(
                    "payout waits for the next cut", payment_id=item.payout.payment_id, error="throttled"
                )
                continue
            if problem is None:
                writable.append(item)
                continue
            reason, detail = problem
            self.payouts.set_aside(item, reason)
            events.append(set_aside_event(item.payout.payment_id, reason, detail, now))
        self._publish(events)
        return writable, [event.payment_id for event in events]

    def _problem(self, payout: Payable) -> tuple[str, str] | None:
        """Why no file could carry this payout (reason code, detail), if none could."""
        try:
            resolved = self._resolve(payout)
        except VaultError as error:
            return "ACCOUNT_UNAVAILABLE", f"the account vault refused the payee account: {error}"
        problem = nacha.payout_problem(resolved)
        return None if problem is None else ("UNWRITABLE", problem)

    def _resolve(self, payout: Payable) -> nacha.Payout:
        """The payout with its payee account detokenized (in memory only)."""
        if isinstance(payout, nacha.Payout):
            return payout
        assert isinstance(payout, PayoutRecord)
        account = retry_throttled(
            partial(self.accounts.detokenize, payout.account_token, tenant=payout.tenant_id)
        )
        return payout.with_account(account)

    def _publish(self, events: Sequence[ev.Event]) -> None:
        if events and not (result := self.events.publish(events)).ok:
            raise RuntimeError(f"{len(result.failed)} ACH events not published; the next cut retries")

    def _finish(self, batch: StoredBatch) -> str | None:
        """Claim, write, upload and announce one batch; the file key, or None when nothing is filed."""
        self.payouts.assign(batch)  # retries each item itself
        claims, set_aside = self._claim(batch, self.payouts.payouts(batch.payment_ids))
        paid = [
            replace(self._resolve(payout), amount_cents=hold.paid_out_cents)
            for payout, hold in claims
            if hold.paid_out_cents
        ]
        prenoted = [replace(self._resolve(payout), amount_cents=0, prenote=True) for payout in batch.prenotes]
        entries = [*paid, *prenoted]  # in each batch of the file, the payouts, then the prenotes
        written: WrittenFile | None = None
        if entries:
            key = file_key(batch)
            ach_file = self._build(batch, entries)
            traces = nacha.payment_trace_numbers(entries, ach_file)
            written = WrittenFile(key, ach_file, traces, tuple(paid), len(prenoted))
            members = {payout.payment_id: payout for payout in [*(p for p, _ in claims), *batch.prenotes]}
            self.payouts.record_entries(filed_entries(batch, members, entries, traces), key)
            self._upload(batch, key, ach_file, len(entries))
            self._remember_accounts(batch, written, members)
        self._announce(batch, written, claims, set_aside)
        key_written = written.key if written else None
        retry_throttled(lambda: self.payouts.close_batch(batch.batch_id, key_written))
        return key_written

    def _remember_accounts(
        self, batch: StoredBatch, written: WrittenFile, members: Mapping[str, Payable]
    ) -> None:
        """Once the file is uploaded: each prenote on its account, and each account's first live entry."""
        if self.payee_accounts is None:
            return
        for payout in batch.prenotes:
            prenote = prenote_rules.FiledPrenote(written.traces[payout.payment_id], batch.effective_date)
            self.payee_accounts.record_prenote(
                payout.account_fingerprint, prenote, batch_id=batch.batch_id, at=batch.created_at
            )
        first_traces: dict[str, str] = {}
        for entry in written.paid:
            fingerprint = str(getattr(members[entry.payment_id], "account_fingerprint", ""))
            if fingerprint:
                first_traces.setdefault(fingerprint, written.traces[entry.payment_id])
        known = self.payee_accounts.states(first_traces)
        for fingerprint, trace in first_traces.items():
            if fingerprint not in known or known[fingerprint].paid_trace is None:
                self.payee_accounts.mark_paid(fingerprint, trace_number=trace, at=batch.created_at)

    def _claim(
        self, batch: StoredBatch, payouts: Sequence[Payable]
    ) -> tuple[list[tuple[Payable, Hold]], list[ev.Event]]:
        """Claim each member's payout in the ledger; members it refuses are excluded (durably,
        before anything is written) and settled where the ledger says they belong.

        What a claim pays back of a provider's clawback credit is bounded so that every entry and
        the batch (its offset entry, when there is one) stay within their limits.
        """
        entry_limit, batch_limit = self._limits(batch)
        headroom = batch_limit - sum(p.amount_cents for p in payouts if p.payment_id not in batch.excluded)
        claimed: list[tuple[Payable, Hold]] = []
        events: list[ev.Event] = []
        for payout in payouts:
            if payout.payment_id in batch.excluded:
                events.extend(self._settle(payout, batch.created_at))
                continue
            outcome = retry_throttled(
                partial(
                    self.ledger.record_payout,
                    payout.payment_id,
                    amount_cents=payout.amount_cents,
                    payout_ref=batch.batch_id,
                    at=batch.created_at,
                    max_entry_cents=min(entry_limit, payout.amount_cents + max(0, headroom)),
                )
            )
            if isinstance(outcome, ledger.Rejected):  # never a reason to fail the cut for the others
                retry_throttled(partial(self.payouts.exclude, batch.batch_id, payout.payment_id))
                events.extend(self._settle(payout, batch.created_at))
                continue
            headroom -= outcome.hold.paid_out_cents - payout.amount_cents
            claimed.append((payout, outcome.hold))
        return claimed, events

    def _limits(self, batch: StoredBatch) -> tuple[int, int]:
        """The largest entry and the largest batch total (an offset entry carries it) of a batch."""
        same_day = batch.kind == "same_day"
        entry = nacha.SAME_DAY_LIMIT_CENTS if same_day else nacha.MAX_ENTRY_AMOUNT_CENTS
        if self.originator.offset_account is None:
            return entry, nacha.MAX_TOTAL_CENTS
        return entry, entry

    def _settle(self, payout: Payable, at: datetime) -> list[ev.Event]:
        """Put a payout the ledger would not pay now where it says the payout belongs: blocked while
        a dispute holds it back, pending again once it may be paid, cancelled after a refund, or
        set aside (with its event) when the ledger will never pay it as it stands."""
        hold = retry_throttled(partial(self.ledger.get_hold, payout.payment_id))
        if hold is not None and (hold.reversed_cents or hold.status is ledger.HoldStatus.REFUNDED):
            self.payouts.cancel(payout.payment_id)
            return []
        pending = PendingPayout(payout, self.payouts.released_at(payout.payment_id))
        problem = _unpayable(payout, hold)
        if problem is not None:
            reason, detail = problem
            self.payouts.set_aside(pending, reason)
            return [set_aside_event(payout.payment_id, reason, detail, at)]
        assert hold is not None
        if hold.payout_blocked:
            self.payouts.block(pending)
        else:
            self.payouts.unblock(pending)
        return []

    def _account_view(
        self, payouts: Sequence[Payable]
    ) -> tuple[dict[str, PayoutRecord], dict[str, AccountState]]:
        """Each payout with the bank's corrections of its account applied, and the accounts' states."""
        current = {p.payment_id: p for p in payouts if isinstance(p, PayoutRecord)}
        states: dict[str, AccountState] = {}
        asked: set[str] = set()
        for _ in range(MAX_CORRECTION_HOPS):
            unknown = {p.account_fingerprint for p in current.values()} - asked
            if not unknown or self.payee_accounts is None:
                break
            asked |= unknown
            states |= self.payee_accounts.states(unknown)
            for payment_id, payout in current.items():
                state = states.get(payout.account_fingerprint)
                if state is not None and state.correction is not None:
                    current[payment_id] = corrected(payout, state.correction)
        self._replace_unusable(current, states)
        return current, states

    def _replace_unusable(self, current: dict[str, PayoutRecord], states: dict[str, AccountState]) -> None:
        """Payouts to accounts that take no credits go to the account the client gave instead."""
        unusable = {
            pid: p
            for pid, p in current.items()
            if (state := states.get(p.account_fingerprint)) and state.takes_no_credits
        }
        if not unusable or self.payee_accounts is None:
            return
        found = self.payee_accounts.replacements((p.tenant_id, p.provider_id) for p in unusable.values())
        for payment_id, payout in unusable.items():
            replacement = found.get((payout.tenant_id, payout.provider_id))
            if replacement is not None and replacement.account_fingerprint not in states:
                current[payment_id] = corrected(payout, replacement)

    def _with_account_changes(
        self, pending: Sequence[PendingPayout]
    ) -> tuple[list[PendingPayout], dict[str, AccountState]]:
        """Pending payouts with corrections applied (and stored), and the states of their accounts;
        those to unusable accounts wait."""
        current, states = self._account_view([item.payout for item in pending])
        writable: list[PendingPayout] = []
        for item in pending:
            payout = current.get(item.payout.payment_id, item.payout)
            if payout != item.payout:
                assert isinstance(payout, PayoutRecord)
                self.payouts.replace_payout(payout)
            now_pending = PendingPayout(payout, item.released_at)
            state = states.get(getattr(payout, "account_fingerprint", ""))
            if state is not None and state.takes_no_credits:
                self.payouts.wait(now_pending, f"ACCOUNT_UNUSABLE_{state.unusable_code}")
                continue
            writable.append(now_pending)
        return writable, states

    def _recheck_waiting(self) -> int:
        """Payouts waiting for new account details go back to pending once the details changed."""
        waiting = retry_throttled(self.payouts.waiting)
        current, states = self._account_view([item.payout for item in waiting])
        released = 0
        for item in waiting:
            payout = current.get(item.payout.payment_id, item.payout)
            state = states.get(getattr(payout, "account_fingerprint", ""))
            if payout == item.payout or (state is not None and state.takes_no_credits):
                continue
            assert isinstance(payout, PayoutRecord)
            self.payouts.replace_payout(payout)
            self.payouts.unblock(PendingPayout(payout, item.released_at))
            released += 1
        return released

    def _recheck_blocked(self) -> int:
        """Payouts whose disputes ended go back to pending (or are settled); returns how many."""
        released = 0
        for pending in retry_throttled(self.payouts.blocked):
            hold = retry_throttled(partial(self.ledger.get_hold, pending.payout.payment_id))
            if hold is not None and hold.payout_blocked:
                continue
            self._publish(self._settle(pending.payout, pending.released_at))
            released += 1
        return released

    def _build(self, batch: StoredBatch, entries: Sequence[nacha.Payout]) -> nacha.AchFile:
        return nacha.build_file(
            entries,
            self.originator,
            effective_date=batch.effective_date,
            created_at=batch.created_at,
            file_id_modifier=batch.file_id_modifier,
            same_day=batch.kind == "same_day",
            first_trace_sequence=batch.first_trace,
        )

    def _upload(self, batch: StoredBatch, key: str, ach_file: nacha.AchFile, entries: int) -> None:
        body = nacha.write(ach_file).encode("ascii")
        retry_throttled(
            lambda: self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="text/plain",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self.kms_key_id,
                BucketKeyEnabled=True,
                Metadata={"batch-id": batch.batch_id, "entries": str(entries)},
            )
        )

    def _announce(
        self,
        batch: StoredBatch,
        written: WrittenFile | None,
        claims: Sequence[tuple[Payable, Hold]],
        set_aside: Sequence[ev.Event],
    ) -> None:
        window = "same_day" if batch.kind == "same_day" else "standard"
        events: list[ev.Event] = [
            *set_aside,
            *(netted(batch, hold) for _, hold in claims if not hold.paid_out_cents),
        ]
        if written is not None:
            events.extend(
                ev.PayoutBatched.create(
                    payment_id=hold.payment_id,
                    producer=STEP,
                    dedup_key=batch.batch_id,
                    occurred_at=batch.created_at,
                    data=ev.PayoutBatchedData(
                        batch_id=batch.batch_id,
                        file_key=written.key,
                        trace_number=written.traces[hold.payment_id],
                        amount_cents=hold.paid_out_cents,
                        effective_date=batch.effective_date.isoformat(),
                        window=window,
                        netted_cents=hold.netted_cents,
                    ),
                )
                for _, hold in claims
                if hold.paid_out_cents
            )
            events.append(batch_created(batch, written, self.bucket))
        self._publish(events)


@dataclass(frozen=True)
class WrittenFile:
    """A batch's file as written: its key, content and the trace number of each entry by payment id."""

    key: str
    ach_file: nacha.AchFile
    traces: Mapping[str, str]
    paid: tuple[nacha.Payout, ...]  # the payout entries (prenotes follow them in each batch)
    prenotes: int


def corrected(payout: PayoutRecord, correction: StoredCorrection) -> PayoutRecord:
    """The payout to the account a notification of change gave in place of its own."""
    return replace(
        payout,
        routing_number=correction.routing_number,
        account_token=correction.account_token,
        account_last4=correction.account_last4,
        account_type="savings" if correction.account_type == "savings" else "checking",
        account_fingerprint=correction.account_fingerprint,
    )


def filed_entries(
    batch: StoredBatch,
    members: Mapping[str, Payable],
    entries: Sequence[nacha.Payout],
    traces: Mapping[str, str],
) -> list[FiledEntry]:
    """The file's payout and prenote entries as the bank's answers will name them (by trace number);
    ``members``: the stored payout of each entry, by payment id."""
    return [
        FiledEntry(
            trace_number=traces[entry.payment_id],
            payment_id=entry.payment_id,
            batch_id=batch.batch_id,
            provider_id=getattr(members[entry.payment_id], "provider_id", ""),
            account_fingerprint=getattr(members[entry.payment_id], "account_fingerprint", ""),
            amount_cents=entry.amount_cents,
            effective_date=batch.effective_date,
            prenote=entry.prenote,
        )
        for entry in entries
    ]


def _unpayable(payout: Payable, hold: Hold | None) -> tuple[str, str] | None:
    """Why the ledger will never pay this payout as it stands (reason code, detail), if it will not."""
    if hold is None:
        return "NO_HOLD", "the ledger holds no payment with this id"
    if hold.payout_ref is not None:
        return "ALREADY_PAID_OUT", f"the payment was paid out by {hold.payout_ref}"
    if hold.released_cents != payout.amount_cents:
        return "AMOUNT_MISMATCH", f"payout of {payout.amount_cents} cents, released {hold.released_cents}"
    return None


def set_aside_event(payment_id: str, reason: str, detail: str, at: datetime) -> ev.Event:
    return ev.ItemSetAside.create(
        payment_id=payment_id,
        producer=STEP,
        dedup_key=f"set-aside:ach_cut:{reason}",
        occurred_at=at,
        data=ev.ItemSetAsideData(job="ach_cut", reason=reason, detail=detail[:500]),
    )


def files_deferred(deferred: Sequence[PlannedBatch], now: datetime) -> ev.Event:
    creation_date = now.astimezone(EASTERN).date()
    return ev.AchFilesDeferred.create(
        payment_id=f"achcut-{now.astimezone(UTC):%Y%m%dT%H%M%S}",
        producer=STEP,
        dedup_key=f"deferred:{now.isoformat()}",
        occurred_at=now,
        data=ev.AchFilesDeferredData(
            creation_date=creation_date.isoformat(),
            batches=len(deferred),
            payouts=sum(len(planned.payouts) for planned in deferred),
            reason=f"all {len(FILE_ID_MODIFIERS)} file id modifiers of {creation_date} are used",
        ),
    )


def netted(batch: StoredBatch, hold: Hold) -> ev.Event:
    return ev.PayoutNetted.create(
        payment_id=hold.payment_id,
        producer=STEP,
        dedup_key=batch.batch_id,
        occurred_at=batch.created_at,
        data=ev.PayoutNettedData(
            batch_id=batch.batch_id,
            provider_id=hold.provider_id,
            released_cents=hold.released_cents,
            netted_cents=hold.netted_cents,
        ),
    )


def batch_created(batch: StoredBatch, written: WrittenFile, bucket: str) -> ev.Event:
    ach_file = written.ach_file
    return ev.AchBatchCreated.create(
        payment_id=batch.batch_id,
        producer=STEP,
        dedup_key=batch.batch_id,
        occurred_at=batch.created_at,
        data=ev.AchBatchCreatedData(
            batch_id=batch.batch_id,
            bucket=bucket,
            file_key=written.key,
            entry_count=len(written.paid) + written.prenotes,
            total_credit_cents=ach_file.control.total_credit_cents,
            total_debit_cents=ach_file.control.total_debit_cents,
            entry_hash=f"{ach_file.control.entry_hash:010d}",
            effective_date=batch.effective_date.isoformat(),
            window="same_day" if batch.kind == "same_day" else "standard",
            payment_ids=[entry.payment_id for entry in written.paid],
        ),
    )


def originator_from_env() -> nacha.Originator:
    odfi = setting("ACH_ODFI_ROUTING", "011000015")
    return nacha.Originator(
        immediate_destination=odfi,
        immediate_destination_name=setting("ACH_ODFI_NAME", "ODFI"),
        immediate_origin=setting("ACH_COMPANY_ID", "1234567890"),
        immediate_origin_name=setting("ACH_COMPANY_NAME", "PAYPIPE ESCROW"),
        company_name=setting("ACH_COMPANY_NAME", "PAYPIPE ESCROW"),
        company_id=setting("ACH_COMPANY_ID", "1234567890"),
        odfi_routing=odfi[:8],
        company_entry_description=setting("ACH_ENTRY_DESCRIPTION", "PAYOUT"),
    )


def build() -> Consumer:
    table, dynamodb = setting("PAYOUTS_TABLE"), client("dynamodb")
    step = CollectStep(PayoutsStore(table, dynamodb), PayeeAccounts(table, dynamodb))
    return build_consumer(STEP, collect_routes(step))


def collect_routes(step: CollectStep) -> dict[str, Route]:
    return {
        "FundsReleased": Route(step.on_released, idempotent=False),
        "PayeeAccountReplaced": Route(step.on_account_replaced),
    }


def build_cut() -> LambdaHandler:
    lead = timedelta(minutes=int_setting("ACH_SUBMISSION_LEAD_MINUTES", 15))
    cutter = AchCutter(
        payouts=PayoutsStore(setting("PAYOUTS_TABLE"), client("dynamodb")),
        payee_accounts=PayeeAccounts(setting("PAYOUTS_TABLE"), client("dynamodb")),
        ledger=ledger_from_env(),
        s3=client("s3"),
        bucket=setting("ACH_BUCKET"),
        kms_key_id=setting("ACH_KMS_KEY_ID"),
        originator=originator_from_env(),
        events=publisher(STEP),
        accounts=account_vault_from_env(),
        max_entries_per_batch=int_setting("ACH_MAX_ENTRIES_PER_BATCH", 2500),
        submission_lead=lead,
        prenotes=setting("ACH_PRENOTE", "on") == "on",
    )

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, Any]:
        return cutter.cut(scheduled_time(event)).as_dict()

    return handler
