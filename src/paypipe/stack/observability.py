"""The operations dashboard and the alarms, generated from the step table and the metric catalogue.

Every function of ``paypipe.stack.steps.FUNCTIONS`` gets its Lambda widgets (errors, throttles,
duration p50/p90/p99) and alarms (error rate, throttles); every queued one its queue widgets
(depth, age of the oldest message, DLQ depths), its record widgets (received, failed, parked) and
a queue age alarm. Business widgets and alarms read the catalogue's metrics
(``paypipe.observability.catalogue``) for the steps that publish their events. Every threshold is
a template parameter (``THRESHOLDS``). The cost-per-payment widget is metric math over the request
counts CloudWatch records and the list prices ``paypipe cost`` uses.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from paypipe import cost
from paypipe.events import models as ev
from paypipe.observability.catalogue import CATALOGUE, NAMESPACE
from paypipe.stack.cfn import getatt, ref, sub
from paypipe.stack.steps import FUNCTIONS, TABLES, Function

Resources = dict[str, Any]
DEFAULT_MEMORY_MB = 512  # Globals.Function.MemorySize in infra/sam/shared.yaml
TERMINAL_TYPES = ("PaymentRejected", "PaymentDeclined", "FundsRefunded", "PayoutBatched", "PayoutNetted")
ACH_WINDOWS = get_args(ev.AchBatchCreatedData.model_fields["window"].annotation)
THRESHOLDS = {  # alarm threshold parameters (declared with their defaults in shared.yaml)
    "QueueAgeAlarmSeconds": "Age of a consumer queue's oldest message that alarms",
    "ErrorRateAlarmPercent": "Lambda errors as a percentage of invocations (5 minutes) that alarms",
    "ThrottleAlarmThreshold": "Lambda throttles in 5 minutes above which a function alarms",
    "SetAsideAlarmThreshold": "Payouts or holds set aside in an hour above which a job alarms",
    "DeferredFilesAlarmThreshold": "Deferred ACH cuts in an hour above which the cut alarms",
    "DisputesPastAgeAlarmThreshold": "Disputes past DisputeMaxAgeDays in an hour above which release alarms",
    "SettlementDiscrepancyAlarmThreshold": "Settlement discrepancies in a day above which the match alarms",
    "ReturnRateAlarmPercent": "Returned payouts as a percentage of ACH entries filed (1 day) that alarms",
}
_PERIOD = 300


def logical(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def steps_of(metric: str) -> list[str]:
    """The steps (producers) whose events give the metric its values, in contract order."""
    steps = [p for name in CATALOGUE[metric].events for p in sorted(ev.EVENT_TYPES[name].PRODUCERS)]
    return [step for step in dict.fromkeys(steps) if step != ev.CLIENT_PRODUCER]


def queued() -> list[Function]:
    return [function for function in FUNCTIONS if function.queued]


# -- dashboard -----------------------------------------------------------------------------------


def _paypipe(metric: str, stat: str = "Sum", **dimensions: str) -> list[Any]:
    assert sorted(dimensions) == sorted(CATALOGUE[metric].dimensions), metric
    pairs = [item for name in CATALOGUE[metric].dimensions for item in (name, dimensions[name])]
    return [NAMESPACE, metric, *pairs, {"stat": stat}]


def _search(metric: str, stat: str = "Sum") -> dict[str, Any]:
    """Every dimension value of a catalogue metric (reason codes and the like) through SEARCH."""
    schema = ",".join([NAMESPACE, *sorted(CATALOGUE[metric].dimensions)])
    query = f"SEARCH('{{{schema}}} MetricName=\"{metric}\"', '{stat}', {_PERIOD})"
    return {"expression": query, "label": metric, "id": f"s{metric.lower()}"}


def _widget(title: str, metrics: list[Any], **properties: Any) -> dict[str, Any]:
    body = {"title": title, "region": "${AWS::Region}", "view": "timeSeries", "period": _PERIOD}
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": body | {"metrics": metrics} | properties,
    }


def _lambda(function: Function, metric: str, stat: str) -> list[Any]:
    return ["AWS/Lambda", metric, "FunctionName", f"${{{logical(function.name)}Function}}", {"stat": stat}]


def _sqs(queue: str, metric: str, stat: str = "Maximum") -> list[Any]:
    return ["AWS/SQS", metric, "QueueName", f"${{{queue}.QueueName}}", {"stat": stat, "label": queue}]


def _step_widgets() -> list[dict[str, Any]]:
    steps = [function.name for function in queued()]
    widgets = [
        _widget("Records received per step", [_paypipe("RecordsReceived", step=s) for s in steps]),
        _widget("Records failed (redelivered) per step", [_paypipe("RecordsFailed", step=s) for s in steps]),
        _widget("Records parked in DLQs, by step and reason", [[_search("RecordsParked")]]),
        _widget(
            "Queue depth", [_sqs(f"{logical(s)}Queue", "ApproximateNumberOfMessagesVisible") for s in steps]
        ),
        _widget(
            "Age of the oldest message",
            [_sqs(f"{logical(s)}Queue", "ApproximateAgeOfOldestMessage") for s in steps],
        ),
        _widget("Events published, by step and type", [[_search("EventsPublished")]]),
    ]
    dlqs = [f"{logical(s)}{kind}" for s in steps for kind in ("DLQ", "RuleDLQ")] + ["ScheduledDLQ"]
    widgets.append(_widget("DLQ depths", [_sqs(q, "ApproximateNumberOfMessagesVisible") for q in dlqs]))
    return widgets


def _lambda_widgets() -> list[dict[str, Any]]:
    widgets = [
        _widget("Lambda errors", [_lambda(f, "Errors", "Sum") for f in FUNCTIONS]),
        _widget("Lambda throttles", [_lambda(f, "Throttles", "Sum") for f in FUNCTIONS]),
    ]
    for function in FUNCTIONS:
        lines = [_lambda(function, "Duration", stat) for stat in ("p50", "p90", "p99")]
        widgets.append(_widget(f"{function.name} duration (ms)", lines, width=8))
    return widgets


def _business_widgets() -> list[dict[str, Any]]:
    terminal = [
        _paypipe("EventsPublished", step=step, event_type=name)
        for name in TERMINAL_TYPES
        for step in sorted(ev.EVENT_TYPES[name].PRODUCERS)
    ]
    amounts = [
        _paypipe(metric, step=step)
        for metric in ("HeldCents", "ReleasedCents", "RefundedCents", "PaidOutCents")
        for step in steps_of(metric)
    ]
    decisions = [
        _paypipe("FraudDecisions", step=step, outcome=decision.value)
        for step in steps_of("FraudDecisions")
        for decision in ev.Decision
    ]
    ages = [
        _paypipe("PaymentAge", stat, step=step, milestone=milestone)
        for milestone in CATALOGUE["PaymentAge"].events
        for step in sorted(ev.EVENT_TYPES[milestone].PRODUCERS)
        for stat in ("p50", "p90")
    ]
    return [
        _widget("Payments by terminal state", terminal),
        _widget("Amounts (cents)", amounts),
        _widget("Fraud decisions", decisions),
        _widget("Fraud scores by bucket", [[_search("FraudScores")]]),
        _widget("Payment age at each milestone (s)", ages),
        *_review_widgets(),
        _widget(
            "Rejections and refusals by reason", [[_search("RejectReasons")], [_search("RequestsRefused")]]
        ),
    ]


def _review_widgets() -> list[dict[str, Any]]:
    steps = steps_of("ReviewsDecided")  # the fraud step, which also runs the review sweep
    flow = [_paypipe("ReviewsOpened", step=step) for step in steps_of("ReviewsOpened")] + [
        _paypipe("ReviewsDecided", step=step, outcome=outcome)
        for step in steps
        for outcome in ("approve", "decline", "expired")
    ]
    queue = [
        *(
            _paypipe(metric, "Maximum", step=step)
            for metric in ("ReviewsOpen", "OldestReviewAgeSeconds")
            for step in steps
        ),
        *(_paypipe("ReviewDecisionSeconds", stat, step=step) for step in steps for stat in ("p50", "p90")),
    ]
    return [
        _widget("Fraud reviews opened and closed", flow),
        _widget("Fraud review queue: open reviews, oldest age and decision time (s)", queue),
    ]


def _ach_widgets() -> list[dict[str, Any]]:
    files = [
        _paypipe(metric, step=step, window=window)
        for metric in ("AchFiles", "AchEntries")
        for step in steps_of(metric)
        for window in ACH_WINDOWS
    ]
    jobs = [
        _paypipe(metric, step=step)
        for metric in ("ItemsSetAside", "AchFilesDeferred")
        for step in steps_of(metric)
    ]
    answers = [[_search("ReturnCodes")], [_search("PrenoteReturns")], [_search("AccountCorrections")]]
    return [
        _widget("ACH files and entries per window", files),
        _widget("ACH totals (cents)", [_paypipe("PaidOutCents", step=s) for s in steps_of("PaidOutCents")]),
        _widget("Set-aside items and deferred cuts", jobs),
        _widget("Returns and notifications of change by code", answers),
    ]


def _hidden(metric: list[Any], ident: str) -> list[Any]:
    options = dict(metric[-1]) | {"id": ident, "visible": False}
    return [*metric[:-1], options]


SQS_REQUESTS = (
    "NumberOfMessagesSent",
    "NumberOfMessagesReceived",
    "NumberOfMessagesDeleted",
    "NumberOfEmptyReceives",
)


def _cost_terms(prices: cost.Prices) -> tuple[list[Any], list[str]]:
    """The hidden request-count lines of the cost widget and its USD terms (metric math)."""
    lines: list[Any] = []
    invocations, gb_ms, sqs = [], [], []
    for i, function in enumerate(FUNCTIONS):
        memory = int(function.properties.get("MemorySize", DEFAULT_MEMORY_MB))
        lines += [_hidden(_lambda(function, "Invocations", "Sum"), f"inv{i}")]
        lines += [_hidden(_lambda(function, "Duration", "Sum"), f"dur{i}")]
        invocations.append(f"inv{i}")
        gb_ms.append(f"dur{i}*{memory / 1024:g}")
    for i, function in enumerate(queued()):
        for j, metric in enumerate(SQS_REQUESTS):
            lines.append(_hidden(_sqs(f"{logical(function.name)}Queue", metric, "Sum"), f"q{i}m{j}"))
            sqs.append(f"q{i}m{j}")
    units: dict[str, list[str]] = {"Write": [], "Read": []}
    for i, table in enumerate(TABLES):
        for unit, names in units.items():
            ident = f"t{i}{unit[0].lower()}"
            consumed = ["AWS/DynamoDB", f"Consumed{unit}CapacityUnits", "TableName", f"${{{table}Table}}"]
            lines.append(_hidden([*consumed, {"stat": "Sum"}], ident))
            names.append(ident)
    lines.append([_search("EventsPublished") | {"id": "events", "visible": False}])
    terms = [
        f"({'+'.join(invocations)})*{prices.lambda_request:g}",
        f"({'+'.join(gb_ms)})/1000*{prices.lambda_gb_second:g}",
        f"({'+'.join(sqs)})*{prices.sqs_request:g}",
        f"SUM(events)*{prices.eventbridge_event:g}",
        f"({'+'.join(units['Write'])})*{prices.dynamodb_wru:g}",
        f"({'+'.join(units['Read'])})*{prices.dynamodb_rru:g}",
    ]
    return lines, terms


def _cost_widget() -> dict[str, Any]:
    """USD per payment: Lambda requests and GB-s, SQS requests, events the steps published,
    DynamoDB request units, over the payments validate decided (accepted or rejected), per hour.
    KMS, S3 and log ingestion are left out (``paypipe cost`` has them)."""
    prices = cost.load_prices()
    lines, terms = _cost_terms(prices)
    decided = [
        _hidden(_paypipe("EventsPublished", step="validate", event_type=name), f"pay{k}")
        for k, name in enumerate(("PaymentValidated", "PaymentRejected"))
    ]
    expression = {
        "expression": f"({' + '.join(terms)}) / (pay0+pay1)",
        "label": "USD per payment",
        "id": "usd",
    }
    return _widget(
        f"AWS cost per payment (list prices {prices.region}, {prices.as_of})",
        [*lines, *decided, [expression]],
        period=3600,
        width=24,
    )


def dashboard() -> Resources:
    widgets = [*_step_widgets(), *_lambda_widgets(), *_business_widgets(), *_ach_widgets(), _cost_widget()]
    body = json.dumps({"widgets": widgets}, separators=(",", ":"))
    return {
        "OperationsDashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {"DashboardName": sub("${AWS::StackName}-operations"), "DashboardBody": sub(body)},
        }
    }


# -- alarms --------------------------------------------------------------------------------------


def _alarm(
    description: str, threshold: str, body: Resources, operator: str = "GreaterThanThreshold"
) -> Resources:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {"AlarmDescription": description}
        | body
        | {
            "EvaluationPeriods": 1,
            "Threshold": ref(threshold),
            "ComparisonOperator": operator,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [ref("AlarmTopic")],
        },
    }


def _single(namespace: str, metric: str, dimensions: dict[str, Any], stat: str, period: int) -> Resources:
    return {
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions.items()],
        "Statistic": stat,
        "Period": period,
    }


def _query(ident: str, namespace: str, metric: str, dimensions: dict[str, Any], period: int) -> Resources:
    found: dict[str, Any] = {"Namespace": namespace, "MetricName": metric}
    found["Dimensions"] = [{"Name": name, "Value": value} for name, value in dimensions.items()]
    stat = {"Metric": found, "Period": period, "Stat": "Sum"}
    return {"Id": ident, "MetricStat": stat, "ReturnData": False}


def _function_alarms(function: Function) -> Resources:
    stem = logical(function.name)
    name = {"FunctionName": ref(f"{stem}Function")}
    rate = [
        _query("errors", "AWS/Lambda", "Errors", name, _PERIOD),
        _query("invocations", "AWS/Lambda", "Invocations", name, _PERIOD),
        {"Id": "rate", "Expression": "100 * errors / invocations", "Label": "error %", "ReturnData": True},
    ]
    alarms = {
        f"{stem}ErrorRateAlarm": _alarm(
            f"{function.name}: Lambda errors at or above ErrorRateAlarmPercent of its invocations",
            "ErrorRateAlarmPercent",
            {"Metrics": rate},
            "GreaterThanOrEqualToThreshold",
        ),
        f"{stem}ThrottleAlarm": _alarm(
            f"{function.name}: Lambda throttles above ThrottleAlarmThreshold",
            "ThrottleAlarmThreshold",
            _single("AWS/Lambda", "Throttles", name, "Sum", _PERIOD),
        ),
    }
    if function.queued:
        queue = {"QueueName": getatt(f"{stem}Queue.QueueName")}
        alarms[f"{stem}QueueLagAlarm"] = _alarm(
            f"{function.name}: the oldest message waited longer than QueueAgeAlarmSeconds",
            "QueueAgeAlarmSeconds",
            _single("AWS/SQS", "ApproximateAgeOfOldestMessage", queue, "Maximum", _PERIOD),
        )
    return alarms


def _business_alarms() -> Resources:
    alarms: Resources = {}
    for step in steps_of("ItemsSetAside"):
        alarms[f"{logical(step)}SetAsideAlarm"] = _alarm(
            f"{step}: payouts or holds set aside (ItemSetAside events) above SetAsideAlarmThreshold",
            "SetAsideAlarmThreshold",
            _single(NAMESPACE, "ItemsSetAside", {"step": step}, "Sum", 3600),
        )
    for step in steps_of("AchFilesDeferred"):
        alarms["AchFilesDeferredAlarm"] = _alarm(
            "ACH cuts deferred (no file id modifier left for the day) above DeferredFilesAlarmThreshold",
            "DeferredFilesAlarmThreshold",
            _single(NAMESPACE, "AchFilesDeferred", {"step": step}, "Sum", 3600),
        )
    for step in steps_of("DisputesPastAge"):
        alarms["DisputesPastAgeAlarm"] = _alarm(
            "A dispute has been open longer than DisputeMaxAgeDays (see its DisputeAged event)",
            "DisputesPastAgeAlarmThreshold",
            _single(NAMESPACE, "DisputesPastAge", {"step": step}, "Sum", 3600),
        )
    for step in steps_of("SettlementDiscrepancies"):
        alarms["SettlementDiscrepancyAlarm"] = _alarm(
            "The acquirer's settlement report and the card book disagree (see SettlementReconciled)",
            "SettlementDiscrepancyAlarmThreshold",
            _single(NAMESPACE, "SettlementDiscrepancies", {"step": step}, "Sum", 86_400),
        )
    alarms["ReturnRateAlarm"] = _return_rate_alarm()
    return alarms


def _return_rate_alarm() -> Resources:
    day = 86_400
    returns = [
        _query(f"r{i}", NAMESPACE, "PayoutReturns", {"step": s}, day)
        for i, s in enumerate(steps_of("PayoutReturns"))
    ]
    entries = [
        _query(f"e{i}{j}", NAMESPACE, "AchEntries", {"step": s, "window": w}, day)
        for i, s in enumerate(steps_of("AchEntries"))
        for j, w in enumerate(ACH_WINDOWS)
    ]
    rate = f"100 * ({' + '.join(q['Id'] for q in returns)}) / ({' + '.join(q['Id'] for q in entries)})"
    expression = {"Id": "rate", "Expression": rate, "Label": "return %", "ReturnData": True}
    return _alarm(
        "Returned payouts above ReturnRateAlarmPercent of the ACH entries filed in a day",
        "ReturnRateAlarmPercent",
        {"Metrics": [*returns, *entries, expression]},
    )


def alarms() -> Resources:
    found: Resources = {}
    for function in FUNCTIONS:
        found |= _function_alarms(function)
    return found | _business_alarms()


NOTE = """\
Operations: the dashboard and the alarms (to AlarmTopic) every function, queue and business
metric gets (paypipe.stack.observability; thresholds are parameters)."""


def resources() -> Resources:
    return dashboard() | alarms()
