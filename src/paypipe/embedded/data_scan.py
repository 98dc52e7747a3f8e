"""PAN leak scan: after a run, look for card numbers everywhere the pipeline leaves data.

Two detectors: any card number the run is known to have used (digits compared with spaces and
dashes removed), and any stand-alone digit run shaped like a card number: a known brand's IIN, a
valid length for that brand, and a Luhn check digit. Stand-alone means not glued to further
digits, so fixed-width NACHA records (routing + account + amount) do not count; the brand shape
keeps trace numbers and epoch milliseconds out, and hex digests (32+ hex characters, at least
one a letter) are skipped by this detector, though not by the known-number one.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from paypipe.domain.tokenization import luhn_valid
from paypipe.domain.validation import CARD_LENGTHS, card_brand
from paypipe.ops.dlq_aws import peek

_STANDALONE_RUN = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
_HEX_DIGEST = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])[0-9a-f]{32,}(?![0-9A-Za-z])")
PAN_CARRYING_EVENTS = frozenset({"PaymentRequested", "PaymentValidated"})


@dataclass(frozen=True)
class Leak:
    where: str
    kind: str  # "known card number" or "Luhn-valid digit run"
    masked: str  # BIN + last four only

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} {self.masked}"


def _card_shaped(digits: str) -> bool:
    brand = card_brand(digits)
    return brand is not None and len(digits) in CARD_LENGTHS[brand] and luhn_valid(digits)


def _mask(digits: str) -> str:
    return f"{digits[:6]}...{digits[-4:]}"


def find_leaks(where: str, text: str, known_pans: frozenset[str]) -> list[Leak]:
    shaped_text = _HEX_DIGEST.sub(" ", text)  # digests (md5, sha-256) hold digit runs by chance
    leaks = [
        Leak(where, "card-shaped digit run", _mask(run))
        for run in _STANDALONE_RUN.findall(shaped_text)
        if _card_shaped(run)
    ]
    compact = re.sub(r"[\s-]", "", text)
    leaks.extend(Leak(where, "known card number", _mask(pan)) for pan in known_pans if pan in compact)
    return leaks


def scan(sources: Iterable[tuple[str, str]], known_pans: Iterable[str]) -> list[Leak]:
    known = frozenset(known_pans)
    return [leak for where, text in sources for leak in find_leaks(where, text, known)]


def pipeline_sources(pipeline: Any, log_text: str) -> Iterator[tuple[str, str]]:
    """Logs, events after tokenize, DLQ bodies, every DynamoDB item but vault ciphertext, S3 objects."""
    for number, line in enumerate(log_text.splitlines(), 1):
        yield f"log line {number}", line
    for event in pipeline.observed():
        if event.event_type not in PAN_CARRYING_EVENTS:
            yield f"event {event.event_type} {event.event_id}", event.model_dump_json()
    sqs = pipeline.client("sqs")
    for name, url in pipeline.stack.outputs.items():
        if name.endswith("DLQUrl"):
            for message in peek(sqs, url, limit=sys.maxsize, wait_seconds=0):
                yield f"DLQ {name} message {message.message_id}", message.body
    dynamodb = pipeline.client("dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                readable = {key: value for key, value in item.items() if _scannable(value)}
                yield f"DynamoDB {table}", json.dumps(readable)
    s3 = pipeline.client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read()
                yield f"S3 {bucket['Name']}/{item['Key']}", body.decode("utf-8", "replace")


def _scannable(value: dict[str, Any]) -> bool:
    """Skip vault ciphertext (binary) and epoch-millisecond numbers (13 digits, ~10% pass Luhn)."""
    if "B" in value:
        return False
    number = value.get("N")
    return not (number is not None and number.isdigit() and 10**12 <= int(number) < 10**13)
