"""Stored-data scan: after a run, look for card numbers, CVVs and payee account numbers everywhere
the pipeline leaves data.

Card numbers: any the run is known to have used (digits compared with spaces and dashes removed),
and any stand-alone digit run shaped like one: a known brand's IIN, a valid length for that brand,
and a Luhn check digit. Stand-alone means not glued to further digits, so fixed-width NACHA records
(routing + account + amount) do not count; the brand shape keeps trace numbers and epoch
milliseconds out, and hex digests (32+ hex characters, one a letter) are skipped by this detector,
though not by the known-number one.

CVVs: a verification value is three or four digits, so it is looked for where it would be written:
under a key named for it (``cvv``, ``cvc``, ``csc``, ``card_verification...``) with digits as value.

Account numbers: any the run is known to have used (of at least six characters, so that a short
one cannot match an unrelated number), as a stand-alone run of letters and digits, and any value
under an ``account_number`` key that is not masked.

Each source says what may be in it: the request carries all three; its validated form carries
the card number and account (no CVV); a NACHA file carries account numbers (and nothing else).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Flag, auto
from typing import Any

from paypipe.domain.tokenization import luhn_valid
from paypipe.domain.validation import CARD_LENGTHS, card_brand
from paypipe.events.models import Event, to_detail
from paypipe.ops.dlq_aws import peek
from paypipe.steps.ach_batch import PAYOUT_FILES_PREFIX
from paypipe.steps.ach_returns import INBOUND_PREFIX

_STANDALONE_RUN = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
_HEX_DIGEST = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])[0-9a-f]{32,}(?![0-9A-Za-z])")
_QUOTES = r"""[\\"']*"""  # a key and its value may be quoted, and escaped inside a JSON string
_CVV_FIELD = re.compile(
    rf"(?<![A-Za-z0-9])(?:cvv2?|cvc2?|csc|card_?verification(?:_?value)?)"
    rf"{_QUOTES}\s*[:=]\s*{_QUOTES}([0-9]{{3,4}})(?![0-9])",
    re.IGNORECASE,
)
_ACCOUNT_FIELD = re.compile(
    rf"(?<![A-Za-z0-9])account_?number{_QUOTES}\s*[:=]\s*{_QUOTES}([0-9A-Za-z]{{1,17}})(?![0-9A-Za-z])"
)
_DIGIT_RUN = re.compile(r"[0-9]+")
_ACCOUNT_RUN = re.compile(r"[0-9A-Z]+", re.IGNORECASE)  # maximal: what the stand-alone bounds admit
MIN_SCANNED_ACCOUNT_LENGTH = 6
NACHA_KEY_PREFIXES = (PAYOUT_FILES_PREFIX, INBOUND_PREFIX)  # payout files and the bank's answers to them


class Kind(Flag):
    PAN = auto()
    CVV = auto()
    ACCOUNT = auto()
    ALL = PAN | CVV | ACCOUNT
    NONE = 0


# What each event type may carry in clear; every other type carries none of it.
ALLOWED_IN_EVENT: Mapping[str, Kind] = {
    "PaymentRequested": Kind.ALL,
    "PaymentValidated": Kind.PAN | Kind.ACCOUNT,
    "PayeeAccountUpdated": Kind.ACCOUNT,
    "PayeeAccountValidated": Kind.ACCOUNT,
}


@dataclass(frozen=True)
class Leak:
    where: str
    kind: str  # "known card number", "card-shaped digit run", "CVV", "known account number", ...
    masked: str  # BIN and last four, or last four only

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} {self.masked}"


@dataclass(frozen=True)
class Secrets:
    """The sensitive values a run's requests carried, indexed for a scan linear in the text.

    Known numbers are found by set lookups: each text's digit runs (card numbers) and
    letter-and-digit runs (account numbers) are extracted once and tested against the sets, so a
    text costs the same whatever the number of secrets. Values of another shape (a malformed
    request's) keep a direct search, as there are few of them.
    """

    pans: frozenset[str] = frozenset()
    cvvs: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    digit_pan_lengths: frozenset[int] = field(default=frozenset(), compare=False, repr=False)
    other_pans: tuple[str, ...] = field(default=(), compare=False, repr=False)
    run_accounts: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    account_pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, requests: Iterable[Mapping[str, Any]]) -> Secrets:
        """From PaymentRequested details (as published); malformed ones add what they hold."""
        pans: set[str] = set()
        cvvs: set[str] = set()
        accounts: set[str] = set()
        for detail in requests:
            data = detail.get("data") if isinstance(detail, Mapping) else None
            if not isinstance(data, Mapping):
                continue
            card, payee = data.get("card"), data.get("payee")
            if isinstance(card, Mapping):
                _add_text(pans, card.get("number"))
                _add_text(cvvs, card.get("cvv"))
            if isinstance(payee, Mapping):
                _add_text(accounts, payee.get("account_number"))
        return cls.build(pans, cvvs, accounts)

    @classmethod
    def build(cls, pans: Iterable[str], cvvs: Iterable[str], accounts: Iterable[str]) -> Secrets:
        cards = frozenset(pans)
        scanned = frozenset(
            a.strip().upper() for a in accounts if len(a.strip()) >= MIN_SCANNED_ACCOUNT_LENGTH
        )
        runs = frozenset(a for a in scanned if _ACCOUNT_RUN.fullmatch(a))
        others = sorted(scanned - runs)
        pattern = (
            re.compile(rf"(?<![0-9A-Z])(?:{'|'.join(map(re.escape, others))})(?![0-9A-Z])", re.IGNORECASE)
            if others
            else None
        )
        return cls(
            pans=cards,
            cvvs=frozenset(cvvs),
            accounts=scanned,
            digit_pan_lengths=frozenset(len(pan) for pan in cards if _digits(pan)),
            other_pans=tuple(sorted(pan for pan in cards if not _digits(pan))),
            run_accounts=runs,
            account_pattern=pattern,
        )

    def known_pans_in(self, compact: str) -> list[str]:
        """The known card numbers ``compact`` holds anywhere, glued to other digits or not."""
        found: set[str] = set()
        if self.digit_pan_lengths:
            for run in _DIGIT_RUN.findall(compact):
                for length in self.digit_pan_lengths:
                    found.update(
                        window
                        for start in range(len(run) - length + 1)
                        if (window := run[start : start + length]) in self.pans
                    )
        found.update(pan for pan in self.other_pans if pan in compact)
        return sorted(found)

    def known_accounts_in(self, text: str) -> list[str]:
        """The known account numbers ``text`` holds as stand-alone runs of letters and digits."""
        found = {run.upper() for run in _ACCOUNT_RUN.findall(text) if run.upper() in self.run_accounts}
        if self.account_pattern is not None:
            found.update(match.upper() for match in self.account_pattern.findall(text))
        return sorted(found)


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _add_text(into: set[str], value: Any) -> None:
    if isinstance(value, str) and value:
        into.add(value)


