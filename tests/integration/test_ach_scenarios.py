"""ACH on the rails the Fed runs: file identities, trace numbers, missed windows, holidays, limits
and a poison payout, each a scenario file played by the runner."""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from paypipe.embedded.scenario import card_number
from tests.integration.scenario_kit import Script, iso

pytestmark = pytest.mark.embedded

NEW_YORK = ZoneInfo("America/New_York")


def ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


def payments(script: Script, count: int, at: datetime, prefix: str, **options) -> list[str]:
    """``count`` unrelated payments requested a minute apart from ``at`` (no velocity between them)."""
    rng = random.Random(prefix)
    ids = []
    for index in range(count):
        payment_id = f"{prefix}{index:03d}"
        script.request(
            at + timedelta(minutes=index),
            payment_id,
            customer=f"{prefix}-c{index}",
            provider=f"{prefix}-p{index}",
            pan=card_number(rng),
            ip=f"10.{index // 250}.{index % 250}.{rng.randrange(1, 250)}",
            **options,
        )
        ids.append(payment_id)
    return ids


def test_an_evening_of_releases_gets_unique_file_ids_and_traces_and_all_pay(tmp_path):
    script = Script()
    ids = payments(script, 92, ny(2026, 11, 2, 9), "ev")
    for index, payment_id in enumerate(ids):  # every five minutes from 16:20 to 23:55 New York
        script.complete(ny(2026, 11, 2, 16, 20) + timedelta(minutes=5 * index), payment_id)
    report = script.play(tmp_path, ny(2026, 11, 3, 3))
    report.assert_clean()
    assert {report.state(payment_id) for payment_id in ids} == {"PayoutBatched"}
    entries = report.raw["ach_entries"]
    files_by_id = Counter(entry["file_id"] for entry in {e["file_key"]: e for e in entries}.values())
    assert set(files_by_id.values()) == {1}  # one file per (date, modifier)
    assert sum(1 for file_id in files_by_id if file_id.startswith("2026-11-02/")) == 36  # all modifiers
    assert any(file_id.startswith("2026-11-03/") for file_id in files_by_id)  # the rest waited
    assert len({entry["trace_number"] for entry in entries}) == len(entries)
    assert all(e["effective_date"] == "2026-11-03" for e in entries if not e["same_day"])


def test_cuts_after_each_deadline_file_for_the_next_window_the_fed_still_takes(tmp_path):
    # Cuts at 10:50, 14:50 and 16:50 New York: each just after a same-day deadline.
    script = Script(parameters={"AchCutSchedule": "cron(50 15,19,21 ? * MON-FRI *)"})
    morning, noon, late = payments(script, 3, ny(2026, 11, 2, 8), "dl")
    script.complete(ny(2026, 11, 2, 10, 0), morning)  # window 10:30: missed, goes at 14:45
    script.complete(ny(2026, 11, 2, 14, 0), noon)  # window 14:45: missed, goes at 16:45
    script.complete(ny(2026, 11, 2, 16, 20), late)  # window 16:45: missed, the last of the day
    report = script.play(tmp_path, ny(2026, 11, 3, 12))
    report.assert_clean()
    (first,) = report.entries(morning)
    (second,) = report.entries(noon)
    (third,) = report.entries(late)
    assert (first["same_day"], first["effective_date"]) == (True, "2026-11-02")
    assert (second["same_day"], second["effective_date"]) == (True, "2026-11-02")
    assert (third["same_day"], third["effective_date"]) == (False, "2026-11-03")


def test_a_holiday_weekend_settles_on_the_next_banking_day(tmp_path):
    # Christmas 2026 is a Friday: Thursday evening and the weekend settle on Monday the 28th.
    script = Script()
    thursday, saturday = payments(script, 2, ny(2026, 12, 24, 9), "xm")
    script.complete(ny(2026, 12, 24, 17, 30), thursday)
    script.complete(ny(2026, 12, 26, 11), saturday)
    report = script.play(tmp_path, ny(2026, 12, 28, 12))
    report.assert_clean()
    for payment_id in (thursday, saturday):
        (entry,) = report.entries(payment_id)
        assert (entry["same_day"], entry["effective_date"]) == (False, "2026-12-28")


