from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypipe.domain import fraud
from paypipe.domain.fraud import (
    Decision,
    Features,
    FraudAssessment,
    Rule,
    RuleSet,
    RuleSetError,
    Transaction,
    available_versions,
    compute_features,
    evaluate,
    load_ruleset,
    parse_ruleset,
)

AS_OF = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

TXN = Transaction(
    payment_id="pay-current",
    customer_id="cust-1",
    card_id="tok-card-1",
    payee_account_fingerprint="fp-payee-1",
    ip_address="203.0.113.7",
    amount_cents=5_000,
    currency="USD",
    billing_country="US",
    ip_country="US",
    card_country="US",
    occurred_at=AS_OF,
)


def past(n: int, ago: timedelta, **changes: Any) -> Transaction:
    """A prior transaction sharing card, customer and IP with TXN unless changed."""
    fields: dict[str, Any] = {"payment_id": f"pay-{n}", "occurred_at": AS_OF - ago, **changes}
    return dataclasses.replace(TXN, **fields)


def features_of(history: list[Transaction], txn: Transaction = TXN) -> Features:
    return compute_features(txn, history, AS_OF)


def test_no_history_gives_zero_velocity_and_first_use() -> None:
    f = features_of([])
    assert f.as_dict() == {
        **{name: 0 for name in f.as_dict() if "_count_" in name or "_sum_" in name},
        "amount_cents": 5_000,
        "amount_zscore": 0.0,
        "ip_billing_country_mismatch": False,
        "card_billing_country_mismatch": False,
        "first_card_use_for_customer": True,
        "first_payee_for_customer": True,
        "card_small_txn_count_1h": 0,
        "ip_other_cards_1h": 0,
        "card_testing_pattern": False,
    }


@pytest.mark.parametrize(
    ("ago", "counts"),
    [
        (timedelta(0), (0, 0, 0)),  # at as_of: not strictly before
        (timedelta(seconds=1), (1, 1, 1)),
        (timedelta(hours=1), (1, 1, 1)),  # window start is inclusive
        (timedelta(hours=1, seconds=1), (0, 1, 1)),
        (timedelta(hours=24), (0, 1, 1)),
        (timedelta(hours=24, seconds=1), (0, 0, 1)),
        (timedelta(days=7), (0, 0, 1)),
        (timedelta(days=7, seconds=1), (0, 0, 0)),
        (timedelta(hours=-1), (0, 0, 0)),  # after as_of
    ],
)
def test_window_boundaries(ago: timedelta, counts: tuple[int, int, int]) -> None:
    f = features_of([past(1, ago, amount_cents=700)])
    for dim in ("card", "customer", "ip"):
        got = tuple(getattr(f, f"{dim}_txn_count_{w}") for w in ("1h", "24h", "7d"))
        sums = tuple(getattr(f, f"{dim}_amount_sum_{w}") for w in ("1h", "24h", "7d"))
        assert got == counts
        assert sums == tuple(700 * c for c in counts)


def test_dimensions_are_counted_separately() -> None:
    history = [
        past(1, timedelta(minutes=5), customer_id="other", ip_address="198.51.100.1", amount_cents=100),
        past(2, timedelta(minutes=10), card_id="tok-other", ip_address="198.51.100.1", amount_cents=200),
        past(3, timedelta(minutes=15), card_id="tok-x", customer_id="c-x", amount_cents=400),
        past(4, timedelta(hours=3), card_id="tok-y", customer_id="c-y", ip_address="x", amount_cents=800),
    ]
    f = features_of(history)
    assert (f.card_txn_count_1h, f.card_amount_sum_1h) == (1, 100)
    assert (f.customer_txn_count_1h, f.customer_amount_sum_1h) == (1, 200)
    assert (f.ip_txn_count_1h, f.ip_amount_sum_1h) == (1, 400)
    assert f.ip_other_cards_1h == 1


def test_same_payment_id_is_ignored() -> None:
    duplicate = dataclasses.replace(TXN, occurred_at=AS_OF - timedelta(minutes=1))
    assert features_of([duplicate]) == features_of([])


def test_sums_only_include_transaction_currency() -> None:
    history = [
        past(1, timedelta(minutes=5), amount_cents=1_000),
        past(2, timedelta(minutes=6), amount_cents=9_999, currency="EUR"),
    ]
    f = features_of(history)
    assert f.card_txn_count_1h == 2
    assert f.card_amount_sum_1h == 1_000


