from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import luhn

from paypipe.domain.currencies import is_iso_currency, minor_units
from paypipe.domain.validation import (
    CardBrand,
    PaymentFacts,
    RejectReason,
    card_brand,
    card_expired,
    validate_payment,
)

TODAY = date(2026, 11, 23)
LIMIT = 1_000_000

VALID = PaymentFacts(
    amount_cents=12_345,
    currency="USD",
    card_number="4111111111111111",
    exp_month=12,
    exp_year=2028,
    routing_number="021000021",
    account_number="000123456789",
)


def codes(facts: PaymentFacts, **kwargs: object) -> list[RejectReason]:
    options: dict[str, object] = {"today": TODAY, "max_amount_cents": LIMIT, **kwargs}
    return [r.code for r in validate_payment(facts, **options)]  # type: ignore[arg-type]


def with_luhn(partial: str) -> str:
    return partial + luhn.calc_check_digit(partial)


def test_valid_payment_has_no_rejections() -> None:
    assert codes(VALID) == []


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4111111111111111", CardBrand.VISA),
        ("4222222222222", CardBrand.VISA),
        ("5555555555554444", CardBrand.MASTERCARD),
        ("5105105105105100", CardBrand.MASTERCARD),
        ("2223003122003222", CardBrand.MASTERCARD),
        ("2720990000000007", CardBrand.MASTERCARD),
        ("378282246310005", CardBrand.AMEX),
        ("371449635398431", CardBrand.AMEX),
        ("6011111111111117", CardBrand.DISCOVER),
        ("6445644564456445", CardBrand.DISCOVER),
        ("6500000000000002", CardBrand.DISCOVER),
        (with_luhn("622126000000000"), CardBrand.DISCOVER),
        (with_luhn("622925000000000"), CardBrand.DISCOVER),
        ("3530111333300000", CardBrand.JCB),
        ("3566002020360505", CardBrand.JCB),
        ("6200000000000005", CardBrand.UNIONPAY),
        (with_luhn("622125000000000"), CardBrand.UNIONPAY),
        (with_luhn("622926000000000"), CardBrand.UNIONPAY),
        (with_luhn("621234567890123456"), CardBrand.UNIONPAY),
        ("36227206271667", CardBrand.DINERS),
        ("30569309025904", CardBrand.DINERS),
        ("38520000023237", CardBrand.DINERS),
    ],
)
def test_valid_cards_per_brand(number: str, brand: CardBrand) -> None:
    assert card_brand(number) is brand
    assert codes(dataclasses.replace(VALID, card_number=number)) == []


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("2220990000000000", None),
        ("2721000000000000", None),
        ("5000000000000000", None),
        ("5600000000000000", None),
        ("3527000000000000", None),
        ("3590000000000000", None),
        ("3060000000000000", None),
        ("6010000000000000", None),
        ("6430000000000000", None),
        ("1234567890123452", None),
        ("", None),
        ("4111-1111", None),
    ],
)
def test_card_brand_outside_iin_ranges(number: str, brand: CardBrand | None) -> None:
    assert card_brand(number) is brand


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("4111 1111 1111 1111", [RejectReason.CARD_NUMBER_MALFORMED]),
        ("4111-1111-1111-1111", [RejectReason.CARD_NUMBER_MALFORMED]),
        ("", [RejectReason.CARD_NUMBER_MALFORMED]),
        ("\uff14" + "1" * 15, [RejectReason.CARD_NUMBER_MALFORMED]),  # full-width digit four
        ("4111111111111112", [RejectReason.CARD_LUHN_FAILED]),
        ("5555555555554440", [RejectReason.CARD_LUHN_FAILED]),
        (with_luhn("41111111111111"), [RejectReason.CARD_LENGTH_INVALID]),  # Visa, 15 digits
        (with_luhn("55555555555544"), [RejectReason.CARD_LENGTH_INVALID]),  # Mastercard, 15 digits
        (with_luhn("3782822463100051"), [RejectReason.CARD_LENGTH_INVALID]),  # Amex, 17 digits
        (with_luhn("60111111111111"), [RejectReason.CARD_LENGTH_INVALID]),  # Discover, 15 digits
        (with_luhn("362272062716"), [RejectReason.CARD_LENGTH_INVALID]),  # Diners, 13 digits
        (with_luhn("6200000000000000000"), [RejectReason.CARD_LENGTH_INVALID]),  # UnionPay, 20 digits
        ("378282246310006", [RejectReason.CARD_LUHN_FAILED]),
        (
            "41111111111111111",
            [RejectReason.CARD_LENGTH_INVALID, RejectReason.CARD_LUHN_FAILED],
        ),
        (with_luhn("123456789012345"), [RejectReason.CARD_BRAND_UNKNOWN]),
        ("1234567890123456", [RejectReason.CARD_BRAND_UNKNOWN, RejectReason.CARD_LUHN_FAILED]),
    ],
)
def test_card_number_rejections(number: str, expected: list[RejectReason]) -> None:
    assert codes(dataclasses.replace(VALID, card_number=number)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"amount_cents": 0}, [RejectReason.AMOUNT_NOT_POSITIVE]),
        ({"amount_cents": -1}, [RejectReason.AMOUNT_NOT_POSITIVE]),
        ({"amount_cents": 1}, []),
        ({"amount_cents": LIMIT}, []),
        ({"amount_cents": LIMIT + 1}, [RejectReason.AMOUNT_OVER_LIMIT]),
        ({"currency": "XYZ"}, [RejectReason.CURRENCY_UNKNOWN]),
        ({"currency": "usd"}, [RejectReason.CURRENCY_UNKNOWN]),
        ({"currency": ""}, [RejectReason.CURRENCY_UNKNOWN]),
        ({"currency": "EUR"}, [RejectReason.CURRENCY_NOT_SUPPORTED]),
        ({"currency": "XAU"}, [RejectReason.CURRENCY_NOT_SUPPORTED]),
        ({"exp_month": 0}, [RejectReason.CARD_EXPIRY_INVALID]),
        ({"exp_month": 13}, [RejectReason.CARD_EXPIRY_INVALID]),
        ({"exp_year": 28}, [RejectReason.CARD_EXPIRY_INVALID]),
        ({"exp_year": 2047}, [RejectReason.CARD_EXPIRY_INVALID]),
        ({"exp_year": 2046}, []),
        ({"exp_month": 11, "exp_year": 2026}, []),
        ({"exp_month": 10, "exp_year": 2026}, [RejectReason.CARD_EXPIRED]),
        ({"exp_month": 12, "exp_year": 2025}, [RejectReason.CARD_EXPIRED]),
        ({"routing_number": "011000015"}, []),
        ({"routing_number": "122105155"}, []),
        ({"routing_number": "123456789"}, [RejectReason.ROUTING_NUMBER_INVALID]),
        ({"routing_number": "021000022"}, [RejectReason.ROUTING_NUMBER_INVALID]),
        ({"routing_number": "02100002"}, [RejectReason.ROUTING_NUMBER_INVALID]),
        ({"routing_number": "0210000210"}, [RejectReason.ROUTING_NUMBER_INVALID]),
        ({"routing_number": "02100002A"}, [RejectReason.ROUTING_NUMBER_INVALID]),
        ({"routing_number": ""}, [RejectReason.ROUTING_NUMBER_INVALID]),
        ({"routing_number": "000000000"}, [RejectReason.ROUTING_NUMBER_PREFIX_INVALID]),
        ({"routing_number": "001000009"}, [RejectReason.ROUTING_NUMBER_PREFIX_INVALID]),  # government
        ({"routing_number": "130000006"}, [RejectReason.ROUTING_NUMBER_PREFIX_INVALID]),
        ({"routing_number": "200000004"}, [RejectReason.ROUTING_NUMBER_PREFIX_INVALID]),
        ({"routing_number": "330000000"}, [RejectReason.ROUTING_NUMBER_PREFIX_INVALID]),
        ({"routing_number": "730000008"}, [RejectReason.ROUTING_NUMBER_PREFIX_INVALID]),
        ({"routing_number": "810000009"}, [RejectReason.ROUTING_NUMBER_PREFIX_INVALID]),
        ({"routing_number": "210000007"}, []),
        ({"routing_number": "320000007"}, []),
        ({"routing_number": "610000005"}, []),
        ({"routing_number": "720000005"}, []),
        (
            {"routing_number": "800000006"},
            [RejectReason.ROUTING_NUMBER_PREFIX_INVALID],
        ),  # traveller's cheques
        (
            {"routing_number": "900000001"},
            [RejectReason.ROUTING_NUMBER_INVALID, RejectReason.ROUTING_NUMBER_PREFIX_INVALID],
        ),
        ({"account_number": "1234"}, []),
        ({"account_number": "ABC123def456GHI78"}, []),
        ({"account_number": "1"}, [RejectReason.ACCOUNT_NUMBER_IMPLAUSIBLE]),  # too short
        ({"account_number": "000000"}, [RejectReason.ACCOUNT_NUMBER_IMPLAUSIBLE]),
        ({"account_number": "99999999"}, [RejectReason.ACCOUNT_NUMBER_IMPLAUSIBLE]),
        ({"account_number": "ABCDEFGH"}, [RejectReason.ACCOUNT_NUMBER_IMPLAUSIBLE]),  # no digits
        ({"account_number": ""}, [RejectReason.ACCOUNT_NUMBER_INVALID]),
        ({"account_number": "123456789012345678"}, [RejectReason.ACCOUNT_NUMBER_INVALID]),
        ({"account_number": "1234-5678"}, [RejectReason.ACCOUNT_NUMBER_INVALID]),
        ({"account_number": "1234 5678"}, [RejectReason.ACCOUNT_NUMBER_INVALID]),
        ({"account_number": "12345é"}, [RejectReason.ACCOUNT_NUMBER_INVALID]),
    ],
)
def test_field_rejections(changes: dict[str, object], expected: list[RejectReason]) -> None:
    assert codes(dataclasses.replace(VALID, **changes)) == expected  # type: ignore[arg-type]


