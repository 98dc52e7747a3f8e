"""The host-mode Lambda bootstrap's movable clock (tools/localstack_executor)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BOOTSTRAP = (
    Path(__file__).resolve().parents[2]
    / "tools"
    / "localstack_executor"
    / "paypipe_localstack"
    / "bootstrap.py"
)


def bootstrap(monkeypatch: pytest.MonkeyPatch, clock_file: Path | None) -> ModuleType:
    """The bootstrap module as an execution environment loads it (it reads its settings on import)."""
    monkeypatch.setenv("LOCALSTACK_RUNTIME_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("LOCALSTACK_RUNTIME_ID", "test")
    monkeypatch.setenv("PAYPIPE_EXECUTOR_PORT", "1")
    if clock_file is None:
        monkeypatch.delenv("PAYPIPE_LAMBDA_CLOCK_FILE", raising=False)
    else:
        monkeypatch.setenv("PAYPIPE_LAMBDA_CLOCK_FILE", str(clock_file))
    spec = importlib.util.spec_from_file_location("paypipe_localstack_bootstrap", BOOTSTRAP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqs_event(sent: str = "1796205958498") -> dict[str, Any]:
    attributes = {
        "SentTimestamp": sent,
        "ApproximateFirstReceiveTimestamp": sent,
        "ApproximateReceiveCount": "2",
    }
    return {
        "Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}", "attributes": attributes}]
    }


def test_the_offset_is_read_from_the_clock_file_at_each_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock_file = tmp_path / "offset-ms"
    module = bootstrap(monkeypatch, clock_file)
    assert module.clock_offset_millis() == 0  # no file yet
    clock_file.write_text("86400000\n")
    assert module.clock_offset_millis() == 86_400_000
    clock_file.write_text("")
    assert module.clock_offset_millis() == 0
    clock_file.write_text("soon")
    assert module.clock_offset_millis() == 0


def test_without_a_clock_file_the_offset_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bootstrap(monkeypatch, None).clock_offset_millis() == 0


def test_sqs_records_are_stamped_later_and_nothing_else_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    module = bootstrap(monkeypatch, None)
    moved = module.moved_clock(sqs_event(), 86_400_000)
    (attributes,) = [record["attributes"] for record in moved["Records"]]
    assert attributes == {
        "SentTimestamp": "1796292358498",
        "ApproximateFirstReceiveTimestamp": "1796292358498",
        "ApproximateReceiveCount": "2",
    }
    assert module.moved_clock(sqs_event(), 0) == sqs_event()


def test_payloads_that_are_not_sqs_batches_pass_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    module = bootstrap(monkeypatch, None)
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-12-02T10:00:00Z"}
    other = {"Records": [{"eventSource": "aws:s3", "attributes": {"SentTimestamp": "1"}}]}
    for payload in (scheduled, other, None, [1, 2], {"token": "t"}):
        assert module.moved_clock(copy.deepcopy(payload), 5_000) == payload
