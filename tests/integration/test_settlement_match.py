"""The embedded run's daily settlement match: a clean run matches every reported line, and an
acquirer that does not keep the contract (another fee) is caught on each day it charged."""

import pytest

from paypipe.embedded.demo import run_demo

pytestmark = pytest.mark.embedded


def test_each_day_is_matched_and_a_fee_off_the_contract_is_a_discrepancy(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "steps.jsonl"))
    clean = run_demo(12, seed=3, out_dir=tmp_path / "clean")
    assert clean.reconciliation.ok, clean.reconciliation.violations[:5]
    assert clean.settlement_match["discrepancies"] == 0
    charged = sum(totals.captured > 0 for totals in clean.settled.values())
    assert charged and clean.settlement_match["matched"] > 0

    # The stack's contract says 1 % where the simulated acquirer charges 2.9 % plus 30 cents.
    off = run_demo(12, seed=3, out_dir=tmp_path / "off", overrides={"CardFeeRateBps": "100"})
    found = [v for v in off.reconciliation.violations if v.code == "SETTLEMENT_DISCREPANCY"]
    assert found and all("fee capture" in v.message for v in found)
    assert 0 < off.settlement_match["discrepancies"] <= off.settlement_match["matched"]
    # Only the fees are off: both settlement checks say so, and nothing else is.
    assert {v.code for v in off.reconciliation.violations} == {
        "SETTLEMENT_MISMATCH",
        "SETTLEMENT_DISCREPANCY",
    }