def test_a_supported_currency_without_a_payout_rail_is_refused() -> None:
    facts = dataclasses.replace(VALID, currency="EUR")
    assert codes(facts, supported_currencies=frozenset({"USD", "EUR"})) == [
        RejectReason.CURRENCY_NO_PAYOUT_RAIL
    ]
    assert codes(dataclasses.replace(VALID, currency="JPY", amount_cents=500)) == [
        RejectReason.CURRENCY_NOT_SUPPORTED
    ]


def test_the_amount_limit_is_the_lower_of_the_deployments_and_the_rails() -> None:
    nacha_max = 9_999_999_999
    at_limit = dataclasses.replace(VALID, amount_cents=nacha_max)
    assert codes(at_limit, max_amount_cents=10**12) == []
    assert codes(dataclasses.replace(VALID, amount_cents=nacha_max + 1), max_amount_cents=10**12) == [
        RejectReason.AMOUNT_OVER_LIMIT
    ]
    assert codes(dataclasses.replace(VALID, amount_cents=LIMIT + 1)) == [RejectReason.AMOUNT_OVER_LIMIT]


def test_the_odfi_itself_is_refused_as_a_payee_bank() -> None:
    odfi = dataclasses.replace(VALID, routing_number="021000021")
    assert codes(odfi, odfi_routing="021000021") == [RejectReason.ROUTING_NUMBER_IS_ODFI]
    assert codes(odfi, odfi_routing="011000015") == []


