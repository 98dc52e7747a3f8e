"""``paypipe run --scenario FILE --report FILE``: exit codes, messages and the report file."""

import json
from datetime import timedelta

import pytest

from paypipe import cli
from tests.integration.scenario_kit import DAY, Script

pytestmark = pytest.mark.embedded


def run(capsys, tmp_path, text):
    scenario = tmp_path / "traffic.jsonl"
    scenario.write_text(text)
    report = tmp_path / "report.json"
    code = cli.main(
        ["run", "--scenario", str(scenario), "--report", str(report), "--out", str(tmp_path / "out")]
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err, report


def test_a_clean_day_exits_0_and_writes_the_report(capsys, tmp_path):
    script = Script()
    script.bystander()
    code, out, report = run(capsys, tmp_path, script.text(DAY + timedelta(hours=2)))
    assert code == 0 and "reconciled" in out
    document = json.loads(report.read_text())
    assert document["ok"] is True and document["violations"] == []
    assert {"payments", "ach_entries", "dlq", "ledger"} <= set(document)
    [entry] = document["ach_entries"]
    assert set(entry) >= {
        "payment_id",
        "amount_cents",
        "trace_number",
        "file_key",
        "file_id",
        "effective_date",
        "same_day",
    }
    assert document["ledger"]["USD"]["balanced"] is True


def test_violations_exit_1(capsys, tmp_path):
    script = Script(parameters={"DisputeMaxAgeDays": 1})
    script.request(DAY, "p1")
    script.open_dispute(DAY + timedelta(minutes=5), "p1")
    code, out, report = run(capsys, tmp_path, script.text(DAY + timedelta(days=1, hours=1)))
    assert code == 1 and "DISPUTE_PAST_AGE" in out
    assert json.loads(report.read_text())["ok"] is False


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"at": "2026-11-02T14:00:00Z", "publish": {}}\n', "line 1: "),
        (
            '{"parameters": {"HoldDayz": 3}}\n{"at": "2026-11-02T14:00:00Z", "end": true}\n',
            "unknown parameters",
        ),
        (
            '{"parameters": {"HoldDays": "soon"}}\n{"at": "2026-11-02T14:00:00Z", "end": true}\n',
            "not a number",
        ),
        (
            '{"at": "2026-11-02T14:00:00Z", "end": true}\n{"at": "2026-11-02T13:00:00Z", "end": true}\n',
            "line 2: ",
        ),
    ],
)
def test_a_scenario_that_cannot_be_played_exits_2_naming_the_line(capsys, tmp_path, text, message):
    code, out, report = run(capsys, tmp_path, text)
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1
    assert not report.exists()


def test_a_missing_scenario_file_exits_2(capsys, tmp_path):
    code = cli.main(["run", "--scenario", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)])
    assert code == 2 and "cannot read" in capsys.readouterr().err
