"""No card number leaves the tokenize step: not in events, logs, DLQs or any stored item."""

import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import luhn_complete, payment_requested

pytestmark = pytest.mark.embedded

PAN_CARRIERS = {"PaymentRequested", "PaymentValidated"}
BRAND_PREFIXES = ["4", "51", "55", "2221", "2720", "34", "37", "6011", "65", "3528", "62", "36"]


@st.composite
def pans(draw):
    prefix = draw(st.sampled_from(BRAND_PREFIXES))
    length = 15 if prefix in {"34", "37"} else 14 if prefix == "36" else draw(st.sampled_from([16, 19]))
    body = draw(
        st.text(alphabet="0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)
    )
    return luhn_complete(prefix + body)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    log_file = tmp_path_factory.mktemp("logs") / "steps.jsonl"
    saved = os.environ.get("LOG_FILE")
    os.environ["LOG_FILE"] = str(log_file)
    with EmbeddedPipeline() as running:
        running.log_file = log_file
        yield running
    if saved is None:
        os.environ.pop("LOG_FILE", None)
    else:
        os.environ["LOG_FILE"] = saved


def digits_only(text: str) -> str:
    return re.sub(r"[\s-]", "", text)


def leaks(pan: str, text: str) -> bool:
    return pan in text or pan in digits_only(text)


def all_table_items(pipeline):
    dynamodb = pipeline.session.client("dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                yield table, json.dumps(item, default=str)


counter = iter(range(10**6))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pan=pans(), holder=st.text(min_size=1, max_size=30).filter(str.strip))
def test_pan_never_leaves_tokenize(pipeline, pan, holder):
    payment_id = f"leak-{next(counter)}"
    request = payment_requested(
        payment_id,
        customer_id=f"c-{payment_id}",
        amount_cents=1234,
        pan=pan,
        occurred_at=pipeline.clock.now(),
        exp=(12, 2031),
    )
    assert pipeline.publish([request]).ok
    pipeline.drain()

    observed = [e for e in pipeline.observed() if e.payment_id == payment_id]
    assert any(e.event_type in {"PaymentTokenized", "PaymentRejected"} for e in observed)
    for event in observed:
        if event.event_type not in PAN_CARRIERS:
            assert not leaks(pan, event.model_dump_json()), event.event_type
    assert not leaks(pan, pipeline.log_file.read_text())
    for table, item in all_table_items(pipeline):
        assert not leaks(pan, item), f"PAN stored in {table}"
    sqs = pipeline.session.client("sqs")
    for url in (u for name, u in pipeline.stack.outputs.items() if name.endswith("DLQUrl")):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            assert not leaks(pan, message["Body"])
