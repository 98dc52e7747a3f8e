"""The fault-injection run (issue: reliability proof), small enough for CI.

`make faults` runs the same thing with 2,000 payments.
"""

import os

import pytest

from paypipe.embedded.demo import run_demo
from paypipe.embedded.faults import FaultPlan

pytestmark = pytest.mark.embedded

# Every kind of fault must actually happen in the CI-sized run, so rates are higher than `make faults`.
AGGRESSIVE = dict(
    duplicate_delivery=0.15,
    reorder=0.2,
    crash_before=0.05,
    crash_after=0.05,
    put_events_entry_failure=0.1,
    kms_throttle=0.9,  # few KMS calls thanks to the data-key cache
    dynamodb_throttle=0.1,
    retries_exhausted=0.01,
    response_lost=0.05,
)
FAULT_KINDS = [
    "delivery.duplicated",
    "delivery.reordered",
    "function.crashed_before",
    "function.crashed_after",
    "events.put_events.entry_failed",
    "kms.",
    "dynamodb.",
    ".response_lost",
    ".retries_exhausted",
]


def test_faulty_run_reconciles_and_leaks_no_card_number(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "steps.jsonl"))
    plan = FaultPlan(seed=5, **AGGRESSIVE)
    report = run_demo(60, seed=5, out_dir=tmp_path, faults=plan)

    for kind in FAULT_KINDS:
        assert any(kind in injected for injected in report.injected), f"no {kind} fault was injected"
    recon = report.reconciliation
    assert recon.ok, recon.violations[:10]
    assert recon.payments == 60 and sum(recon.states.values()) == 60
    assert recon.states["PayoutBatched"] > 30
    assert recon.ach_credit_cents == recon.released_cents > 0
    assert report.stored_data_leaks == []
    assert os.path.getsize(tmp_path / "steps.jsonl") > 0  # the scan did read the logs