@pytest.mark.parametrize(
    ("prior_amounts", "amount", "zscore"),
    [
        ([], 5_000, 0.0),
        ([1_000], 5_000, 0.0),  # fewer than two points: no signal
        ([1_000, 3_000], 2_000, 0.0),
        ([1_000, 3_000], 5_000, 3.0),  # mean 2000, population stdev 1000
        ([1_000, 3_000], 0, -2.0),
        ([2_000, 2_000, 2_000], 2_000, 0.0),
        ([2_000, 2_000, 2_000], 2_001, fraud.ZSCORE_CAP),  # zero spread: capped
        ([2_000, 2_000, 2_000], 1_999, -fraud.ZSCORE_CAP),
        ([1_000, 1_002], 1_000_000, fraud.ZSCORE_CAP),
    ],
)
def test_amount_zscore(prior_amounts: list[int], amount: int, zscore: float) -> None:
    history = [
        past(i, timedelta(days=1), amount_cents=a, card_id=f"t{i}") for i, a in enumerate(prior_amounts)
    ]
    f = features_of(history, dataclasses.replace(TXN, amount_cents=amount))
    assert f.amount_zscore == pytest.approx(zscore)


def test_zscore_uses_only_this_customers_history() -> None:
    history = [past(i, timedelta(days=1), amount_cents=100, customer_id="someone-else") for i in range(5)]
    assert features_of(history).amount_zscore == 0.0


@pytest.mark.parametrize(
    ("billing", "ip_country", "card_country", "ip_mismatch", "card_mismatch"),
    [
        ("US", "US", "US", False, False),
        ("US", "us", "US", False, False),
        ("US", "NG", "US", True, False),
        ("US", "US", "GB", False, True),
        ("US", None, None, False, False),
        ("DE", "FR", "GB", True, True),
    ],
)
def test_country_mismatch(
    billing: str, ip_country: str | None, card_country: str | None, ip_mismatch: bool, card_mismatch: bool
) -> None:
    txn = dataclasses.replace(TXN, billing_country=billing, ip_country=ip_country, card_country=card_country)
    f = features_of([], txn)
    assert (f.ip_billing_country_mismatch, f.card_billing_country_mismatch) == (ip_mismatch, card_mismatch)


def test_first_use_of_card_and_payee_is_per_customer() -> None:
    other_customer = past(1, timedelta(days=2), customer_id="cust-2")
    assert features_of([other_customer]).first_card_use_for_customer
    assert features_of([other_customer]).first_payee_for_customer

    same_card = past(2, timedelta(days=2), payee_account_fingerprint="fp-other")
    f = features_of([same_card])
    assert (f.first_card_use_for_customer, f.first_payee_for_customer) == (False, True)

    same_payee = past(3, timedelta(days=2), card_id="tok-other")
    f = features_of([same_payee])
    assert (f.first_card_use_for_customer, f.first_payee_for_customer) == (True, False)


@pytest.mark.parametrize(
    ("prior_small", "amount", "expected"),
    [
        (3, 100, True),
        (2, 100, False),
        (3, 50_000, False),  # current charge is not small
        (5, fraud.CARD_TESTING_SMALL_AMOUNT_CENTS, True),
    ],
)
def test_card_testing_small_amounts(prior_small: int, amount: int, expected: bool) -> None:
    history = [past(i, timedelta(minutes=i + 1), amount_cents=100) for i in range(prior_small)]
    f = features_of(history, dataclasses.replace(TXN, amount_cents=amount))
    assert f.card_small_txn_count_1h == prior_small
    assert f.card_testing_pattern is expected


def test_card_testing_small_amounts_outside_hour_do_not_count() -> None:
    history = [past(i, timedelta(hours=2), amount_cents=100) for i in range(10)]
    f = features_of(history, dataclasses.replace(TXN, amount_cents=100))
    assert (f.card_small_txn_count_1h, f.card_testing_pattern) == (0, False)