def test_a_poison_payout_is_set_aside_and_the_good_ones_are_filed_on_time(tmp_path):
    script = Script()
    good = payments(script, 3, ny(2026, 11, 2, 9), "ok")
    for index, payment_id in enumerate(good):
        script.complete(ny(2026, 11, 2, 9, 30 + index), payment_id)
    forged = {
        "event_id": "poison-release",
        "event_type": "FundsReleased",
        "schema_version": "2.0",
        "payment_id": "poison",
        "correlation_id": "poison",
        "occurred_at": iso(ny(2026, 11, 2, 9, 40)),
        "producer": "release",
        "data": {
            "hold_id": "poison:hold",
            "amount_cents": 5_000,
            "currency": "USD",
            "provider_id": "prov-x",
            "payee": {
                "name": "Jo",
                "routing_number": "123456789",  # no bank has it
                "account_token": "acct_poison",  # nor the vault: no file can carry the entry
                "account_last4": "2345",
                "account_fingerprint": "afp_poison",
                "account_type": "checking",
                "payee_type": "individual",
            },
            "trigger": "service_completed",
            "released_at": iso(ny(2026, 11, 2, 9, 40)),
        },
    }
    script.publish(ny(2026, 11, 2, 9, 40), "FundsReleased", forged, source="paypipe.release")
    report = script.play(tmp_path, ny(2026, 11, 2, 12))
    report.assert_clean()
    assert report.raw["payouts_set_aside"] == [{"payment_id": "poison", "reason": "ACCOUNT_UNAVAILABLE"}]
    for payment_id in good:
        (entry,) = report.entries(payment_id)
        assert (entry["same_day"], entry["effective_date"]) == (True, "2026-11-02")  # the 10:15 cut


@pytest.mark.parametrize(
    "amount, same_day",
    [(100_000_000, True), (100_000_001, False), (1_000_000_000, False)],
    ids=["same-day-limit", "over-same-day-limit", "max-amount"],
)
def test_amounts_at_each_limit_take_the_window_that_can_carry_them(tmp_path, amount, same_day):
    script = Script()
    (payment_id,) = payments(script, 1, ny(2026, 11, 2, 9), "am", amount=amount)
    script.complete(ny(2026, 11, 2, 9, 30), payment_id)
    report = script.play(tmp_path, ny(2026, 11, 2, 12))
    report.assert_clean()
    (entry,) = report.entries(payment_id)
    assert (entry["amount_cents"], entry["same_day"]) == (amount, same_day)


def test_amounts_above_the_limits_are_refused_at_validate(tmp_path):
    script = Script(parameters={"MaxAmountCents": 9_999_999_999})
    at_nacha, over_nacha = payments(script, 2, ny(2026, 11, 2, 9), "nx", amount=9_999_999_999)
    script.lines[-1]["publish"]["Detail"]["data"]["amount_cents"] = 10_000_000_000
    script.complete(ny(2026, 11, 2, 9, 30), at_nacha)
    report = script.play(tmp_path, ny(2026, 11, 2, 12))
    report.assert_clean()
    assert report.paid(at_nacha) == 9_999_999_999
    assert report.rejected(over_nacha) == ["AMOUNT_OVER_LIMIT"]


def test_a_max_amount_above_what_nacha_carries_cannot_be_configured(tmp_path):
    script = Script(parameters={"MaxAmountCents": 10_000_000_000})
    payments(script, 1, ny(2026, 11, 2, 9), "cf")
    with pytest.raises(ValueError, match="above the maximum"):
        script.play(tmp_path, ny(2026, 11, 2, 10))


def test_a_currency_no_rail_pays_cannot_be_configured(tmp_path):
    script = Script(parameters={"SupportedCurrencies": "USD,EUR"})
    payments(script, 1, ny(2026, 11, 2, 9), "cu")
    with pytest.raises(ValueError, match="is not one of"):
        script.play(tmp_path, ny(2026, 11, 2, 10))


def test_more_payouts_than_fit_one_batch_are_split_into_files(tmp_path):
    script = Script(parameters={"AchMaxEntriesPerBatch": 3})
    ids = payments(script, 7, ny(2026, 11, 2, 9), "sp")
    for payment_id in ids:
        script.complete(ny(2026, 11, 2, 9, 30), payment_id)
    report = script.play(tmp_path, ny(2026, 11, 2, 12))
    report.assert_clean()
    entries = report.raw["ach_entries"]
    per_file = Counter(entry["file_key"] for entry in entries)
    assert sorted(per_file.values()) == [1, 3, 3]
    assert len({entry["file_id"] for entry in entries}) == 3
    assert len({entry["trace_number"] for entry in entries}) == 7
