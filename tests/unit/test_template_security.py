"""Security properties of the deployed stack, checked on the SAM-expanded template.

checkov and cfn-lint see the SAM template before expansion, so the roles SAM generates (and the
policy templates it expands) are checked here.
"""

import copy
import importlib
from pathlib import PurePosixPath
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from paypipe.embedded.template import load_template


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def sam_template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def expanded(sam_template: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(sam_template)
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in properties:
                properties[key] = "s3://bucket/key.zip"
    result: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return result


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(expanded: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, role in resources(expanded, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found.extend((name, statement) for statement in policy["PolicyDocument"]["Statement"])
    for name, policy in resources(expanded, "AWS::IAM::ManagedPolicy").items():
        found.extend((name, s) for s in policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_role_policies_name_every_action(expanded):
    wildcards = [
        (role, action)
        for role, statement in role_statements(expanded)
        for action in as_list(statement["Action"])
        if "*" in action
    ]
    assert wildcards == []


def test_resource_policies_allow_no_wildcard_action(expanded):
    """Wildcards appear only in Deny statements and the key policies' account-admin statement."""
    documents = [
        (name, r["Properties"]["PolicyDocument"])
        for kind in ("AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy")
        for name, r in resources(expanded, kind).items()
    ] + [(name, r["Properties"]["KeyPolicy"]) for name, r in resources(expanded, "AWS::KMS::Key").items()]
    offending = [
        (name, statement.get("Sid"))
        for name, document in documents
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
        and any("*" in action for action in as_list(statement["Action"]))
        and statement.get("Sid") != "AccountAdministers"
    ]
    assert offending == []


def test_each_function_puts_only_events_of_its_own_source(sam_template, expanded):
    functions = resources(sam_template, "AWS::Serverless::Function")
    publishers = 0
    for name, function in functions.items():
        step_dir = PurePosixPath(function["Properties"]["CodeUri"]).name
        step = importlib.import_module(f"paypipe.steps.{step_dir}").STEP
        put_events = [
            statement
            for role, statement in role_statements(expanded)
            if role == f"{name}Role" and "events:PutEvents" in as_list(statement["Action"])
        ]
        for statement in put_events:
            assert statement["Condition"] == {"StringEquals": {"events:source": f"paypipe.{step}"}}, name
            assert statement["Resource"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
        publishers += bool(put_events)
    assert publishers == 8  # every function but detokenize publishes


def test_queue_policies_admit_only_their_rules(expanded):
    for name, policy in resources(expanded, "AWS::SQS::QueuePolicy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                assert statement["Principal"] == {"Service": "events.amazonaws.com"}, name
                assert statement["Condition"]["ArnEquals"]["aws:SourceArn"], name


def test_everything_is_encrypted_at_rest(expanded):
    for name, queue in resources(expanded, "AWS::SQS::Queue").items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId"), name
    for name, table in resources(expanded, "AWS::DynamoDB::Table").items():
        sse = table["Properties"]["SSESpecification"]
        assert sse["SSEEnabled"] and sse["SSEType"] == "KMS", name
    for name, bucket in resources(expanded, "AWS::S3::Bucket").items():
        assert bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
    for name, topic in resources(expanded, "AWS::SNS::Topic").items():
        assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "StorageKey"}, name


def test_every_function_logs_to_an_encrypted_group_with_retention(expanded):
    groups = {
        group["Properties"]["LogGroupName"]["Fn::Sub"]: group["Properties"]
        for group in resources(expanded, "AWS::Logs::LogGroup").values()
    }
    for name in resources(expanded, "AWS::Lambda::Function"):
        group = groups[f"/aws/lambda/${{{name}}}"]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group["KmsKeyId"] == {"Fn::GetAtt": ["StorageKey", "Arn"]}


def test_async_invocations_have_dead_letter_queues(expanded):
    functions = resources(expanded, "AWS::Lambda::Function")
    scheduled = {
        target["Arn"]["Fn::GetAtt"][0]: target
        for rule in resources(expanded, "AWS::Events::Rule").values()
        if "ScheduleExpression" in rule["Properties"]
        for target in rule["Properties"]["Targets"]
    }
    assert set(scheduled) == {"ReleaseSweepFunction", "AchCutFunction"}
    for name, target in scheduled.items():
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduledDLQ", "Arn"]}}
        assert functions[name]["Properties"]["DeadLetterConfig"] == {
            "TargetArn": {"Fn::GetAtt": ["ScheduledDLQ", "Arn"]}
        }
        assert functions[name]["Properties"]["ReservedConcurrentExecutions"] == 1


def pattern_branches(pattern: dict[str, Any]) -> list[dict[str, Any]]:
    """An event pattern as the alternatives it matches ($or expanded)."""
    if "$or" in pattern:
        rest = {key: value for key, value in pattern.items() if key != "$or"}
        return [
            branch for alternative in pattern["$or"] for branch in pattern_branches({**rest, **alternative})
        ]
    return [pattern]


def test_every_rule_routes_each_event_type_only_from_the_sources_its_contract_allows(expanded):
    from paypipe.events import models as ev

    checked = 0
    for name, rule in resources(expanded, "AWS::Events::Rule").items():
        pattern = rule["Properties"].get("EventPattern")
        if pattern is None:
            continue  # a schedule
        for branch in pattern_branches(pattern):
            assert branch.get("source") and branch.get("detail-type"), (name, branch)
            for detail_type in branch["detail-type"]:
                allowed = {ev.source_of(producer) for producer in ev.EVENT_TYPES[detail_type].PRODUCERS}
                assert set(branch["source"]) <= allowed, (name, detail_type, branch["source"])
                checked += 1
    assert checked >= 9  # every consumed type of the six consumers


def test_client_publishers_may_put_only_client_events_as_the_client(expanded):
    from paypipe.events import models as ev

    policy = resources(expanded, "AWS::IAM::ManagedPolicy")["ClientPublisherPolicy"]["Properties"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "events:PutEvents")
    assert statement["Resource"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    condition = statement["Condition"]["StringEquals"]
    assert condition["events:source"] == ev.CLIENT_SOURCE
    assert sorted(condition["events:detail-type"]) == sorted(ev.CLIENT_EVENT_TYPES)
    assert expanded["Outputs"]["ClientPublisherPolicyArn"]["Value"] == {"Ref": "ClientPublisherPolicy"}
