"""Pure validation of an incoming payment: amount, currency, card and ACH payee details."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Final

from stdnum import luhn
from stdnum.us import rtn

from paypipe.domain.currencies import is_iso_currency
from paypipe.domain.identifiers import ID_GRAMMAR, canonical_ip, is_valid_id
from paypipe.domain.nacha.text import to_nacha_text
from paypipe.domain.payout_rails import rail_for


class RejectReason(StrEnum):
    AMOUNT_NOT_POSITIVE = "AMOUNT_NOT_POSITIVE"
    AMOUNT_OVER_LIMIT = "AMOUNT_OVER_LIMIT"
    CURRENCY_UNKNOWN = "CURRENCY_UNKNOWN"
    CURRENCY_NOT_SUPPORTED = "CURRENCY_NOT_SUPPORTED"
    CURRENCY_NO_PAYOUT_RAIL = "CURRENCY_NO_PAYOUT_RAIL"
    CARD_NUMBER_MALFORMED = "CARD_NUMBER_MALFORMED"
    CARD_LENGTH_INVALID = "CARD_LENGTH_INVALID"
    CARD_LUHN_FAILED = "CARD_LUHN_FAILED"
    CARD_BRAND_UNKNOWN = "CARD_BRAND_UNKNOWN"
    CARD_EXPIRED = "CARD_EXPIRED"
    CARD_EXPIRY_INVALID = "CARD_EXPIRY_INVALID"
    CVV_INVALID = "CVV_INVALID"
    ROUTING_NUMBER_INVALID = "ROUTING_NUMBER_INVALID"
    ROUTING_NUMBER_PREFIX_INVALID = "ROUTING_NUMBER_PREFIX_INVALID"
    ROUTING_NUMBER_IS_ODFI = "ROUTING_NUMBER_IS_ODFI"
    ACCOUNT_NUMBER_INVALID = "ACCOUNT_NUMBER_INVALID"
    ACCOUNT_NUMBER_IMPLAUSIBLE = "ACCOUNT_NUMBER_IMPLAUSIBLE"
    PAYEE_NAME_UNREPRESENTABLE = "PAYEE_NAME_UNREPRESENTABLE"
    PAYEE_NAME_NO_LETTERS = "PAYEE_NAME_NO_LETTERS"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    IDENTIFIER_INVALID = "IDENTIFIER_INVALID"
    TENANT_UNKNOWN = "TENANT_UNKNOWN"
    IP_ADDRESS_INVALID = "IP_ADDRESS_INVALID"
    CLIENT_CLOCK_SKEW = "CLIENT_CLOCK_SKEW"
    DUPLICATE_PAYMENT_ID = "DUPLICATE_PAYMENT_ID"
    SCHEMA_INVALID = "SCHEMA_INVALID"


@dataclass(frozen=True)
class Rejection:
    code: RejectReason
    field: str
    message: str  # for humans; never contains the card number


class CardBrand(StrEnum):
    VISA = "VISA"
    MASTERCARD = "MASTERCARD"
    AMEX = "AMEX"
    DISCOVER = "DISCOVER"
    JCB = "JCB"
    UNIONPAY = "UNIONPAY"
    DINERS = "DINERS"


# (first IIN, last IIN, brand), matched on the leading digits of the PAN. More specific
# ranges come first: the Discover/UnionPay co-brand range 622126-622925 beats UnionPay's 62.
_IIN_RANGES: Final[tuple[tuple[str, str, CardBrand], ...]] = (
    ("622126", "622925", CardBrand.DISCOVER),
    ("6011", "6011", CardBrand.DISCOVER),
    ("644", "649", CardBrand.DISCOVER),
    ("65", "65", CardBrand.DISCOVER),
    ("62", "62", CardBrand.UNIONPAY),
    ("3528", "3589", CardBrand.JCB),
    ("34", "34", CardBrand.AMEX),
    ("37", "37", CardBrand.AMEX),
    ("300", "305", CardBrand.DINERS),
    ("36", "36", CardBrand.DINERS),
    ("38", "39", CardBrand.DINERS),
    ("2221", "2720", CardBrand.MASTERCARD),
    ("51", "55", CardBrand.MASTERCARD),
    ("4", "4", CardBrand.VISA),
)

CARD_LENGTHS: Final[dict[CardBrand, frozenset[int]]] = {
    CardBrand.VISA: frozenset({13, 16, 19}),
    CardBrand.MASTERCARD: frozenset({16}),
    CardBrand.AMEX: frozenset({15}),
    CardBrand.DISCOVER: frozenset(range(16, 20)),
    CardBrand.JCB: frozenset(range(16, 20)),
    CardBrand.UNIONPAY: frozenset(range(16, 20)),
    CardBrand.DINERS: frozenset(range(14, 20)),
}

# Cards are not issued with expiry dates further out than this.
MAX_EXPIRY_YEARS_AHEAD: Final = 20

# First two digits of a routing number that can receive an ACH credit: Federal Reserve districts
# 01-12, thrifts 21-32, electronic transaction identifiers 61-72. Not 00 (US government) nor 80
# (traveller's cheques, which no ACH entry can be posted to).
_ROUTING_PREFIXES: Final = frozenset(f"{n:02d}" for n in (*range(1, 13), *range(21, 33), *range(61, 73)))

# NACHA DFI account number field: up to 17 alphanumeric characters. US deposit accounts have at
# least 4 characters, some digits, and are not one character repeated (0000, 1111...).
_MAX_ACCOUNT_NUMBER_LENGTH: Final = 17
_MIN_ACCOUNT_NUMBER_LENGTH: Final = 4

# A request is ~1-2 KiB. Every later event carries its fields, JSON-escaped (non-ASCII grows up to
# 6x), and EventBridge refuses events over 256 KiB: this bound keeps them all far below that.
MAX_REQUEST_BYTES: Final = 32 * 1024


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def card_brand(number: str) -> CardBrand | None:
    """Brand from the IIN prefix of a digits-only PAN (length is not checked here)."""
    if not _is_ascii_digits(number):
        return None
    for first, last, brand in _IIN_RANGES:
        prefix = number[: len(first)]
        if len(prefix) == len(first) and first <= prefix <= last:
            return brand
    return None


def _expiry_month_valid(exp_month: int) -> bool:
    return 1 <= exp_month <= 12


def card_expired(exp_month: int, exp_year: int, today: date) -> bool:
    """A card is valid through the last day of its expiry month."""
    if not _expiry_month_valid(exp_month):
        raise ValueError(f"expiry month {exp_month} is not in 1..12")
    return (today.year, today.month) > (exp_year, exp_month)


@dataclass(frozen=True)
class PaymentFacts:
    amount_cents: int
    currency: str
    card_number: str
    exp_month: int
    exp_year: int
    routing_number: str
    account_number: str
    payee_name: str | None = None  # None: not checked
    request_bytes: int | None = None  # serialized event size; None: not checked
    ids: Mapping[str, str] = field(default_factory=dict)  # field -> client-chosen id, checked by grammar
    tenant_id: str | None = None  # None: not checked
    ip_address: str | None = None  # None: not checked
    cvv: str | None = None  # None: the client sent none (checked for format only, then dropped)


def _amount_rejections(amount_cents: int, currency: str, max_amount_cents: int) -> list[Rejection]:
    """The amount in minor units, within the deployment's limit and the currency's payout rail."""
    if amount_cents <= 0:
        return [Rejection(RejectReason.AMOUNT_NOT_POSITIVE, "amount_cents", "amount must be positive")]
    rail = rail_for(currency)
    limit = min(max_amount_cents, rail.max_entry_minor) if rail else max_amount_cents
    if amount_cents > limit:
        message = f"amount {amount_cents} exceeds the limit of {limit} minor units of {currency}"
        return [Rejection(RejectReason.AMOUNT_OVER_LIMIT, "amount_cents", message)]
    return []


def _currency_rejections(currency: str, supported: frozenset[str]) -> list[Rejection]:
    if not is_iso_currency(currency):
        message = f"{currency!r} is not an ISO 4217 currency code"
        return [Rejection(RejectReason.CURRENCY_UNKNOWN, "currency", message)]
    if currency not in supported:
        message = f"currency {currency} is not supported"
        return [Rejection(RejectReason.CURRENCY_NOT_SUPPORTED, "currency", message)]
    if rail_for(currency) is None:
        message = f"no payout rail pays {currency} (ACH pays USD)"
        return [Rejection(RejectReason.CURRENCY_NO_PAYOUT_RAIL, "currency", message)]
    return []


def _card_number_rejections(number: str) -> list[Rejection]:
    field = "card_number"
    if not _is_ascii_digits(number):
        return [Rejection(RejectReason.CARD_NUMBER_MALFORMED, field, "card number must contain only digits")]
    rejections: list[Rejection] = []
    brand = card_brand(number)
    if brand is None:
        rejections.append(Rejection(RejectReason.CARD_BRAND_UNKNOWN, field, "card brand not recognised"))
    elif len(number) not in CARD_LENGTHS[brand]:
        message = f"{len(number)} digits is not a valid length for {brand}"
        rejections.append(Rejection(RejectReason.CARD_LENGTH_INVALID, field, message))
    if not luhn.is_valid(number):
        rejections.append(Rejection(RejectReason.CARD_LUHN_FAILED, field, "card number check digit is wrong"))
    return rejections


def _cvv_rejections(cvv: str | None, card_number: str) -> list[Rejection]:
    """The verification value's format: 3 digits (4 on American Express cards). Its value is never
    checked, stored or published here: only an issuer can verify it."""
    if cvv is None:
        return []
    digits = 4 if card_brand(card_number) is CardBrand.AMEX else 3
    if _is_ascii_digits(cvv) and len(cvv) == digits:
        return []
    return [
        Rejection(RejectReason.CVV_INVALID, "card.cvv", f"card verification value must be {digits} digits")
    ]


def _expiry_rejections(exp_month: int, exp_year: int, today: date) -> list[Rejection]:
    if not _expiry_month_valid(exp_month):
        message = f"expiry month {exp_month} is not in 1..12"
        return [Rejection(RejectReason.CARD_EXPIRY_INVALID, "exp_month", message)]
    latest_year = today.year + MAX_EXPIRY_YEARS_AHEAD
    if not 1000 <= exp_year <= latest_year:
        message = f"expiry year {exp_year} must have four digits and be no later than {latest_year}"
        return [Rejection(RejectReason.CARD_EXPIRY_INVALID, "exp_year", message)]
    if card_expired(exp_month, exp_year, today):
        message = f"card expired at the end of {exp_year:04d}-{exp_month:02d}"
        return [Rejection(RejectReason.CARD_EXPIRED, "exp_year", message)]
    return []


def _routing_number_rejections(routing_number: str, odfi_routing: str | None = None) -> list[Rejection]:
    field = "routing_number"
    if not (_is_ascii_digits(routing_number) and len(routing_number) == 9):
        return [Rejection(RejectReason.ROUTING_NUMBER_INVALID, field, "routing number must be 9 digits")]
    rejections: list[Rejection] = []
    if not rtn.is_valid(routing_number):
        message = "routing number check digit is wrong"
        rejections.append(Rejection(RejectReason.ROUTING_NUMBER_INVALID, field, message))
    if routing_number[:2] not in _ROUTING_PREFIXES:
        message = f"routing number prefix {routing_number[:2]} cannot receive ACH credits"
        rejections.append(Rejection(RejectReason.ROUTING_NUMBER_PREFIX_INVALID, field, message))
    if odfi_routing is not None and routing_number == odfi_routing:
        message = "the payee bank is the originating bank itself; payouts there are not allowed"
        rejections.append(Rejection(RejectReason.ROUTING_NUMBER_IS_ODFI, field, message))
    return rejections


def _account_number_rejections(account_number: str) -> list[Rejection]:
    valid = (
        1 <= len(account_number) <= _MAX_ACCOUNT_NUMBER_LENGTH
        and account_number.isascii()
        and account_number.isalnum()
    )
    if not valid:
        message = f"account number must be 1-{_MAX_ACCOUNT_NUMBER_LENGTH} letters or digits"
        return [Rejection(RejectReason.ACCOUNT_NUMBER_INVALID, "account_number", message)]
    plausible = (
        len(account_number) >= _MIN_ACCOUNT_NUMBER_LENGTH
        and any(ch.isdigit() for ch in account_number)
        and len(set(account_number.upper())) > 1
    )
    if plausible:
        return []
    message = (
        f"account number must have {_MIN_ACCOUNT_NUMBER_LENGTH}+ characters with digits, not one repeated"
    )
    return [Rejection(RejectReason.ACCOUNT_NUMBER_IMPLAUSIBLE, "account_number", message)]


def _payee_name_rejections(name: str | None) -> list[Rejection]:
    """The name goes into the NACHA entry; reject what the ACH file cannot carry now, not at the cut."""
    if name is None:
        return []
    try:
        representable = bool(to_nacha_text(name))
    except ValueError:
        representable = False
    # The messages never quote the name (personal data).
    if not representable:
        message = "payee name must be Latin letters, digits, spaces or &'(),-./# (accents are dropped)"
        return [Rejection(RejectReason.PAYEE_NAME_UNREPRESENTABLE, "payee.name", message)]
    if not any(ch.isalpha() for ch in to_nacha_text(name)[:22]):
        message = "payee name must contain letters (within the 22 characters an ACH entry carries)"
        return [Rejection(RejectReason.PAYEE_NAME_NO_LETTERS, "payee.name", message)]
    return []


def _size_rejections(request_bytes: int | None) -> list[Rejection]:
    if request_bytes is None or request_bytes <= MAX_REQUEST_BYTES:
        return []
    message = f"request is {request_bytes} bytes; the limit is {MAX_REQUEST_BYTES}"
    return [Rejection(RejectReason.REQUEST_TOO_LARGE, "data", message)]


def _identity_rejections(facts: PaymentFacts, allowed_tenants: frozenset[str] | None) -> list[Rejection]:
    rejections = [
        Rejection(RejectReason.IDENTIFIER_INVALID, name, f"{name} must be {ID_GRAMMAR}")
        for name, value in facts.ids.items()
        if not is_valid_id(value)
    ]
    tenant = facts.tenant_id
    if tenant is not None and allowed_tenants is not None and tenant not in allowed_tenants:
        message = "tenant is not one this deployment serves"
        rejections.append(Rejection(RejectReason.TENANT_UNKNOWN, "tenant_id", message))
    if facts.ip_address is not None:
        try:
            canonical_ip(facts.ip_address)
        except ValueError as error:
            rejections.append(Rejection(RejectReason.IP_ADDRESS_INVALID, "device.ip_address", str(error)))
    return rejections


def validate_payment(
    facts: PaymentFacts,
    *,
    today: date,
    max_amount_cents: int,
    supported_currencies: frozenset[str] = frozenset({"USD"}),
    allowed_tenants: frozenset[str] | None = None,
    odfi_routing: str | None = None,
) -> list[Rejection]:
    """All rejections for a payment in a stable order (ids, amount, currency, card, CVV, expiry, bank,
    payee, size); [] = valid. ``today`` is the pipeline's date at receipt, never the client's;
    ``allowed_tenants`` None accepts any tenant id that follows the id grammar; ``odfi_routing``
    is the originating bank, refused as a payee bank (None: any).

    The caller adds DUPLICATE_PAYMENT_ID after checking its store.
    """
    return [
        *_identity_rejections(facts, allowed_tenants),
        *_amount_rejections(facts.amount_cents, facts.currency, max_amount_cents),
        *_currency_rejections(facts.currency, supported_currencies),
        *_card_number_rejections(facts.card_number),
        *_cvv_rejections(facts.cvv, facts.card_number),
        *_expiry_rejections(facts.exp_month, facts.exp_year, today),
        *_routing_number_rejections(facts.routing_number, odfi_routing),
        *_account_number_rejections(facts.account_number),
        *_payee_name_rejections(facts.payee_name),
        *_size_rejections(facts.request_bytes),
    ]


@dataclass(frozen=True)
class PayeeFacts:
    """New bank details a client gives for a provider's payouts."""

    routing_number: str
    account_number: str
    payee_name: str
    ids: Mapping[str, str] = field(default_factory=dict)
    tenant_id: str | None = None


def validate_payee_update(
    facts: PayeeFacts, *, allowed_tenants: frozenset[str] | None = None, odfi_routing: str | None = None
) -> list[Rejection]:
    """All rejections of new payee bank details, by the same rules as a payment's payee; [] = valid."""
    identity = PaymentFacts(0, "USD", "", 0, 0, "", "", ids=facts.ids, tenant_id=facts.tenant_id)
    return [
        *_identity_rejections(identity, allowed_tenants),
        *_routing_number_rejections(facts.routing_number, odfi_routing),
        *_account_number_rejections(facts.account_number),
        *_payee_name_rejections(facts.payee_name),
    ]
