"""No card number or account number leaves the tokenize step, and no CVV the validate step: not in
events, the archive, logs, DLQs, any stored item or S3 (the stored-data scan, on generated data)."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paypipe.embedded.data_scan import Secrets, pipeline_sources, scan
from paypipe.embedded.runtime import EmbeddedPipeline
from paypipe.embedded.scenario import luhn_complete, payment_requested
from paypipe.events import models as ev

pytestmark = pytest.mark.embedded

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
        running.requests = []
        log_file.touch()
        yield running
    if saved is None:
        os.environ.pop("LOG_FILE", None)
    else:
        os.environ["LOG_FILE"] = saved


counter = iter(range(10**6))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pan=pans(),
    account=st.text(alphabet="0123456789ABCDEFGHJK", min_size=6, max_size=17).filter(
        lambda a: any(c.isdigit() for c in a) and len(set(a)) > 1
    ),
)
def test_no_card_number_cvv_or_account_number_leaves_the_vaults(pipeline, pan, account):
    payment_id = f"leak-{next(counter)}"
    cvv = "4821" if pan.startswith(("34", "37")) else "482"
    request = payment_requested(
        payment_id,
        customer_id=f"c-{payment_id}",
        amount_cents=1234,
        pan=pan,
        cvv=cvv,
        account_number=account,
        occurred_at=pipeline.clock.now(),
        exp=(12, 2031),
    )
    assert pipeline.publish([request]).ok
    pipeline.drain()
    pipeline.requests.append(ev.to_detail(request))

    observed = [e for e in pipeline.observed() if e.payment_id == payment_id]
    assert any(e.event_type in {"PaymentTokenized", "PaymentRejected"} for e in observed)
    leaks = scan(pipeline_sources(pipeline, pipeline.log_file.read_text()), Secrets.of(pipeline.requests))
    assert leaks == []