@pytest.mark.parametrize("name", ["12345", "... ---", "#1 & 2"])
def test_a_payee_name_without_letters_is_refused(name: str) -> None:
    assert codes(dataclasses.replace(VALID, payee_name=name)) == [RejectReason.PAYEE_NAME_NO_LETTERS]


def test_all_rejections_reported_in_stable_order() -> None:
    facts = PaymentFacts(
        amount_cents=0,
        currency="ZZZ",
        card_number="4111111111111112",
        exp_month=1,
        exp_year=2020,
        routing_number="000000000",
        account_number="",
    )
    rejections = validate_payment(facts, today=TODAY, max_amount_cents=LIMIT)
    assert [(r.code, r.field) for r in rejections] == [
        (RejectReason.AMOUNT_NOT_POSITIVE, "amount_cents"),
        (RejectReason.CURRENCY_UNKNOWN, "currency"),
        (RejectReason.CARD_LUHN_FAILED, "card_number"),
        (RejectReason.CARD_EXPIRED, "exp_year"),
        (RejectReason.ROUTING_NUMBER_PREFIX_INVALID, "routing_number"),
        (RejectReason.ACCOUNT_NUMBER_INVALID, "account_number"),
    ]


@pytest.mark.parametrize(
    ("exp_month", "exp_year", "today", "expired"),
    [
        (2, 2028, date(2028, 2, 29), False),  # last day of a leap-year February
        (2, 2028, date(2028, 3, 1), True),
        (2, 2027, date(2027, 2, 28), False),
        (2, 2027, date(2027, 3, 1), True),
        (12, 2026, date(2026, 12, 31), False),
        (12, 2026, date(2027, 1, 1), True),
        (4, 2026, date(2026, 4, 30), False),
        (4, 2026, date(2026, 5, 1), True),
        (1, 2027, date(2026, 12, 31), False),
        (5, 2026, date(2026, 4, 1), False),
    ],
)
def test_card_expired_through_last_day_of_month(
    exp_month: int, exp_year: int, today: date, expired: bool
) -> None:
    assert card_expired(exp_month, exp_year, today) is expired


