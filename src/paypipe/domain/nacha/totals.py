"""Control records as the entries they close imply them: built by the builder, checked by the reader."""

from __future__ import annotations

import math
from collections.abc import Sequence

from paypipe.domain.nacha.layouts import ENTRY_HASH_MODULUS
from paypipe.domain.nacha.model import (
    BLOCKING_FACTOR,
    Batch,
    BatchControl,
    BatchHeader,
    EntryDetail,
    FileControl,
)


def entry_hash(entries: Sequence[EntryDetail]) -> int:
    return sum(int(entry.rdfi_routing) for entry in entries) % ENTRY_HASH_MODULUS


class Tally:
    """A batch's totals, accumulated entry by entry (with its addenda)."""

    __slots__ = ("credit_cents", "credits", "debit_cents", "debits", "records", "routing_sum")

    def __init__(self) -> None:
        self.records = self.routing_sum = self.credit_cents = self.debit_cents = self.credits = (
            self.debits
        ) = 0

    def add(self, entry: EntryDetail) -> None:
        self.records += 1 + len(entry.addenda)
        self.routing_sum += int(entry.rdfi_routing)
        if entry.is_credit:
            self.credits += 1
            self.credit_cents += entry.amount_cents
        elif entry.is_debit:
            self.debits += 1
            self.debit_cents += entry.amount_cents

    def control(self, header: BatchHeader) -> BatchControl:
        return BatchControl(
            service_class_code=header.service_class_code,
            entry_addenda_count=self.records,
            entry_hash=self.routing_sum % ENTRY_HASH_MODULUS,
            total_debit_cents=self.debit_cents,
            total_credit_cents=self.credit_cents,
            company_id=header.company_id,
            message_authentication_code="",
            odfi_routing=header.odfi_routing,
            batch_number=header.batch_number,
        )


def batch_control(header: BatchHeader, entries: Sequence[EntryDetail]) -> BatchControl:
    tally = Tally()
    for entry in entries:
        tally.add(entry)
    return tally.control(header)


def file_control(batches: Sequence[Batch]) -> FileControl:
    """From each batch's control record; the block count assumes those counts are right."""
    records = 2 + sum(2 + batch.control.entry_addenda_count for batch in batches)
    return FileControl(
        batch_count=len(batches),
        block_count=math.ceil(records / BLOCKING_FACTOR),
        entry_addenda_count=sum(batch.control.entry_addenda_count for batch in batches),
        entry_hash=sum(batch.control.entry_hash for batch in batches) % ENTRY_HASH_MODULUS,
        total_debit_cents=sum(batch.control.total_debit_cents for batch in batches),
        total_credit_cents=sum(batch.control.total_credit_cents for batch in batches),
    )
