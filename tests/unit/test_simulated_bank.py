"""The simulated bank over S3 (moto): payout files read once, answer files put when due."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from paypipe.domain.bank_simulator import BankSimulator
from paypipe.domain.nacha import AchFile, NachaParseError, build_file, parse, write
from paypipe.embedded.bank import SimulatedBank
from tests.unit.test_nacha import WITH_OFFSET, payout

BUCKET = "paypipe-ach"
CREATED = datetime(2025, 6, 10, 14, 5, tzinfo=UTC)
QUIET = BankSimulator(return_rate=0, noc_rate=0)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def payout_file(accounts: list[str], *, effective: date, first_trace: int) -> AchFile:
    payouts = [payout(f"pay_{first_trace}_{n}", 1_000, account=a) for n, a in enumerate(accounts)]
    return build_file(
        payouts, WITH_OFFSET, effective_date=effective, created_at=CREATED, first_trace_sequence=first_trace
    )


def put(s3: Any, key: str, file: AchFile) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=write(file).encode("ascii"))


def inbound_keys(s3: Any) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="inbound/").get("Contents", [])]


def read(s3: Any, key: str) -> AchFile:
    return parse(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("ascii"))


def test_answers_are_put_when_due_and_each_file_is_answered_once(s3: Any) -> None:
    bank = SimulatedBank(s3, replace(QUIET, return_delay_days=2, noc_delay_days=3))
    put(
        s3,
        "ach/2025/06/11/b1.ach",
        payout_file(["SIMR03", "SIMC01", "123456"], effective=date(2025, 6, 11), first_trace=1),
    )
    s3.put_object(Bucket=BUCKET, Key="ach/2025/06/11/readme.txt", Body=b"not a payout file")
    assert bank.answer_new_files(BUCKET) == ["ach/2025/06/11/b1.ach"]
    assert bank.answer_new_files(BUCKET) == []  # remembered
    assert [(p.delivery_date, p.name) for p in bank.planned] == [
        (date(2025, 6, 13), "2025-06-11-b1"),
        (date(2025, 6, 16), "2025-06-11-b1"),
    ]

    assert bank.deliver_due(date(2025, 6, 12), BUCKET) == []
    assert bank.deliver_due(date(2025, 6, 13), BUCKET) == ["inbound/2025/06/13/2025-06-11-b1.ach"]
    returned = read(s3, "inbound/2025/06/13/2025-06-11-b1.ach")
    assert [e.entry_return.code for b in returned.batches for e in b.entries if e.entry_return] == ["R03"]
    assert bank.deliver_due(date(2025, 6, 13), BUCKET) == []  # delivered once
    assert bank.deliver_due(date(2025, 6, 20), BUCKET) == ["inbound/2025/06/16/2025-06-11-b1.ach"]
    notified = read(s3, "inbound/2025/06/16/2025-06-11-b1.ach")
    assert [e.correction.code for b in notified.batches for e in b.entries if e.correction] == ["C01"]
    assert inbound_keys(s3) == [
        "inbound/2025/06/13/2025-06-11-b1.ach",
        "inbound/2025/06/16/2025-06-11-b1.ach",
    ]
    assert bank.planned == ()


def test_files_delivered_the_same_day_take_successive_file_id_modifiers(s3: Any) -> None:
    bank = SimulatedBank(s3, QUIET)
    put(s3, "ach/2025/06/11/b2.ach", payout_file(["SIMR02"], effective=date(2025, 6, 11), first_trace=10))
    put(s3, "ach/2025/06/11/b1.ach", payout_file(["SIMR04"], effective=date(2025, 6, 11), first_trace=1))
    put(s3, "ach/2025/06/12/b3.ach", payout_file(["123456"], effective=date(2025, 6, 12), first_trace=20))
    assert bank.answer_new_files(BUCKET) == [
        "ach/2025/06/11/b1.ach",
        "ach/2025/06/11/b2.ach",
        "ach/2025/06/12/b3.ach",
    ]
    keys = bank.deliver_due(date(2025, 6, 13), BUCKET)
    assert keys == ["inbound/2025/06/13/2025-06-11-b1.ach", "inbound/2025/06/13/2025-06-11-b2.ach"]
    assert [read(s3, key).header.file_id_modifier for key in keys] == ["A", "B"]
    put(s3, "ach/2025/06/11/b4.ach", payout_file(["SIMR16"], effective=date(2025, 6, 11), first_trace=30))
    assert bank.answer_new_files(BUCKET) == ["ach/2025/06/11/b4.ach"]
    assert bank.deliver_due(date(2025, 6, 13), BUCKET) == ["inbound/2025/06/13/2025-06-11-b4.ach"]
    assert read(s3, "inbound/2025/06/13/2025-06-11-b4.ach").header.file_id_modifier == "C"


def test_two_banks_with_one_seed_put_the_same_bytes(s3: Any) -> None:
    original = payout_file([f"{900_000 + n}" for n in range(300)], effective=date(2025, 6, 11), first_trace=1)
    put(s3, "ach/2025/06/11/b1.ach", original)
    bodies = []
    for inbound in ("one/", "two/"):
        bank = SimulatedBank(s3, BankSimulator(seed=5, return_rate=0.05, noc_rate=0.05))
        bank.answer_new_files(BUCKET)
        keys = bank.deliver_due(date(2025, 6, 30), BUCKET, inbound_prefix=inbound)
        assert keys
        bodies.append([s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys])
    assert bodies[0] == bodies[1]


def test_listing_follows_continuation_pages(s3: Any) -> None:
    original = payout_file(["SIMR03"], effective=date(2025, 6, 11), first_trace=1)
    for n in range(1_005):  # more than one list_objects_v2 page of 1,000
        s3.put_object(Bucket=BUCKET, Key=f"ach/2025/06/11/a{n:04d}.txt", Body=b"")
    put(s3, "ach/2025/06/11/z.ach", original)
    assert SimulatedBank(s3, QUIET).answer_new_files(BUCKET) == ["ach/2025/06/11/z.ach"]


def test_answer_files_are_encrypted_with_the_key_given(s3: Any) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    bank = SimulatedBank(s3, QUIET, kms_key_id=key_id)
    put(s3, "ach/2025/06/11/b1.ach", payout_file(["SIMR03"], effective=date(2025, 6, 11), first_trace=1))
    bank.answer_new_files(BUCKET)
    (key,) = bank.deliver_due(date(2025, 6, 13), BUCKET)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith(key_id)


def test_a_file_the_strict_reader_rejects_stays_unanswered(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="ach/2025/06/11/bad.ach", Body=b"101 not a nacha file\n")
    bank = SimulatedBank(s3, QUIET)
    with pytest.raises(NachaParseError):
        bank.answer_new_files(BUCKET)
    put(s3, "ach/2025/06/11/bad.ach", payout_file(["SIMR03"], effective=date(2025, 6, 11), first_trace=1))
    assert bank.answer_new_files(BUCKET) == ["ach/2025/06/11/bad.ach"]
