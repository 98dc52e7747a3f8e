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


def batch_control(header: BatchHeader, entries: Sequence[EntryDetail]) -> BatchControl:
    return BatchControl(
        service_class_code=header.service_class_code,
        entry_addenda_count=sum(1 + len(entry.addenda) for entry in entries),
        entry_hash=entry_hash(entries),
        total_debit_cents=sum(entry.amount_cents for entry in entries if entry.is_debit),
        total_credit_cents=sum(entry.amount_cents for entry in entries if entry.is_credit),
        company_id=header.company_id,
        message_authentication_code="",
        odfi_routing=header.odfi_routing,
        batch_number=header.batch_number,
    )


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