@pytest.mark.parametrize("exp_month", [0, 13, -1])
def test_card_expired_rejects_invalid_month(exp_month: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.12"):
        card_expired(exp_month, 2027, TODAY)


@pytest.mark.parametrize(
    "number", ["4111111111111112", "5555555555554444", "6200000000000005", "41111111111111111", "1234"]
)
def test_messages_never_contain_card_number(number: str) -> None:
    facts = dataclasses.replace(VALID, card_number=number, amount_cents=0, currency="ZZZ", exp_month=13)
    rejections = validate_payment(facts, today=TODAY, max_amount_cents=LIMIT)
    assert rejections
    assert all(number not in r.message for r in rejections)


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_correct_luhn_digit_never_fails_luhn(partial: str) -> None:
    number = with_luhn(partial)
    facts = dataclasses.replace(VALID, card_number=number)
    assert RejectReason.CARD_LUHN_FAILED not in codes(facts)


@given(st.text(alphabet="0123456789", min_size=1, max_size=30), st.integers(1, 9))
def test_changed_luhn_digit_always_fails_luhn(partial: str, delta: int) -> None:
    good = with_luhn(partial)
    bad = good[:-1] + str((int(good[-1]) + delta) % 10)
    assert RejectReason.CARD_LUHN_FAILED in codes(dataclasses.replace(VALID, card_number=bad))


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_routing_number_with_correct_check_digit_never_fails_checksum(partial: str) -> None:
    weights = (3, 7, 1) * 3
    total = sum(int(d) * w for d, w in zip(partial, weights, strict=False))
    number = partial + str(-total % 10)
    assert RejectReason.ROUTING_NUMBER_INVALID not in codes(dataclasses.replace(VALID, routing_number=number))


@given(
    st.integers(1, 12),
    st.integers(2000, 2100),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
)
def test_card_expired_matches_month_ordering(exp_month: int, exp_year: int, today: date) -> None:
    assert card_expired(exp_month, exp_year, today) is ((today.year, today.month) > (exp_year, exp_month))


@pytest.mark.parametrize(
    ("code", "units"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3), ("CLF", 4), ("UYW", 4)],
)
def test_minor_units(code: str, units: int) -> None:
    assert is_iso_currency(code)
    assert minor_units(code) == units


@pytest.mark.parametrize("code", ["XAU", "XDR", "XXX"])
def test_codes_without_minor_units(code: str) -> None:
    assert is_iso_currency(code)
    with pytest.raises(ValueError, match="no minor unit"):
        minor_units(code)


@pytest.mark.parametrize("code", ["usd", "US", "USDX", "XYZ", "HRK", "VEF", ""])
def test_unknown_currencies(code: str) -> None:
    assert not is_iso_currency(code)
    with pytest.raises(ValueError, match="not an ISO 4217"):
        minor_units(code)


def test_the_validate_step_refuses_a_max_amount_no_nacha_entry_carries() -> None:
    from paypipe.steps.validate import ValidateStep

    ValidateStep(payments=None, max_amount_cents=9_999_999_999, supported_currencies=frozenset({"USD"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exceeds what one NACHA entry carries"):
        ValidateStep(payments=None, max_amount_cents=10**10, supported_currencies=frozenset({"USD"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("card_number", "cvv", "valid"),
    [
        ("4111111111111111", None, True),  # none sent: nothing to check
        ("4111111111111111", "123", True),
        ("4111111111111111", "1234", False),
        ("4111111111111111", "12", False),
        ("4111111111111111", "12a", False),
        ("4111111111111111", "١٢٣", False),  # digits, but not ASCII ones
        ("378282246310005", "1234", True),  # American Express: four
        ("378282246310005", "123", False),
    ],
)
def test_the_cvv_is_checked_for_format_by_brand(card_number: str, cvv: str | None, valid: bool) -> None:
    facts = dataclasses.replace(VALID, card_number=card_number, cvv=cvv)
    assert codes(facts) == ([] if valid else [RejectReason.CVV_INVALID])


def test_a_cvv_rejection_never_quotes_the_value() -> None:
    (rejection,) = validate_payment(
        dataclasses.replace(VALID, cvv="9876"), today=TODAY, max_amount_cents=LIMIT
    )
    assert rejection.field == "card.cvv" and "9876" not in rejection.message
