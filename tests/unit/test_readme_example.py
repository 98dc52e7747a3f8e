"""The README's `aws events put-events` example publishes a request validate accepts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from paypipe.domain import validation
from paypipe.embedded.template import load_template
from paypipe.events import models as ev
from paypipe.steps.validate import facts_of, tenants_setting

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```sh\n(NOW=.*?aws events put-events.*?)```", text, re.DOTALL)
    assert match, "README has no put-events example"
    return match.group(1)


def detail(now: datetime) -> dict[str, Any]:
    """The example's detail as the shell would expand it at ``now``."""
    heredoc = re.search(r"<<JSON\n(.*?)\nJSON\n", example(), re.DOTALL)
    assert heredoc
    expanded = heredoc.group(1).replace("$NOW", f"{now:%Y-%m-%dT%H:%M:%SZ}")
    return dict(json.loads(expanded.replace("$PAYMENT", f"pay-{now:%Y%m%d%H%M%S}")))


def defaults() -> dict[str, str]:
    parameters = load_template()["Parameters"]
    return {name: str(spec.get("Default", "")) for name, spec in parameters.items()}


def test_the_entry_is_one_a_client_may_publish_on_the_dev_bus() -> None:
    entry = re.search(
        r"EventBusName: \"([^\"]+)\",\s+Source: \"([^\"]+)\", DetailType: \"([^\"]+)\"", example()
    )
    assert entry
    bus, source, detail_type = entry.groups()
    assert bus == f"paypipe-{defaults()['Stage']}"
    assert source == ev.CLIENT_SOURCE
    assert detail_type == "PaymentRequested"
    assert detail_type in ev.CLIENT_EVENT_TYPES


def test_validate_accepts_the_request_with_the_template_defaults() -> None:
    now = datetime.now(UTC)
    request = ev.parse_detail("PaymentRequested", detail(now))
    assert isinstance(request, ev.PaymentRequested)
    assert request.producer == ev.CLIENT_PRODUCER
    assert request.occurred_at == now.replace(microsecond=0)
    settings = defaults()
    rejections = validation.validate_payment(
        facts_of(request),
        today=now.date(),
        max_amount_cents=int(settings["MaxAmountCents"]),
        supported_currencies=frozenset(settings["SupportedCurrencies"].split(",")),
        allowed_tenants=tenants_setting(settings["AllowedTenants"]),
        odfi_routing=settings["AchOdfiRouting"],
    )
    assert rejections == []
