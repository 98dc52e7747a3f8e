"""Malformed and hostile input through the embedded pipeline's consumers.

Every record gets exactly one answer: an outgoing event (a PaymentRejected with reason codes when
a PaymentRequested's envelope is intact) or a DLQ record with its reason. No record fails the batch.
"""

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paypipe.domain.validation import RejectReason
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import payment_requested
from paypipe.events import models as ev

pytestmark = pytest.mark.embedded

NOW = datetime.now(UTC).replace(microsecond=0)
KB = 1024


class Harness:
    def __init__(self, pipeline: EmbeddedPipeline) -> None:
        self.pipeline = pipeline
        self.sqs = pipeline.session.client("sqs")
        self.events = pipeline.session.client("events")
        self.bus = pipeline.stack.outputs["EventBusName"]
        # Everything the steps publish (the pipeline's own tap parses events, and would choke here).
        self.tap = self.sqs.create_queue(QueueName="bad-input-tap")["QueueUrl"]
        tap_arn = self.sqs.get_queue_attributes(QueueUrl=self.tap, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        pattern = {"source": [{"anything-but": "paypipe.client"}]}
        self.events.put_rule(Name="bad-input-tap", EventBusName=self.bus, EventPattern=json.dumps(pattern))
        self.events.put_targets(
            Rule="bad-input-tap", EventBusName=self.bus, Targets=[{"Id": "tap", "Arn": tap_arn}]
        )

    def take(self, url: str) -> list[dict[str, Any]]:
        taken = []
        while messages := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            for message in messages:
                taken.append(message)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return taken

    def published(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.take(self.tap)]

    def parked(self, step: str) -> list[dict[str, Any]]:
        url = self.pipeline.stack.outputs[f"{step}DLQUrl"]
        return [
            {"body": m["Body"], **{k: v["StringValue"] for k, v in m["MessageAttributes"].items()}}
            for m in self.take(url)
        ]

    def invoke(self, function: str, bodies: list[str]) -> dict[str, Any]:
        """One batch straight to a function, as its event source mapping would hand it over."""
        records = [
            {
                "messageId": f"m{index}",
                "receiptHandle": f"rh{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bad-input",
            }
            for index, body in enumerate(bodies)
        ]
        response: dict[str, Any] = self.pipeline.functions[function].invoke({"Records": records})
        return response


@pytest.fixture(scope="module")
def harness():
    with EmbeddedPipeline(stack_name="paypipe-bad-input", start=NOW) as pipeline:
        yield Harness(pipeline)


def request_detail(payment_id: str | None = None) -> dict[str, Any]:
    payment_id = payment_id or f"bad-{uuid.uuid4().hex[:12]}"
    event = payment_requested(
        payment_id, customer_id="c-1", amount_cents=12_345, pan="4111111111111111", occurred_at=NOW
    )
    return ev.to_detail(event)


def bus_body(detail: Any, detail_type: str = "PaymentRequested") -> str:
    return json.dumps(
        {"version": "0", "detail-type": detail_type, "source": "paypipe.client", "detail": detail}
    )


def mutate(path: str, value: Any, *, delete: bool = False) -> dict[str, Any]:
    detail = request_detail()
    *parents, leaf = path.split(".")
    target = detail
    for part in parents:
        target = target[part]
    if delete:
        del target[leaf]
    else:
        target[leaf] = value
    return detail


def codes(event: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in event["detail"]["data"]["reasons"]]


# (name, detail, expected rejection codes) for requests whose envelope is intact.
REJECTED = [
    ("negative amount", mutate("data.amount_cents", -500), ["AMOUNT_NOT_POSITIVE"]),
    ("zero amount", mutate("data.amount_cents", 0), ["AMOUNT_NOT_POSITIVE"]),
    ("huge amount", mutate("data.amount_cents", 2**70), ["AMOUNT_OVER_LIMIT"]),
    ("fractional amount", mutate("data.amount_cents", 10.5), ["SCHEMA_INVALID"]),
    ("amount as string", mutate("data.amount_cents", "100"), ["SCHEMA_INVALID"]),
    ("amount as bool", mutate("data.amount_cents", True), ["SCHEMA_INVALID"]),
    ("missing payee", mutate("data.payee", None, delete=True), ["SCHEMA_INVALID"]),
    ("missing card number", mutate("data.card.number", None, delete=True), ["SCHEMA_INVALID"]),
    ("data is a string", mutate("data", "PaymentRequested"), ["SCHEMA_INVALID"]),
    ("lower-case currency", mutate("data.currency", "usd"), ["SCHEMA_INVALID"]),
    ("expiry month as string", mutate("data.card.exp_month", "12"), ["SCHEMA_INVALID"]),
    ("expiry month 13", mutate("data.card.exp_month", 13), ["CARD_EXPIRY_INVALID"]),
    ("description too long", mutate("data.description", "x" * 300), ["SCHEMA_INVALID"]),
    (
        "Arabic-Indic card digits",
        mutate("data.card.number", "\u0664" + "\u0661" * 15),
        ["CARD_NUMBER_MALFORMED"],
    ),
    (
        "full-width routing digits",
        mutate("data.payee.routing_number", "\uff10\uff11\uff11\uff10\uff10\uff10\uff10\uff11\uff15"),
        ["ROUTING_NUMBER_INVALID"],
    ),
    (
        "markup in account number",
        mutate("data.payee.account_number", "123<script>"),
        ["ACCOUNT_NUMBER_INVALID"],
    ),
    ("emoji payee", mutate("data.payee.name", "Jordan Lee 😀"), ["PAYEE_NAME_UNREPRESENTABLE"]),
    ("CJK payee", mutate("data.payee.name", "山田太郎"), ["PAYEE_NAME_UNREPRESENTABLE"]),
    (
        "control characters in payee",
        mutate("data.payee.name", "Jordan\x00\x1b[31mLee"),
        ["PAYEE_NAME_UNREPRESENTABLE"],
    ),
    ("SQL in payee", mutate("data.payee.name", "x'; DROP TABLE payees; --"), ["PAYEE_NAME_UNREPRESENTABLE"]),
    ("shell in payee", mutate("data.payee.name", "$(reboot) `id`"), ["PAYEE_NAME_UNREPRESENTABLE"]),
    ("JSON in payee", mutate("data.payee.name", '{"amount_cents": 1}'), ["PAYEE_NAME_UNREPRESENTABLE"]),
    ("blank payee", mutate("data.payee.name", " \t "), ["PAYEE_NAME_UNREPRESENTABLE"]),
    ("40 KiB email", mutate("data.customer.email", "a" * 40 * KB + "@example.com"), ["REQUEST_TOO_LARGE"]),
]

# Requests that look odd but are valid: the text is data, carried verbatim, never interpreted.
ACCEPTED = [
    ("apostrophe and ampersand payee", mutate("data.payee.name", "O'Brien & Sons, Inc.")),
    ("accented payee", mutate("data.payee.name", "Zoë Ærøskøbing-Łódź")),
    ("SQL in description", mutate("data.description", "'; DROP TABLE payments; --")),
    ("JSON in description", mutate("data.description", '{"event_type": "FundsReleased"}')),
    ("unknown minor version", mutate("schema_version", "1.9")),
    ("unknown extra data field", mutate("data.loyalty_tier", "gold")),
]

# Requests whose envelope is broken or unknown: parked with the reason.
PARKED = [
    ("unknown major version", mutate("schema_version", "2.0"), "UnknownEvent"),
    ("event type mismatch", mutate("event_type", "FundsReleased"), "UnknownEvent"),
    ("missing event id", mutate("event_id", None, delete=True), "SchemaViolation"),
    ("shell in payment id", mutate("payment_id", "p1; rm -rf /"), "SchemaViolation"),
    ("unknown envelope field", mutate("admin", True), "SchemaViolation"),
]


def test_bad_requests_through_the_bus_are_rejected_or_parked(harness):
    cases = [(name, detail) for name, detail, _ in REJECTED + PARKED] + ACCEPTED
    entries = [
        {
            "Source": "paypipe.client",
            "DetailType": "PaymentRequested",
            "Detail": json.dumps(detail),
            "EventBusName": harness.bus,
        }
        for _, detail in cases
    ]
    for start in range(0, len(entries), 10):
        assert harness.events.put_events(Entries=entries[start : start + 10])["FailedEntryCount"] == 0
    harness.pipeline.drain()
    validate = harness.pipeline.functions["ValidateFunction"].stats
    assert validate.failed_records == 0 and validate.handler_errors == 0

    first_answer: dict[str, dict[str, Any]] = {}
    for event in harness.published():
        first_answer.setdefault(event["detail"]["payment_id"], event)
    parked = {json.loads(p["body"])["detail"]["payment_id"]: p for p in harness.parked("Validate")}

    for name, detail, expected in REJECTED:
        answer = first_answer.get(detail["payment_id"])
        assert answer is not None and answer["detail-type"] == "PaymentRejected", name
        assert codes(answer) == expected, name
        assert answer["detail"]["data"]["request_event_id"] == detail["event_id"]
    for name, detail in ACCEPTED:
        answer = first_answer.get(detail["payment_id"])
        assert answer is not None and answer["detail-type"] == "PaymentValidated", name
        assert "loyalty_tier" not in answer["detail"]["data"]
        assert answer["detail"]["data"]["description"] == detail["data"]["description"]
    for name, detail, reason in PARKED:
        assert parked[detail["payment_id"]]["error_reason"] == reason, name
        assert parked[detail["payment_id"]]["failed_step"] == "validate"
    assert len(parked) == len(PARKED)


def test_schema_rejections_name_fields_but_never_echo_values(harness):
    secret = "SECRET-4111-VALUE"
    detail = mutate("data.amount_cents", secret)
    detail["data"]["payee"]["account_type"] = secret
    detail["data"]["card"]["exp_year"] = secret
    assert harness.invoke("ValidateFunction", [bus_body(detail)]) == {"batchItemFailures": []}
    [rejected] = harness.published()
    reasons = rejected["detail"]["data"]["reasons"]
    assert {r["field"] for r in reasons} == {"amount_cents", "payee.account_type", "card.exp_year"}
    assert {r["code"] for r in reasons} == {"SCHEMA_INVALID"}
    assert secret not in json.dumps(rejected)


@pytest.mark.parametrize(
    "name, body, reason",
    [
        ("300 KiB description", bus_body(mutate("data.description", "x" * 300 * KB)), None),
        ("250 KiB email", bus_body(mutate("data.customer.email", "a" * 250 * KB)), None),
        ("250 KiB of CJK in email", bus_body(mutate("data.customer.email", "山" * 80 * KB)), None),
        ("not JSON", "{" + "x" * 255 * KB, "MalformedJson"),
        ("detail is a list", bus_body(["x" * 255 * KB]), "UnknownEvent"),
        (
            "no detail",
            json.dumps({"detail-type": "PaymentRequested", "pad": "x" * 255 * KB}),
            "NotAnEventBridgeEvent",
        ),
    ],
)
def test_oversized_bodies_get_an_answer(harness, name, body, reason):
    good = request_detail()
    response = harness.invoke("ValidateFunction", [body, bus_body(good)])
    assert response == {"batchItemFailures": []}
    published = harness.published()
    parked = harness.parked("Validate")
    answers = {e["detail"]["payment_id"]: e for e in published}
    assert answers[good["payment_id"]]["detail-type"] == "PaymentValidated"
    if reason is None:
        bad = json.loads(body)["detail"]
        assert answers[bad["payment_id"]]["detail-type"] == "PaymentRejected"
        assert codes(answers[bad["payment_id"]])[0] in {"SCHEMA_INVALID", "REQUEST_TOO_LARGE"}
        # Every published event stays far below EventBridge's 256 KiB limit.
        assert all(len(json.dumps(e["detail"])) < 64 * KB for e in published)
        assert parked == []
    else:
        assert [p["error_reason"] for p in parked] == [reason]
        assert parked[0]["body"] == body


def test_a_mixed_batch_processes_the_good_records(harness):
    good = [request_detail() for _ in range(5)]
    bad = ["not json", bus_body(mutate("schema_version", "2.0")), bus_body(mutate("data.amount_cents", -1))]
    bad.append(bus_body(mutate("data.payee.name", "🙂")))
    bad.append(bus_body(mutate("data.card.number", None, delete=True)))
    bodies = [bus_body(good[0]), bad[0], bus_body(good[1]), bad[1], bus_body(good[2]), bad[2]]
    bodies += [bus_body(good[3]), bad[3], bus_body(good[4]), bad[4]]
    assert harness.invoke("ValidateFunction", bodies) == {"batchItemFailures": []}
    answers = {e["detail"]["payment_id"]: e["detail-type"] for e in harness.published()}
    assert all(answers[d["payment_id"]] == "PaymentValidated" for d in good)
    assert sorted(answers.values()).count("PaymentRejected") == 3
    assert sorted(p["error_reason"] for p in harness.parked("Validate")) == ["MalformedJson", "UnknownEvent"]


@pytest.mark.parametrize(
    "function, step, route_type",
    [
        ("TokenizeFunction", "Tokenize", "PaymentValidated"),
        ("FraudFunction", "Fraud", "PaymentTokenized"),
        ("ChargeFunction", "Charge", "PaymentScored"),
        ("EscrowHoldFunction", "EscrowHold", "PaymentCharged"),
        ("ReleaseFunction", "Release", "ServiceCompleted"),
        ("AchBatchFunction", "AchBatch", "FundsReleased"),
    ],
)
def test_every_consumer_parks_what_it_cannot_read(harness, function, step, route_type):
    major = ev.EVENT_TYPES[route_type].MAJOR
    wrong_data = {
        "event_type": route_type,
        "schema_version": f"{major}.0",
        "event_id": "e1",
        "data": {"x": "'; --"},
    }
    bodies = [
        "\x00\x01 not json",
        bus_body(request_detail()),  # a type this step does not consume
        bus_body(wrong_data, route_type),
        bus_body({**wrong_data, "schema_version": "9.0"}, route_type),
    ]
    assert harness.invoke(function, bodies) == {"batchItemFailures": []}
    reasons = [p["error_reason"] for p in harness.parked(step)]
    assert reasons == ["MalformedJson", "NoRoute", "SchemaViolation", "UnknownEvent"]
    assert harness.published() == []


@pytest.mark.parametrize(
    "function, step, route_type",
    [
        ("TokenizeFunction", "Tokenize", "PaymentValidated"),
        ("FraudFunction", "Fraud", "PaymentTokenized"),
        ("ChargeFunction", "Charge", "PaymentScored"),
        ("AchBatchFunction", "AchBatch", "FundsReleased"),
    ],
)
def test_a_retired_v1_event_is_parked_as_retired_and_nothing_acts_on_it(harness, function, step, route_type):
    """v1 of these types carried the payee account number (and PaymentValidated the CVV)."""
    v1 = {"event_type": route_type, "schema_version": "1.4", "event_id": "e1", "payment_id": "p1", "data": {}}
    assert harness.invoke(function, [bus_body(v1, route_type)]) == {"batchItemFailures": []}
    (parked,) = harness.parked(step)
    assert parked["error_reason"] == "UnknownEvent"
    assert "retired (major 2 only)" in parked["error_message"]
    assert harness.published() == []


# -- generated ---------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
HOSTILE_TEXT = st.sampled_from(
    ["'; DROP TABLE x; --", "$(id)", "`id`", '{"a": [1]}', "\x00\x1f\x7f", "😀", "山田", "\u202e", "\\u0000"]
) | st.text(max_size=60)
PATHS = [
    "data.amount_cents", "data.currency", "data.customer", "data.customer.id", "data.customer.email",
    "data.card", "data.card.number", "data.card.exp_month", "data.card.holder_name", "data.payee",
    "data.payee.name", "data.payee.routing_number", "data.payee.account_number", "data.payee.account_type",
    "data.device.ip_address", "data.description", "data.provider_id", "data.tenant_id", "data",
    "schema_version", "occurred_at", "correlation_id", "producer",
]  # fmt: skip


@st.composite
def broken_requests(draw: st.DrawFn) -> dict[str, Any]:
    detail = request_detail()
    for _ in range(draw(st.integers(1, 3))):
        *parents, leaf = draw(st.sampled_from(PATHS)).split(".")
        target: Any = detail
        for part in parents:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()) and leaf in target:
            del target[leaf]
        else:
            target[leaf] = draw(JSON_VALUES | HOSTILE_TEXT)
    return copy.deepcopy(detail)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.lists(broken_requests(), min_size=1, max_size=4))
def test_generated_bad_requests_each_get_exactly_one_answer(harness, bad):
    good = request_detail()
    response = harness.invoke("ValidateFunction", [bus_body(good), *(bus_body(d) for d in bad)])
    assert response == {"batchItemFailures": []}
    answers: dict[str, list[dict[str, Any]]] = {}
    for event in harness.published():
        answers.setdefault(
            event["detail"]["data"].get("request_event_id") or event["detail"]["causation_id"], []
        ).append(event)
    parked = [json.loads(p["body"])["detail"]["event_id"] for p in harness.parked("Validate")]
    assert [e["detail-type"] for e in answers.pop(good["event_id"])] == ["PaymentValidated"]
    known = {reason.value for reason in RejectReason}
    for detail in bad:
        published = answers.get(detail["event_id"], [])
        assert len(published) + parked.count(detail["event_id"]) == 1
        for event in published:
            assert event["detail-type"] in {"PaymentValidated", "PaymentRejected"}
            if event["detail-type"] == "PaymentRejected":
                assert set(codes(event)) <= known
