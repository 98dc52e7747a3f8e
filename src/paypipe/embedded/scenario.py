"""Sample traffic for a demo or test run: a realistic mix of good, invalid and risky payments."""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import SecretStr

from paypipe.domain.acquirer_simulator import TEST_CARDS, Behaviour
from paypipe.domain.card_processing import DeclineCode
from paypipe.domain.validation import CardBrand, card_brand
from paypipe.events import models as ev

VALID_ROUTING_NUMBERS = ("021000021", "122105155", "026009593", "091000019", "011401533")
CARD_BINS = ("411111", "555555", "222300", "601111", "353011", "401288")


def luhn_complete(partial: str) -> str:
    """Append the Luhn check digit to ``partial``."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return partial + str((10 - total % 10) % 10)


def customer_ip(customer_id: str) -> str:
    """A stable documentation-range address per customer (RFC 5737)."""
    crc = zlib.crc32(customer_id.encode())
    return f"198.51.{crc % 100}.{crc // 100 % 250 + 1}"


def card_number(rng: random.Random) -> str:
    return luhn_complete(rng.choice(CARD_BINS) + "".join(rng.choice("0123456789") for _ in range(9)))


def payment_requested(
    payment_id: str,
    *,
    customer_id: str,
    amount_cents: int,
    pan: str,
    occurred_at: datetime,
    exp: tuple[int, int] = (12, 2030),
    routing_number: str = "021000021",
    billing_country: str = "US",
    ip_country: str = "US",
    ip_address: str = "198.51.100.7",
    currency: str = "USD",
    payee_type: ev.PayeeType = ev.PayeeType.INDIVIDUAL,
    provider_id: str = "prov-1",
    cvv: str | None = None,  # None: three digits (four on American Express)
    account_number: str | None = None,  # None: one per provider
) -> ev.PaymentRequested:
    if cvv is None:
        cvv = "1234" if card_brand(pan) is CardBrand.AMEX else "123"
    data = ev.PaymentRequestedData(
        customer=ev.Customer(id=customer_id, billing_country=billing_country),
        provider_id=provider_id,
        amount_cents=amount_cents,
        currency=currency,
        card=ev.CardInput(
            number=SecretStr(pan),
            exp_month=exp[0],
            exp_year=exp[1],
            cvv=SecretStr(cvv),
            holder_name="Ana Díaz",
        ),
        payee=ev.PayeeBankAccount(
            name="José Müller Services" if payee_type is ev.PayeeType.BUSINESS else "Jordan Lee",
            routing_number=routing_number,
            account_number=account_number or f"{zlib.crc32(provider_id.encode()) % 10**10:010d}",
            account_type=ev.AccountType.CHECKING,
            payee_type=payee_type,
        ),
        device=ev.Device(ip_address=ip_address, ip_country=ip_country),
        description="escrowed service payment",
    )
    return ev.PaymentRequested.create(
        payment_id=payment_id,
        data=data,
        producer="client",
        occurred_at=occurred_at,
        dedup_key=payment_id,
    )


@dataclass
class Scenario:
    """Requests plus what the run expects of each (for the summary, never for assertions)."""

    requests: list[ev.PaymentRequested] = field(default_factory=list)
    intent: dict[str, str] = field(default_factory=dict)

    def mix(self) -> Counter[str]:
        return Counter(self.intent.values())


# The simulated acquirer's declining test cards, one per decline reason.
DECLINE_CARDS: Final = tuple(
    {code: pan for pan, code in TEST_CARDS.items() if isinstance(code, DeclineCode)}.values()
)

# Captured, then charged back by the network and lost or won (the simulated acquirer's disputed cards).
CHARGEBACK_CARD: Final = next(pan for pan, code in TEST_CARDS.items() if code is Behaviour.CHARGEBACK)
CHARGEBACK_WON_CARD: Final = next(pan for pan, code in TEST_CARDS.items() if code is Behaviour.CHARGEBACK_WON)


def build_scenario(
    count: int, *, seed: int = 7, now: datetime | None = None, run_id: str = "demo"
) -> Scenario:
    """``count`` payment requests: ~75% good, ~8% invalid, ~6% risky (review), ~5% declined by the
    card processor, ~6% charged back by the card network (half of them won), a card-testing burst."""
    rng = random.Random(seed)
    start = now or datetime.now(UTC)  # one request a second from here, as the pipeline clock runs
    scenario = Scenario()
    burst = max(4, count // 20) if count >= 20 else 0
    tester_card = card_number(rng)
    for index in range(count):
        payment_id = f"{run_id}-{index:06d}"
        at = start + timedelta(seconds=index)
        kind = "good"
        kwargs: dict[str, object] = {}
        if index >= count - burst:
            kind = "card_testing"
            kwargs = {
                "pan": tester_card,
                "amount_cents": 100,
                "customer_id": "cust-tester",
                "ip_address": "203.0.113.9",
            }
        elif index % 13 == 5:
            kind = "invalid"
            variant = (index // 13) % 3
            good = card_number(rng)
            variants: list[dict[str, object]] = [
                {"pan": good[:-1] + str((int(good[-1]) + 1) % 10)},  # Luhn fails
                {"exp": (1, 2024)},  # expired
                {"routing_number": "123456789"},  # bad ABA check digit
            ]
            kwargs = variants[variant]
        elif (fixed := _fixed_variant(index)) is not None:
            kind, kwargs = fixed
        customer_id = str(kwargs.pop("customer_id", f"cust-{index % max(1, count // 3):04d}"))
        kwargs.setdefault("ip_address", customer_ip(customer_id))
        request = payment_requested(
            payment_id,
            customer_id=customer_id,
            amount_cents=int(kwargs.pop("amount_cents", rng.randrange(2_000, 250_000))),  # type: ignore[call-overload]
            pan=str(kwargs.pop("pan", card_number(rng))),
            occurred_at=at,
            provider_id=str(kwargs.pop("provider_id", f"prov-{index % 7}")),
            payee_type=ev.PayeeType.BUSINESS if index % 4 == 0 else ev.PayeeType.INDIVIDUAL,
            **kwargs,  # type: ignore[arg-type]
        )
        scenario.requests.append(request)
        scenario.intent[payment_id] = kind
    return scenario


def _fixed_variant(index: int) -> tuple[str, dict[str, object]] | None:
    """The traffic kinds a payment's index alone decides (None: a good payment)."""
    if index % 17 == 3:
        return "review", {"ip_country": "RO", "billing_country": "US"}
    if index % 19 == 7:  # a test card the simulated acquirer declines, by its reason
        return "card_declined", {"pan": DECLINE_CARDS[(index // 19) % len(DECLINE_CARDS)]}
    if index % 31 == 17:  # captured, then disputed at the network and lost
        return "chargeback", {"pan": CHARGEBACK_CARD}
    if index % 37 == 29:  # captured, disputed at the network, and won
        return "chargeback_won", {"pan": CHARGEBACK_WON_CARD}
    if index % 23 == 11 or index % 29 == 13:
        # Payees at the simulated bank's test accounts: one always returned (no account), one
        # whose account number the bank corrects (docs/operations.md, "Simulated bank").
        if index % 23 == 11:
            return "bank_return", {"account_number": "SIMR03", "provider_id": "prov-r03"}
        return "bank_correction", {"account_number": "SIMC01", "provider_id": "prov-c01"}
    return None


def final_states(events: Iterable[ev.Event]) -> dict[str, str]:
    """The state each payment reached, from the events seen on the bus."""
    states: dict[str, str] = {}
    order = {
        "PaymentRequested": "requested",
        "PaymentValidated": "validated",
        "PaymentTokenized": "tokenized",
        "PaymentScored": "scored",
        "PaymentCharged": "charged",
        "FundsHeld": "held",
        "HoldFrozen": "frozen",
        "FundsReleased": "released",
        "PaymentRejected": "rejected",
        "PaymentDeclined": "declined",
        "FundsRefunded": "refunded",
        "PayoutBatched": "paid_out",
    }
    for event in events:
        if event.event_type == "AchBatchCreated":
            continue
        state = order.get(event.event_type)
        if state is None:
            continue
        if isinstance(event, ev.PaymentScored) and event.data.assessment.decision is ev.Decision.REVIEW:
            state = "review"
        if states.get(event.payment_id) in TERMINAL_STATES - {"review"}:
            continue  # a review waits: its decision or expiry moves the payment on
        states[event.payment_id] = state
    return states


# How a run may leave a payment ("review": waiting for an operator, its deadline not yet passed).
TERMINAL_STATES = frozenset({"rejected", "declined", "refunded", "paid_out", "review"})
