"""The dashboard and alarms: generated for every function and queue of the step table."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from paypipe.embedded.template import load_template
from paypipe.observability.catalogue import CATALOGUE, NAMESPACE
from paypipe.stack import observability
from paypipe.stack.generate import logical
from paypipe.stack.steps import FUNCTIONS

REPO = Path(__file__).resolve().parents[2]


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def expanded(template):
    copied = copy.deepcopy(template)
    for resource in copied["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/key.zip"
    result: dict[str, Any] = transform(copied, {}, _NoManagedPolicies())
    return result


def body(template) -> str:
    (dashboard,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(text, str)
    return text


def referenced(template) -> set[tuple[str, tuple[str, ...]]]:
    """(metric, dimension names) of every paypipe metric the dashboard and the alarms read."""
    found: set[tuple[str, tuple[str, ...]]] = set()
    widgets = json.loads(body(template))["widgets"]
    for widget in widgets:
        for line in widget["properties"]["metrics"]:
            if line[0] == NAMESPACE:
                found.add((line[1], tuple(sorted(line[2:-1:2]))))
            elif isinstance(line[0], dict) and "SEARCH" in line[0]["expression"]:
                schema, name = re.search(r"\{([^}]*)\} MetricName=\"(\w+)\"", line[0]["expression"]).groups()
                found.add((name, tuple(sorted(schema.split(",")[1:]))))
    for alarm in (r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        props = alarm["Properties"]
        stats = (
            [props]
            if "MetricName" in props
            else [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]
        )
        for stat in stats:
            if stat["Namespace"] == NAMESPACE:
                found.add((stat["MetricName"], tuple(sorted(d["Name"] for d in stat["Dimensions"]))))
    return found


def test_every_function_and_queue_has_its_widgets_and_alarms(expanded):
    text = body(expanded)
    resources = expanded["Resources"]
    for function in FUNCTIONS:
        stem = logical(function.name)
        assert resources[f"{stem}Function"]["Type"] == "AWS::Lambda::Function"
        assert f"${{{stem}Function}}" in text, function.name
        for alarm in (f"{stem}ErrorRateAlarm", f"{stem}ThrottleAlarm"):
            assert resources[alarm]["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], alarm
        if function.queued:
            assert f"${{{stem}Queue.QueueName}}" in text and f"${{{stem}DLQ.QueueName}}" in text
            lag = resources[f"{stem}QueueLagAlarm"]["Properties"]
            assert lag["Dimensions"][0]["Value"] == {"Fn::GetAtt": [f"{stem}Queue", "QueueName"]}
            assert lag["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}


def test_the_dashboard_names_only_resources_of_the_stack(expanded):
    names = set(re.findall(r"\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z]+)?\}", body(expanded)))
    assert names - {"AWS::Region", "AWS::StackName"} <= set(expanded["Resources"])


def test_error_rate_is_metric_math_over_invocations(template):
    alarm = template["Resources"]["ValidateErrorRateAlarm"]["Properties"]
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "100 * errors / invocations" and expression["ReturnData"]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_threshold_is_a_parameter_with_a_default(template):
    parameters = template["Parameters"]
    for name in observability.THRESHOLDS:
        assert "Default" in parameters[name], name
    used = {
        r["Properties"]["Threshold"]["Ref"]
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and isinstance(r["Properties"]["Threshold"], dict)
    }
    assert used == set(observability.THRESHOLDS)
    assert parameters["ErrorRateAlarmPercent"]["Default"] == 5


def test_every_function_gets_the_log_level(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["LOG_LEVEL"] == variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert template["Parameters"]["LogLevel"]["Default"] == "INFO"
    assert template["Globals"]["Function"]["Tracing"] == "Active"


def test_the_default_memory_is_the_templates(template):
    assert template["Globals"]["Function"]["MemorySize"] == observability.DEFAULT_MEMORY_MB


def test_what_the_dashboard_and_alarms_read_is_in_the_catalogue(template):
    for name, dimensions in referenced(template):
        assert tuple(sorted(CATALOGUE[name].dimensions)) == dimensions, name


def test_the_operations_guide_lists_the_catalogue():
    guide = (REPO / "docs" / "operations.md").read_text()
    for metric in CATALOGUE.values():
        row = f"| `{metric.name}` | {', '.join(f'`{d}`' for d in metric.dimensions)} |"
        assert row in guide, metric.name
