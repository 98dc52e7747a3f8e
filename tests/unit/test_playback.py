"""Scenario files: parsing (every refusal names its line) and the schedule slots the runner fires."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from paypipe.embedded.playback import (
    CronSchedule,
    RateSchedule,
    ScenarioError,
    Slots,
    parse_scenario,
    schedule_of,
)

T0 = "2026-11-02T14:00:00Z"
PUBLISH = {"Source": "paypipe.client", "DetailType": "ServiceCompleted", "Detail": {"event_id": "e"}}


def lines(*items):
    return "\n".join(json.dumps(item) for item in items)


def test_a_scenario_is_parameters_then_publishes_then_the_end():
    scenario = parse_scenario(
        lines(
            {"parameters": {"HoldDays": 1}},
            {"at": T0, "publish": PUBLISH},
            {"at": "2026-11-02T14:00:00+00:00", "publish": {**PUBLISH, "Detail": '{"event_id": "f"}'}},
            {"at": "2026-11-03T00:00:00Z", "end": True},
        )
        + "\n\n"
    )
    assert scenario.parameters == {"HoldDays": "1"}
    assert [p.line for p in scenario.publishes] == [2, 3]
    assert scenario.publishes[0].entry["Detail"] == '{"event_id":"e"}'
    assert scenario.start == datetime(2026, 11, 2, 14, tzinfo=UTC)
    assert scenario.end == datetime(2026, 11, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("not json", 1, "not JSON"),
        (lines([1, 2]), 1, "JSON object"),
        (lines({"at": T0, "publish": PUBLISH}), 1, "last line must be"),
        (lines({"at": T0, "publish": PUBLISH, "extra": 1}, {"at": T0, "end": True}), 1, "a line is"),
        (lines({"at": "yesterday", "end": True}), 1, "not an ISO 8601 time"),
        (lines({"at": "2026-11-02T14:00:00", "end": True}), 1, "must be in UTC"),
        (lines({"at": "2026-11-02T09:00:00-05:00", "end": True}), 1, "must be in UTC"),
        (
            lines({"at": T0, "publish": PUBLISH}, {"at": "2026-11-02T13:59:59Z", "end": True}),
            2,
            "time goes back",
        ),
        (lines({"at": T0, "end": True}, {"at": T0, "publish": PUBLISH}), 2, "nothing may follow"),
        (lines({"at": T0, "end": "yes"}), 1, '"end" must be true'),
        (lines({"at": T0, "publish": {"Source": "s"}}, {"at": T0, "end": True}), 1, "needs"),
        (lines({"at": T0, "publish": {**PUBLISH, "Bus": "x"}}, {"at": T0, "end": True}), 1, "unknown keys"),
        (
            lines({"at": T0, "publish": {**PUBLISH, "Source": 1}}, {"at": T0, "end": True}),
            1,
            "must be strings",
        ),
        (lines({"at": T0, "end": True}, {"parameters": {}}), 2, "nothing may follow"),
        (lines({"parameters": []}, {"at": T0, "end": True}), 1, '"parameters" must be'),
        ("", 0, "empty"),
    ],
)
def test_a_bad_scenario_is_refused_naming_the_line(text, line, message):
    with pytest.raises(ScenarioError) as refused:
        parse_scenario(text)
    assert refused.value.line == line
    assert message in str(refused.value)
    assert str(refused.value).startswith(f"line {line}: ") == bool(line)


def test_rate_slots_are_counted_from_the_epoch():
    every_five = schedule_of("rate(5 minutes)")
    assert every_five == RateSchedule(timedelta(minutes=5))
    assert every_five.next_after(datetime(2026, 11, 2, 14, 3, 20, tzinfo=UTC)) == datetime(
        2026, 11, 2, 14, 5, tzinfo=UTC
    )
    assert every_five.next_after(datetime(2026, 11, 2, 14, 5, tzinfo=UTC)) == datetime(
        2026, 11, 2, 14, 10, tzinfo=UTC
    )
    assert schedule_of("rate(1 day)").next_after(datetime(2026, 11, 2, 14, tzinfo=UTC)) == datetime(
        2026, 11, 3, tzinfo=UTC
    )


def test_cron_slots_follow_eventbridge_syntax_in_utc():
    weekdays = schedule_of("cron(15 14,19 ? * MON-FRI *)")
    assert isinstance(weekdays, CronSchedule)
    friday_evening = datetime(2026, 11, 6, 20, tzinfo=UTC)
    assert weekdays.next_after(friday_evening) == datetime(2026, 11, 9, 14, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression", ["every 5 minutes", "rate(0 minutes)", "rate(5 weeks)", "cron(61 * * * ? *)"]
)
def test_an_expression_eventbridge_would_refuse_is_refused(expression):
    with pytest.raises(ValueError):
        schedule_of(expression)


def test_slots_fire_every_function_in_time_order_up_to_the_limit():
    slots = Slots(
        pending={
            "Sweep": datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
            "Cut": datetime(2026, 1, 1, 0, 10, tzinfo=UTC),
        },
        schedules={"Sweep": RateSchedule(timedelta(minutes=5)), "Cut": RateSchedule(timedelta(minutes=10))},
    )
    fired = list(slots.due(datetime(2026, 1, 1, 0, 20, tzinfo=UTC)))
    assert [(name, at.minute) for name, at in fired] == [
        ("Sweep", 5),
        ("Cut", 10),
        ("Sweep", 10),
        ("Sweep", 15),
        ("Cut", 20),
        ("Sweep", 20),
    ]
    assert list(slots.due(datetime(2026, 1, 1, 0, 24, tzinfo=UTC))) == []
