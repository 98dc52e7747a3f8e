"""Pure fraud scoring: velocity/behaviour features from history, then versioned rules kept as data.

Deterministic for a given transaction, history, as-of time and rule version.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Final, get_type_hints

MAX_SCORE: Final = 1000
ZSCORE_CAP: Final = 10.0
# Card testing: many tiny charges on one card, or many cards tried from one IP, within an hour.
CARD_TESTING_SMALL_AMOUNT_CENTS: Final = 200
CARD_TESTING_SMALL_TXNS_1H: Final = 3
CARD_TESTING_OTHER_CARDS_FROM_IP_1H: Final = 3

_WINDOWS: Final = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
HISTORY_LOOKBACK: Final = max(_WINDOWS.values())


def _require_utc_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class Transaction:
    payment_id: str
    customer_id: str
    card_id: str  # the vault's card fingerprint: one card, whatever the tenant or token
    payee_account_fingerprint: str
    ip_address: str
    amount_cents: int
    currency: str
    billing_country: str
    ip_country: str | None
    card_country: str | None
    occurred_at: datetime  # timezone-aware, UTC

    def __post_init__(self) -> None:
        _require_utc_aware("occurred_at", self.occurred_at)


@dataclass(frozen=True)
class Features:
    """Features of one transaction against its prior history.

    Only history strictly before as_of and with another payment id is used. Velocity counts and
    sums use the 1 h / 24 h / 7 d windows; the z-score and first-use flags use all history given
    (the velocity store returns 7 days). Sums and the z-score only use history in the
    transaction's currency (minor units).
    """

    amount_cents: int
    card_txn_count_1h: int
    card_txn_count_24h: int
    card_txn_count_7d: int
    card_amount_sum_1h: int
    card_amount_sum_24h: int
    card_amount_sum_7d: int
    customer_txn_count_1h: int
    customer_txn_count_24h: int
    customer_txn_count_7d: int
    customer_amount_sum_1h: int
    customer_amount_sum_24h: int
    customer_amount_sum_7d: int
    ip_txn_count_1h: int
    ip_txn_count_24h: int
    ip_txn_count_7d: int
    ip_amount_sum_1h: int
    ip_amount_sum_24h: int
    ip_amount_sum_7d: int
    # Against the customer's prior amounts; 0.0 with fewer than 2 of them, capped at +-ZSCORE_CAP.
    amount_zscore: float
    ip_billing_country_mismatch: bool  # False when the IP country is unknown
    card_billing_country_mismatch: bool  # False when the card country is unknown
    first_card_use_for_customer: bool
    first_payee_for_customer: bool
    card_small_txn_count_1h: int
    ip_other_cards_1h: int
    card_testing_pattern: bool

    def as_dict(self) -> dict[str, int | float | bool]:
        return dataclasses.asdict(self)


def _in_window(txn: Transaction, as_of: datetime, window: timedelta) -> bool:
    return as_of - window <= txn.occurred_at < as_of


def _amount_zscore(amount_cents: int, prior_amounts: Sequence[int]) -> float:
    if len(prior_amounts) < 2:
        return 0.0
    mean = statistics.fmean(prior_amounts)
    stdev = statistics.pstdev(prior_amounts)
    if stdev == 0:
        if amount_cents == mean:
            return 0.0
        return math.copysign(ZSCORE_CAP, amount_cents - mean)
    return max(-ZSCORE_CAP, min(ZSCORE_CAP, (amount_cents - mean) / stdev))


def _countries_differ(country: str | None, billing_country: str) -> bool:
    return country is not None and country.upper() != billing_country.upper()


def compute_features(txn: Transaction, history: Sequence[Transaction], as_of: datetime) -> Features:
    """Features for txn from history strictly before as_of (other payments only)."""
    _require_utc_aware("as_of", as_of)
    prior = [h for h in history if h.occurred_at < as_of and h.payment_id != txn.payment_id]
    recent = [h for h in prior if _in_window(h, as_of, HISTORY_LOOKBACK)]

    dimensions: dict[str, Callable[[Transaction], bool]] = {
        "card": lambda h: h.card_id == txn.card_id,
        "customer": lambda h: h.customer_id == txn.customer_id,
        "ip": lambda h: h.ip_address == txn.ip_address,
    }
    velocity: dict[str, int] = {}
    for dimension, matches in dimensions.items():
        matching = [h for h in recent if matches(h)]
        for label, window in _WINDOWS.items():
            in_window = [h for h in matching if _in_window(h, as_of, window)]
            velocity[f"{dimension}_txn_count_{label}"] = len(in_window)
            velocity[f"{dimension}_amount_sum_{label}"] = sum(
                h.amount_cents for h in in_window if h.currency == txn.currency
            )

    customer_prior = [h for h in prior if h.customer_id == txn.customer_id]
    last_hour = [h for h in recent if _in_window(h, as_of, _WINDOWS["1h"])]
    card_small_txn_count_1h = sum(
        1 for h in last_hour if h.card_id == txn.card_id and h.amount_cents <= CARD_TESTING_SMALL_AMOUNT_CENTS
    )
    ip_other_cards_1h = len({h.card_id for h in last_hour if h.ip_address == txn.ip_address} - {txn.card_id})
    card_testing_pattern = (
        txn.amount_cents <= CARD_TESTING_SMALL_AMOUNT_CENTS
        and card_small_txn_count_1h >= CARD_TESTING_SMALL_TXNS_1H
    ) or ip_other_cards_1h >= CARD_TESTING_OTHER_CARDS_FROM_IP_1H

    return Features(
        amount_cents=txn.amount_cents,
        **velocity,
        amount_zscore=_amount_zscore(
            txn.amount_cents, [h.amount_cents for h in customer_prior if h.currency == txn.currency]
        ),
        ip_billing_country_mismatch=_countries_differ(txn.ip_country, txn.billing_country),
        card_billing_country_mismatch=_countries_differ(txn.card_country, txn.billing_country),
        first_card_use_for_customer=all(h.card_id != txn.card_id for h in customer_prior),
        first_payee_for_customer=all(
            h.payee_account_fingerprint != txn.payee_account_fingerprint for h in customer_prior
        ),
        card_small_txn_count_1h=card_small_txn_count_1h,
        ip_other_cards_1h=ip_other_cards_1h,
        card_testing_pattern=card_testing_pattern,
    )


# --- Rules -------------------------------------------------------------------------------------

Threshold = int | float | bool

OPERATORS: Final[Mapping[str, Callable[[Threshold, Threshold], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_BOOL_OPERATORS: Final = frozenset({"==", "!="})
FEATURE_TYPES: Final[Mapping[str, type]] = get_type_hints(Features)
_VERSION_PATTERN: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RULE_ID_PATTERN: Final = re.compile(r"^[A-Z][A-Z0-9_]*$")
_RULES_PACKAGE: Final = "paypipe"
_RULES_DIR: Final = ("data", "fraud_rules")


class RuleSetError(ValueError):
    """A rule set file is missing or invalid."""


@dataclass(frozen=True)
class Rule:
    id: str  # also the reason code reported when the rule fires
    feature: str
    operator: str
    threshold: Threshold
    points: int

    def fires(self, features: Features) -> bool:
        value: Threshold = getattr(features, self.feature)
        return OPERATORS[self.operator](value, self.threshold)


@dataclass(frozen=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]
    review_at: int
    decline_at: int


class Decision(StrEnum):
    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    DECLINE = "DECLINE"


@dataclass(frozen=True)
class FraudAssessment:
    score: int  # 0..MAX_SCORE
    decision: Decision
    reasons: tuple[str, ...]  # ids of the rules that fired, in rule set order
    rule_version: str


def _check_thresholds(review_at: object, decline_at: object, where: str) -> tuple[int, int]:
    for name, value in (("review_at", review_at), ("decline_at", decline_at)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SCORE:
            raise RuleSetError(f"{where}: {name} must be an integer in 0..{MAX_SCORE}, got {value!r}")
    assert isinstance(review_at, int) and isinstance(decline_at, int)
    if review_at > decline_at:
        raise RuleSetError(f"{where}: review_at {review_at} is above decline_at {decline_at}")
    return review_at, decline_at


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_rule(raw: object, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise RuleSetError(f"{where}: a rule must be an object")
    keys = ("id", "feature", "operator", "threshold", "points")
    if set(raw) != set(keys):
        raise RuleSetError(f"{where}: a rule needs exactly the keys {sorted(keys)}, got {sorted(raw)}")
    rule_id, feature, op, threshold, points = (raw[k] for k in keys)
    if not isinstance(rule_id, str) or not _RULE_ID_PATTERN.match(rule_id):
        raise RuleSetError(f"{where}: rule id {rule_id!r} must be an upper-case reason code")
    where = f"{where} rule {rule_id}"
    if feature not in FEATURE_TYPES:
        raise RuleSetError(f"{where}: unknown feature {feature!r}; known: {', '.join(sorted(FEATURE_TYPES))}")
    if op not in OPERATORS:
        raise RuleSetError(f"{where}: unknown operator {op!r}; known: {' '.join(OPERATORS)}")
    if FEATURE_TYPES[feature] is bool:
        if not isinstance(threshold, bool):
            raise RuleSetError(f"{where}: feature {feature} is boolean, threshold must be true or false")
        if op not in _BOOL_OPERATORS:
            raise RuleSetError(f"{where}: operator {op!r} cannot compare boolean feature {feature}")
    elif not _is_finite_number(threshold):
        raise RuleSetError(f"{where}: feature {feature} is numeric, threshold must be a finite number")
    if not isinstance(points, int) or isinstance(points, bool):
        raise RuleSetError(f"{where}: points must be an integer")
    return Rule(id=rule_id, feature=feature, operator=op, threshold=threshold, points=points)


def parse_ruleset(raw: object, *, source: str = "rule set") -> RuleSet:
    """Validate decoded rule set JSON; RuleSetError names the offending part."""
    if not isinstance(raw, dict):
        raise RuleSetError(f"{source}: top level must be an object")
    missing = {"version", "rules", "thresholds"} - set(raw)
    if missing:
        raise RuleSetError(f"{source}: missing keys {sorted(missing)}")
    version = raw["version"]
    if not isinstance(version, str) or not _VERSION_PATTERN.match(version):
        raise RuleSetError(f"{source}: version must be a YYYY-MM-DD string, got {version!r}")
    thresholds = raw["thresholds"]
    if not isinstance(thresholds, dict) or set(thresholds) != {"review_at", "decline_at"}:
        raise RuleSetError(f"{source}: thresholds must be an object with review_at and decline_at")
    review_at, decline_at = _check_thresholds(thresholds["review_at"], thresholds["decline_at"], source)
    raw_rules = raw["rules"]
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleSetError(f"{source}: rules must be a non-empty list")
    rules = tuple(_parse_rule(r, source) for r in raw_rules)
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuleSetError(f"{source}: duplicate rule ids {duplicates}")
    return RuleSet(version=version, rules=rules, review_at=review_at, decline_at=decline_at)


def _rules_dir() -> resources.abc.Traversable:
    return resources.files(_RULES_PACKAGE).joinpath(*_RULES_DIR)


def available_versions() -> list[str]:
    """Shipped rule set versions, oldest first."""
    names = (entry.name for entry in _rules_dir().iterdir() if entry.is_file())
    return sorted(
        name.removesuffix(".json")
        for name in names
        if name.endswith(".json") and _VERSION_PATTERN.match(name.removesuffix(".json"))
    )


@lru_cache(maxsize=16)
def _load_version(version: str) -> RuleSet:
    source = f"fraud rule set {version}"
    try:
        raw = json.loads(_rules_dir().joinpath(f"{version}.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RuleSetError(f"{source}: invalid JSON: {error}") from error
    ruleset = parse_ruleset(raw, source=source)
    if ruleset.version != version:
        raise RuleSetError(f"{source}: file declares version {ruleset.version}")
    return ruleset


def load_ruleset(version: str | None = None) -> RuleSet:
    """A shipped rule set by version (YYYY-MM-DD); None loads the latest."""
    versions = available_versions()
    if version is None:
        if not versions:
            raise RuleSetError("no fraud rule sets are shipped")
        version = versions[-1]
    if version not in versions:
        raise RuleSetError(f"unknown fraud rule set version {version!r}; available: {versions}")
    return _load_version(version)


def evaluate(
    features: Features,
    ruleset: RuleSet,
    *,
    review_at: int | None = None,
    decline_at: int | None = None,
) -> FraudAssessment:
    """Score = sum of fired rules' points clamped to 0..MAX_SCORE; thresholds override the rule set's."""
    review_at, decline_at = _check_thresholds(
        ruleset.review_at if review_at is None else review_at,
        ruleset.decline_at if decline_at is None else decline_at,
        "evaluate",
    )
    fired = [rule for rule in ruleset.rules if rule.fires(features)]
    score = max(0, min(MAX_SCORE, sum(rule.points for rule in fired)))
    if score >= decline_at:
        decision = Decision.DECLINE
    elif score >= review_at:
        decision = Decision.REVIEW
    else:
        decision = Decision.APPROVE
    return FraudAssessment(
        score=score,
        decision=decision,
        reasons=tuple(rule.id for rule in fired),
        rule_version=ruleset.version,
    )
