import json
import subprocess
import sys
from typing import Any

from paypipe.domain.timeline import KEY_FACTS, SENSITIVE_FIELDS
from paypipe.embedded.runtime import EMBEDDED_PARAMETERS
from paypipe.embedded.template import REPO_ROOT, TEMPLATE_PATH, load_template, parameter_values
from paypipe.events import models as ev
from paypipe.stack.generate import SHARED_PATH, event_pattern, logical, template_text
from paypipe.stack.steps import FUNCTIONS


def test_the_committed_template_is_what_its_sources_generate():
    assert TEMPLATE_PATH.read_text() == template_text(SHARED_PATH.read_text()), "run scripts/gen_template.py"


def test_check_mode_fails_on_drift_and_leaves_the_file_alone(tmp_path):
    script = REPO_ROOT / "scripts" / "gen_template.py"
    copy = tmp_path / "template.yaml"

    def check() -> int:
        return subprocess.run([sys.executable, script, "--check", "--template", copy], check=False).returncode

    copy.write_text(TEMPLATE_PATH.read_text())
    assert check() == 0
    drifted = copy.read_text().replace("paypipe release step", "paypipe release stage")
    copy.write_text(drifted)
    assert check() == 1
    assert copy.read_text() == drifted
    assert subprocess.run([sys.executable, script, "--template", copy], check=False).returncode == 0
    assert check() == 0


def test_every_table_entry_is_one_function_and_every_step_one_rule():
    resources = load_template()["Resources"]
    functions = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    rules = {name for name, r in resources.items() if r["Type"] == "AWS::Events::Rule"}
    stems = [logical(f.name) for f in FUNCTIONS]
    assert functions == {f"{stem}Function" for stem in stems}
    card_free = {f"Projector{name}Rule" for name in ev.CARDHOLDER_DATA_EVENT_TYPES}
    assert rules == {f"{stem}Rule" for stem, f in zip(stems, FUNCTIONS, strict=True) if f.queued} | card_free


def _getatt(value: dict[str, Any]) -> str:
    target = value["Fn::GetAtt"]
    return ".".join(target) if isinstance(target, list) else str(target)


def test_the_projector_gets_every_type_from_any_source_and_card_bearing_ones_only_as_their_key_facts():
    resources = load_template()["Resources"]
    anyone = [{"prefix": "paypipe."}]
    plain = resources["ProjectorRule"]["Properties"]
    assert plain["EventPattern"] == {
        "source": anyone,
        "detail-type": [t for t in ev.EVENT_TYPES if t not in ev.CARDHOLDER_DATA_EVENT_TYPES],
    }
    assert "InputTransformer" not in plain["Targets"][0]
    arns = resources["ProjectorQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]
    allowed = {_getatt(arn) for arn in arns["ArnEquals"]["aws:SourceArn"]}
    for name in ev.CARDHOLDER_DATA_EVENT_TYPES:
        rule = resources[f"Projector{name}Rule"]["Properties"]
        assert rule["EventPattern"] == {"source": anyone, "detail-type": [name]}
        (target,) = rule["Targets"]
        assert _getatt(target["Arn"]) == "ProjectorQueue.Arn"
        transformer = target["InputTransformer"]
        data_paths = {v for v in transformer["InputPathsMap"].values() if v.startswith("$.detail.data.")}
        assert data_paths == {f"$.detail.data.{p.rpartition('=')[2]}" for p in KEY_FACTS[name].paths}
        assert not any(f".{field}" in path for path in data_paths for field in SENSITIVE_FIELDS)
        template = json.loads(transformer["InputTemplate"])
        assert set(template) == {"source", "detail-type", "detail"}
        assert "card" not in template["detail"]["data"] and "payee" not in template["detail"]["data"]
        assert f"Projector{name}Rule.Arn" in allowed
    function = resources["ProjectorFunction"]["Properties"]
    statements = [s for policy in function["Policies"] for s in policy.get("Statement", [])]
    assert not [s for s in statements if s.get("Action") == "events:PutEvents"]  # it publishes nothing


def test_an_object_consumer_rule_takes_only_s3_notifications_of_its_bucket_and_prefix_from_the_default_bus():
    resources = load_template()["Resources"]
    rule = resources["AchReturnsRule"]["Properties"]
    assert "EventBusName" not in rule  # the account's default bus, where S3 sends notifications
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [{"Ref": "AchBucket"}]}, "object": {"key": [{"prefix": "inbound/"}]}},
    }
    notifications = resources["AchBucket"]["Properties"]["NotificationConfiguration"]
    assert notifications == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    statements = [
        statement
        for policy in resources["AchReturnsFunction"]["Properties"]["Policies"]
        for statement in policy.get("Statement", [])
    ]
    reads = [s for s in statements if s.get("Action") == "s3:GetObject"]
    assert [s["Resource"] for s in reads] == [{"Fn::Sub": "${AchBucket.Arn}/inbound/*"}]


def test_a_type_from_several_sources_gets_one_branch_per_source_set():
    pattern = event_pattern(("ServiceCompleted", "HoldExpiryDue", "DisputeOpened"))
    assert pattern == {
        "$or": [
            {"source": [ev.CLIENT_SOURCE], "detail-type": ["ServiceCompleted"]},
            {"source": ["paypipe.release"], "detail-type": ["HoldExpiryDue"]},
            {"source": [ev.CLIENT_SOURCE, "paypipe.processor"], "detail-type": ["DisputeOpened"]},
        ]
    }
    shared = event_pattern(("RequestRefused",), {"data": {"code": ["X"]}})
    assert shared == {
        "source": ["paypipe.release", "paypipe.validate"],
        "detail-type": ["RequestRefused"],
        "detail": {"data": {"code": ["X"]}},
    }


def test_prenotes_are_on_in_the_template_off_in_the_embedded_stack_and_reach_the_cut():
    template = load_template()
    declared = template["Parameters"]["AchPrenote"]
    assert (declared["Default"], declared["AllowedValues"]) == ("on", ["on", "off"])
    assert parameter_values(template, EMBEDDED_PARAMETERS)["AchPrenote"] == "off"
    cut = template["Resources"]["AchCutFunction"]["Properties"]["Environment"]["Variables"]
    assert cut["ACH_PRENOTE"] == {"Ref": "AchPrenote"}