def _card_shaped(digits: str) -> bool:
    brand = card_brand(digits)
    return brand is not None and len(digits) in CARD_LENGTHS[brand] and luhn_valid(digits)


def _mask(digits: str) -> str:
    return f"{digits[:6]}...{digits[-4:]}"


def _card_leaks(where: str, text: str, secrets: Secrets) -> list[Leak]:
    shaped_text = _HEX_DIGEST.sub(" ", text)  # digests (md5, sha-256) hold digit runs by chance
    leaks = [
        Leak(where, "card-shaped digit run", _mask(run))
        for run in _STANDALONE_RUN.findall(shaped_text)
        if _card_shaped(run)
    ]
    compact = re.sub(r"[\s-]", "", text)
    leaks.extend(Leak(where, "known card number", _mask(pan)) for pan in secrets.known_pans_in(compact))
    return leaks


def _account_leaks(where: str, text: str, secrets: Secrets) -> list[Leak]:
    leaks = [
        Leak(where, "account number field", f"...{value[-4:]}") for value in _ACCOUNT_FIELD.findall(text)
    ]
    leaks.extend(
        Leak(where, "known account number", f"...{account[-4:]}")
        for account in secrets.known_accounts_in(text)
    )
    return leaks


def find_leaks(where: str, text: str, secrets: Secrets, allowed: Kind = Kind.NONE) -> list[Leak]:
    """Every sensitive value in ``text`` that ``allowed`` does not admit there."""
    leaks: list[Leak] = []
    if Kind.PAN not in allowed:
        leaks.extend(_card_leaks(where, text, secrets))
    if Kind.CVV not in allowed:
        leaks.extend(Leak(where, "CVV", "***") for _ in _CVV_FIELD.findall(text))
    if Kind.ACCOUNT not in allowed:
        leaks.extend(_account_leaks(where, text, secrets))
    return leaks


def scan(sources: Iterable[tuple[str, str, Kind]], secrets: Secrets) -> list[Leak]:
    return [leak for where, text, allowed in sources for leak in find_leaks(where, text, secrets, allowed)]


def pipeline_sources(pipeline: Any, log_text: str) -> Iterator[tuple[str, str, Kind]]:
    """Logs, events (what each type may carry allowed), the archive, DLQ bodies, every DynamoDB
    item but vault ciphertext, and S3 objects (NACHA files may carry account numbers)."""
    for number, line in enumerate(log_text.splitlines(), 1):
        yield f"log line {number}", line, Kind.NONE
    for event in pipeline.observed():
        allowed = ALLOWED_IN_EVENT.get(event.event_type, Kind.NONE)
        yield f"event {event.event_type} {event.event_id}", _event_text(event), allowed
    for archived in pipeline.archived():
        detail_type = archived.get("detail-type")
        yield f"archive {detail_type} {archived.get('id')}", json.dumps(archived, default=str), Kind.NONE
    sqs = pipeline.client("sqs")
    for name, url in pipeline.stack.outputs.items():
        if name.endswith("DLQUrl"):
            for message in peek(sqs, url, limit=sys.maxsize, wait_seconds=0):
                yield f"DLQ {name} message {message.message_id}", message.body, Kind.NONE
    yield from _table_sources(pipeline.client("dynamodb"))
    yield from _object_sources(pipeline.client("s3"), pipeline.stack.outputs.get("AchBucketName"))


def _event_text(event: Event) -> str:
    """The event as published (secrets revealed), so the scan sees what the bus carried."""
    return json.dumps(to_detail(event), default=str)


def _table_sources(dynamodb: Any) -> Iterator[tuple[str, str, Kind]]:
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                readable = {key: value for key, value in item.items() if _scannable(value)}
                yield f"DynamoDB {table}", json.dumps(readable), Kind.NONE


def _object_sources(s3: Any, ach_bucket: str | None) -> Iterator[tuple[str, str, Kind]]:
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=name, Key=item["Key"])["Body"].read()
                nacha = name == ach_bucket and item["Key"].startswith(NACHA_KEY_PREFIXES)
                yield (
                    f"S3 {name}/{item['Key']}",
                    body.decode("utf-8", "replace"),
                    (Kind.ACCOUNT if nacha else Kind.NONE),
                )


def _scannable(value: dict[str, Any]) -> bool:
    """Skip vault ciphertext (binary) and epoch-millisecond numbers (13 digits, ~10% pass Luhn)."""
    if "B" in value:
        return False
    number = value.get("N")
    return not (number is not None and number.isdigit() and 10**12 <= int(number) < 10**13)