@pytest.mark.parametrize(("other_cards", "expected"), [(2, False), (3, True), (6, True)])
def test_card_testing_many_cards_from_one_ip(other_cards: int, expected: bool) -> None:
    history = [
        past(i, timedelta(minutes=10), card_id=f"tok-{i}", customer_id=f"c-{i}", amount_cents=90_000)
        for i in range(other_cards)
    ]
    history.append(past(99, timedelta(minutes=20), amount_cents=90_000))  # current card: not "other"
    f = features_of(history)
    assert f.ip_other_cards_1h == other_cards
    assert f.card_testing_pattern is expected


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dataclasses.replace(TXN, occurred_at=datetime(2026, 11, 23, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_features(TXN, [], datetime(2026, 11, 23, 12, 0))


# --- Rules ------------------------------------------------------------------------------------


def rule(rule_id: str, feature: str, op: str, threshold: Any, points: Any) -> dict[str, Any]:
    return {"id": rule_id, "feature": feature, "operator": op, "threshold": threshold, "points": points}


def ruleset_json(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "2026-01-01",
        "thresholds": {"review_at": 300, "decline_at": 700},
        "rules": [
            rule("HIGH_AMOUNT", "amount_cents", ">=", 100_000, 400),
            rule("CARD_MISMATCH", "card_billing_country_mismatch", "==", True, 350),
            rule("KNOWN_PAYEE", "first_payee_for_customer", "==", False, -100),
        ],
    }
    return {**base, **overrides}


RULES = parse_ruleset(ruleset_json())


def assessed(
    amount: int, card_country: str = "US", payee: str = "fp-payee-1", **kwargs: int
) -> FraudAssessment:
    txn = dataclasses.replace(TXN, amount_cents=amount, card_country=card_country)
    known_payee = past(1, timedelta(days=1), payee_account_fingerprint=payee)
    return evaluate(features_of([known_payee], txn), RULES, **kwargs)


@pytest.mark.parametrize(
    ("amount", "card_country", "payee", "score", "decision", "reasons"),
    [
        (100, "US", "fp-payee-1", 0, Decision.APPROVE, ("KNOWN_PAYEE",)),  # -100 clamped to 0
        (100, "US", "fp-new", 0, Decision.APPROVE, ()),
        (100, "GB", "fp-new", 350, Decision.REVIEW, ("CARD_MISMATCH",)),
        (100_000, "US", "fp-new", 400, Decision.REVIEW, ("HIGH_AMOUNT",)),
        (100_000, "GB", "fp-payee-1", 650, Decision.REVIEW, ("HIGH_AMOUNT", "CARD_MISMATCH", "KNOWN_PAYEE")),
        (100_000, "GB", "fp-new", 750, Decision.DECLINE, ("HIGH_AMOUNT", "CARD_MISMATCH")),
    ],
)
def test_evaluate_vectors(
    amount: int, card_country: str, payee: str, score: int, decision: Decision, reasons: tuple[str, ...]
) -> None:
    result = assessed(amount, card_country, payee)
    assert (result.score, result.decision, result.reasons) == (score, decision, reasons)
    assert result.rule_version == "2026-01-01"


@pytest.mark.parametrize(
    ("overrides", "decision"),
    [
        ({}, Decision.REVIEW),
        ({"review_at": 500}, Decision.APPROVE),
        ({"decline_at": 400}, Decision.DECLINE),
        ({"review_at": 0, "decline_at": 0}, Decision.DECLINE),
        ({"review_at": 400, "decline_at": 1000}, Decision.REVIEW),
    ],
)
def test_threshold_overrides(overrides: dict[str, int], decision: Decision) -> None:
    assert assessed(100_000, "US", "fp-new", **overrides).decision is decision


@pytest.mark.parametrize(
    "overrides", [{"review_at": 800}, {"decline_at": 1001}, {"review_at": -1}, {"decline_at": 200}]
)
def test_invalid_threshold_overrides(overrides: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"review_at|decline_at"):
        assessed(100, "US", "fp-payee-1", **overrides)


def test_score_clamped_to_maximum() -> None:
    big = RuleSet(
        version="2026-01-01",
        rules=(Rule("A", "amount_cents", ">", 0, 900), Rule("B", "amount_cents", ">", 0, 900)),
        review_at=300,
        decline_at=700,
    )
    result = evaluate(features_of([]), big)
    assert (result.score, result.decision, result.reasons) == (1000, Decision.DECLINE, ("A", "B"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "top level must be an object"),
        (ruleset_json(version="latest"), "version must be a YYYY-MM-DD"),
        ({"version": "2026-01-01", "rules": []}, "missing keys"),
        (ruleset_json(rules=[]), "non-empty list"),
        (ruleset_json(thresholds={"review_at": 300}), "thresholds must be an object"),
        (ruleset_json(thresholds={"review_at": 800, "decline_at": 700}), "above decline_at"),
        (ruleset_json(thresholds={"review_at": 300, "decline_at": 1500}), "decline_at must be an integer"),
        (ruleset_json(thresholds={"review_at": "300", "decline_at": 700}), "review_at must be an integer"),
        (ruleset_json(rules=[rule("X", "no_such_feature", ">", 1, 1)]), "unknown feature 'no_such_feature'"),
        (ruleset_json(rules=[rule("X", "amount_cents", "=>", 1, 1)]), "unknown operator '=>'"),
        (ruleset_json(rules=[rule("X", "amount_cents", ">", True, 1)]), "threshold must be a finite number"),
        (ruleset_json(rules=[rule("X", "amount_cents", ">", "5", 1)]), "threshold must be a finite number"),
        (ruleset_json(rules=[rule("X", "card_testing_pattern", "==", 1, 1)]), "must be true or false"),
        (ruleset_json(rules=[rule("X", "card_testing_pattern", ">", True, 1)]), "cannot compare boolean"),
        (ruleset_json(rules=[rule("X", "amount_cents", ">", 1, 1.5)]), "points must be an integer"),
        (ruleset_json(rules=[rule("bad id", "amount_cents", ">", 1, 1)]), "upper-case reason code"),
        (ruleset_json(rules=[{"id": "X", "feature": "amount_cents"}]), "exactly the keys"),
        (ruleset_json(rules=["X"]), "a rule must be an object"),
        (
            ruleset_json(rules=[rule("X", "amount_cents", ">", 1, 1), rule("X", "amount_cents", "<", 1, 1)]),
            r"duplicate rule ids \['X'\]",
        ),
    ],
)
def test_parse_ruleset_errors(raw: object, message: str) -> None:
    with pytest.raises(RuleSetError, match=message):
        parse_ruleset(raw)


def test_shipped_rulesets_load_and_latest_is_default() -> None:
    versions = available_versions()
    assert versions
    assert versions == sorted(versions)
    for version in versions:
        assert load_ruleset(version).version == version
    assert load_ruleset() == load_ruleset(versions[-1])


def test_shipped_latest_ruleset_flags_card_testing() -> None:
    history = [past(i, timedelta(minutes=i + 1), amount_cents=100) for i in range(4)]
    result = evaluate(features_of(history, dataclasses.replace(TXN, amount_cents=100)), load_ruleset())
    assert result.decision is Decision.DECLINE
    assert "CARD_TESTING" in result.reasons


@pytest.mark.parametrize("version", ["1999-01-01", "../2026-11-01", "latest", ""])
def test_load_unknown_version(version: str) -> None:
    with pytest.raises(RuleSetError, match="unknown fraud rule set version"):
        load_ruleset(version)


@pytest.fixture
def rules_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(fraud, "_rules_dir", lambda: tmp_path)
    fraud._load_version.cache_clear()
    yield tmp_path
    fraud._load_version.cache_clear()


def test_load_from_directory_picks_latest(rules_dir: Path) -> None:
    for version in ("2026-03-01", "2025-12-31", "2026-10-15"):
        (rules_dir / f"{version}.json").write_text(json.dumps(ruleset_json(version=version)))
    (rules_dir / "notes.txt").write_text("ignored")
    (rules_dir / "draft.json").write_text("ignored")
    assert available_versions() == ["2025-12-31", "2026-03-01", "2026-10-15"]
    assert load_ruleset().version == "2026-10-15"


def test_load_reports_invalid_json(rules_dir: Path) -> None:
    (rules_dir / "2026-01-01.json").write_text("{not json")
    with pytest.raises(RuleSetError, match="2026-01-01: invalid JSON"):
        load_ruleset()


def test_load_reports_version_mismatch(rules_dir: Path) -> None:
    (rules_dir / "2026-02-01.json").write_text(json.dumps(ruleset_json(version="2026-01-01")))
    with pytest.raises(RuleSetError, match="declares version 2026-01-01"):
        load_ruleset("2026-02-01")


def test_load_reports_unknown_feature_in_file(rules_dir: Path) -> None:
    raw = ruleset_json(rules=[rule("X", "velocity_card", ">", 1, 1)])
    (rules_dir / "2026-01-01.json").write_text(json.dumps(raw))
    with pytest.raises(RuleSetError, match="fraud rule set 2026-01-01 rule X: unknown feature"):
        load_ruleset()


def test_load_with_no_rulesets(rules_dir: Path) -> None:
    with pytest.raises(RuleSetError, match="no fraud rule sets"):
        load_ruleset()


# --- Properties -------------------------------------------------------------------------------

ids = st.sampled_from(["a", "b", "c"])
history_txns = st.builds(
    Transaction,
    payment_id=st.text("pqrs", min_size=1, max_size=3),
    customer_id=ids,
    card_id=ids,
    payee_account_fingerprint=ids,
    ip_address=ids,
    amount_cents=st.integers(1, 2_000_000),
    currency=st.sampled_from(["USD", "EUR"]),
    billing_country=st.sampled_from(["US", "GB"]),
    ip_country=st.none() | st.sampled_from(["US", "GB"]),
    card_country=st.none() | st.sampled_from(["US", "GB"]),
    occurred_at=st.datetimes(
        min_value=datetime(2026, 11, 10), max_value=datetime(2026, 11, 23, 11, 59), timezones=st.just(UTC)
    ),
)
current_txns = history_txns.map(lambda t: dataclasses.replace(t, payment_id="current", occurred_at=AS_OF))
later_txns = history_txns.map(
    lambda t: dataclasses.replace(t, occurred_at=t.occurred_at + timedelta(days=14))
)


@given(current_txns, st.lists(history_txns, max_size=25))
def test_score_within_bounds_and_deterministic(txn: Transaction, history: list[Transaction]) -> None:
    ruleset = load_ruleset()
    first = evaluate(compute_features(txn, history, AS_OF), ruleset)
    again = evaluate(compute_features(txn, list(reversed(history)), AS_OF), ruleset)
    assert 0 <= first.score <= fraud.MAX_SCORE
    assert first == again
    assert set(first.reasons) <= {r.id for r in ruleset.rules}


@given(current_txns, st.lists(history_txns, max_size=20), st.lists(later_txns, min_size=1, max_size=5))
def test_history_after_as_of_never_changes_features(
    txn: Transaction, history: list[Transaction], later: list[Transaction]
) -> None:
    assert compute_features(txn, history + later, AS_OF) == compute_features(txn, history, AS_OF)


@given(current_txns, st.lists(history_txns, max_size=20))
def test_counts_are_nested_by_window(txn: Transaction, history: list[Transaction]) -> None:
    f = compute_features(txn, history, AS_OF)
    for dim in ("card", "customer", "ip"):
        assert getattr(f, f"{dim}_txn_count_1h") <= getattr(f, f"{dim}_txn_count_24h")
        assert getattr(f, f"{dim}_txn_count_24h") <= getattr(f, f"{dim}_txn_count_7d")
        assert getattr(f, f"{dim}_amount_sum_1h") <= getattr(f, f"{dim}_amount_sum_24h")
        assert getattr(f, f"{dim}_amount_sum_24h") <= getattr(f, f"{dim}_amount_sum_7d")
    assert -fraud.ZSCORE_CAP <= f.amount_zscore <= fraud.ZSCORE_CAP


@given(st.lists(st.integers(-2000, 2000), max_size=8), st.integers(0, 1000), st.integers(0, 1000))
def test_any_points_give_bounded_score_and_consistent_decision(points: list[int], a: int, b: int) -> None:
    review_at, decline_at = sorted((a, b))
    ruleset = RuleSet(
        version="2026-01-01",
        rules=tuple(Rule(f"R{i}", "amount_cents", ">", 0, p) for i, p in enumerate(points)),
        review_at=review_at,
        decline_at=decline_at,
    )
    result = evaluate(features_of([]), ruleset)
    assert result.score == max(0, min(fraud.MAX_SCORE, sum(points)))
    expected = (
        Decision.DECLINE
        if result.score >= decline_at
        else Decision.REVIEW
        if result.score >= review_at
        else Decision.APPROVE
    )
    assert result.decision is expected
