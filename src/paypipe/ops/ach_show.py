"""``paypipe ach show FILE``: a NACHA file a bank sent, as people read it or as JSON.

Returns and notifications of change are decoded with their titles from the Nacha code table;
account numbers show their last four characters unless ``--unmasked``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import date, time
from typing import Any

from paypipe.domain.nacha import (
    CHANGE_REASONS,
    RETURN_REASONS,
    SERVICE_CLASS_CREDITS,
    SERVICE_CLASS_DEBITS,
    AchFile,
    Addenda,
    Batch,
    Correction,
    EntryDetail,
    NachaParseError,
    RawAddenda,
    RefusedCorrection,
    Return,
    decode_corrected_data,
    parse,
)
from paypipe.errors import EXIT_OK, CommandError

SHOWN_DIGITS = 4
# Addenda kinds as the text view names them, by model.
LABELS = {
    "EntryReturn": "return",
    "DishonoredReturn": "dishonored return",
    "ContestedDishonoredReturn": "contested dishonored return",
    "EntryCorrection": "NOC",
    "RefusedCorrection": "refused NOC",
}
SERVICE_CLASSES = {SERVICE_CLASS_CREDITS: "credits", SERVICE_CLASS_DEBITS: "debits"}


# -- the document: the file as plain values ------------------------------------------------------


def mask(account: str, unmasked: bool) -> str:
    if unmasked or len(account) <= SHOWN_DIGITS:
        return account
    return "*" * (len(account) - SHOWN_DIGITS) + account[-SHOWN_DIGITS:]


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """Dates and times as ISO 8601 text; everything else as it is."""
    return {
        name: value.isoformat() if isinstance(value, date | time) else value for name, value in values.items()
    }


def return_document(addenda: Return) -> dict[str, Any]:
    reason = RETURN_REASONS.get(addenda.code)
    return {
        **plain(asdict(addenda)),
        "kind": type(addenda).__name__,
        "title": reason.title if reason else "unknown return reason code",
        "stops_credits": bool(reason and reason.stops_credits),
    }


def correction_document(addenda: Correction, unmasked: bool) -> dict[str, Any]:
    change_code = addenda.change_code if isinstance(addenda, RefusedCorrection) else addenda.code
    corrected = decode_corrected_data(change_code, addenda.corrected_data)
    reason = CHANGE_REASONS.get(addenda.code)
    return {
        **plain(asdict(addenda)),
        "kind": type(addenda).__name__,
        "title": reason.title if reason else "unknown change code",
        "corrected_data": {
            name: mask(value, unmasked) if "account" in name else value for name, value in corrected.items()
        },
    }


def entry_document(entry: EntryDetail, unmasked: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "transaction_code": entry.transaction_code,
        "credit": entry.is_credit,
        "rdfi_routing": entry.rdfi_routing + entry.check_digit,
        "account": mask(entry.dfi_account_number, unmasked),
        "name": entry.individual_name,
        "identification": entry.individual_id_number,
        "amount_cents": entry.amount_cents,
        "trace_number": entry.trace_number,
        "addenda": [
            addenda.payment_related_information if isinstance(addenda, Addenda) else addenda.text
            for addenda in entry.addenda
            if isinstance(addenda, Addenda | RawAddenda)
        ],
    }
    if entry.entry_return is not None:
        document["return"] = return_document(entry.entry_return)
    if entry.correction is not None:
        document["correction"] = correction_document(entry.correction, unmasked)
    return document


def batch_document(batch: Batch, unmasked: bool) -> dict[str, Any]:
    header, control = batch.header, batch.control
    return {
        "batch_number": header.batch_number,
        "sec_code": header.sec_code,
        "service_class": header.service_class_code,
        "company_name": header.company_name,
        "company_id": header.company_id,
        "entry_description": header.company_entry_description,
        "effective_entry_date": None
        if header.effective_entry_date is None
        else str(header.effective_entry_date),
        "settlement_date": header.settlement_date,
        "entries": [entry_document(entry, unmasked) for entry in batch.entries],
        "total_debit_cents": control.total_debit_cents,
        "total_credit_cents": control.total_credit_cents,
    }


def file_document(file: AchFile, unmasked: bool) -> dict[str, Any]:
    header = plain(asdict(file.header))
    return {
        "header": header,
        "batches": [batch_document(batch, unmasked) for batch in file.batches],
        "control": asdict(file.control),
    }


# -- the text view, from the document ------------------------------------------------------------


def dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def addenda_lines(entry: dict[str, Any]) -> list[str]:
    lines = [f"      addenda: {text}" for text in entry["addenda"]]
    if "return" in entry:
        found = entry["return"]
        death = f", date of death {found['date_of_death']}" if found.get("date_of_death") else ""
        lines.append(
            f"      {LABELS[found['kind']]} {found['code']} {found['title']} (original trace "
            f"{found['original_trace_number']}{death})"
            + ("; no further credits to this account" if found["stops_credits"] else "")
        )
    if "correction" in entry:
        found = entry["correction"]
        corrected = ", ".join(f"{name} {value}" for name, value in found["corrected_data"].items())
        refused = f" of {found['change_code']}" if "change_code" in found else ""
        lines.append(
            f"      {LABELS[found['kind']]} {found['code']} {found['title']}{refused} (original trace "
            f"{found['original_trace_number']}): {corrected or 'no corrected data'}"
        )
    return lines


def batch_lines(batch: dict[str, Any]) -> list[str]:
    service = SERVICE_CLASSES.get(batch["service_class"], "mixed")
    lines = [
        f"batch {batch['batch_number']}  {batch['sec_code']}  service class {batch['service_class']} "
        f"({service})  {batch['company_name']} {batch['company_id']}  {batch['entry_description']}  "
        f"effective {batch['effective_entry_date'] or '-'}"
    ]
    for entry in batch["entries"]:
        lines.append(
            f"  {entry['transaction_code']} {'credit' if entry['credit'] else 'debit '} "
            f"{dollars(entry['amount_cents']):>14}  {entry['name']}  RDFI {entry['rdfi_routing']} "
            f"account {entry['account']}  trace {entry['trace_number']}"
        )
        lines.extend(addenda_lines(entry))
    lines.append(
        f"  totals: debits {dollars(batch['total_debit_cents'])}, "
        f"credits {dollars(batch['total_credit_cents'])}"
    )
    return lines


def render(document: dict[str, Any]) -> str:
    header, control = document["header"], document["control"]
    lines = [
        f"ACH file created {header['creation_date']} {header['creation_time'] or ''} "
        f"modifier {header['file_id_modifier']}: from {header['immediate_origin_name']} "
        f"({header['immediate_origin']}) to {header['immediate_destination_name']} "
        f"({header['immediate_destination']})"
    ]
    for batch in document["batches"]:
        lines.extend(batch_lines(batch))
    lines.append(
        f"{control['batch_count']} batches, {control['entry_addenda_count']} entry and addenda records, "
        f"debits {dollars(control['total_debit_cents'])}, credits {dollars(control['total_credit_cents'])}"
    )
    return "\n".join(lines)


# -- the shell -----------------------------------------------------------------------------------


def read_file(args: argparse.Namespace) -> AchFile:
    try:
        text = args.file.read_bytes().decode("latin-1")  # the reader names any character it refuses
    except OSError as error:
        raise CommandError(f"cannot read {args.file}: {error.strerror}") from None
    try:
        return parse(text, strict=args.strict)
    except NachaParseError as error:
        raise CommandError(f"{args.file}: {error}") from None


def run(args: argparse.Namespace) -> int:
    document = file_document(read_file(args), args.unmasked)
    print(json.dumps(document, indent=2) if args.json else render(document))
    return EXIT_OK
