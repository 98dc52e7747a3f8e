"""Security properties of the deployed stack, checked on the SAM-expanded template.

checkov and cfn-lint see the SAM template before expansion, so the roles SAM generates (and the
policy templates it expands) are checked here.
"""

import copy
import importlib
import json
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
    # Every function but detokenize, the projector, the acquirer's report and the card book.
    assert publishers == 14


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
    assert set(scheduled) == {
        "ReleaseSweepFunction",
        "ReviewSweepFunction",
        "AchCutFunction",
        "AcquirerReportFunction",
        "ProcessorFeedFunction",
        "SettlementMatchFunction",
    }
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
    from paypipe.stack.generate import logical
    from paypipe.stack.steps import FUNCTIONS

    observers = tuple(logical(f.name) for f in FUNCTIONS if f.observes)
    checked = 0
    for name, rule in resources(expanded, "AWS::Events::Rule").items():
        pattern = rule["Properties"].get("EventPattern")
        if pattern is None:
            continue  # a schedule
        for branch in pattern_branches(pattern):
            assert branch.get("source") and branch.get("detail-type"), (name, branch)
            if name.startswith(observers):  # a read model: every source, trusted for nothing
                assert branch["source"] == [{"prefix": "paypipe."}], name
                continue
            if branch["source"] == ["aws.s3"]:  # S3 itself, on the default bus (returns consumer)
                assert "EventBusName" not in rule["Properties"] and branch["detail-type"] == [
                    "Object Created"
                ]
                continue
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


def test_operator_publishers_may_put_only_review_decisions_as_the_operator(expanded):
    from paypipe.events import models as ev

    policy = resources(expanded, "AWS::IAM::ManagedPolicy")["OperatorPublisherPolicy"]["Properties"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "events:PutEvents")
    assert statement["Resource"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    condition = statement["Condition"]["StringEquals"]
    assert condition == {"events:source": "paypipe.operator", "events:detail-type": ["ReviewDecided"]}
    assert {"ReviewDecided"} == ev.OPERATOR_EVENT_TYPES
    assert expanded["Outputs"]["OperatorPublisherPolicyArn"]["Value"] == {"Ref": "OperatorPublisherPolicy"}


def test_the_fraud_rule_takes_review_decisions_only_from_the_operator_source(expanded):
    rule = resources(expanded, "AWS::Events::Rule")["FraudRule"]["Properties"]["EventPattern"]
    branches = rule["$or"]
    decided = [b for b in branches if "ReviewDecided" in b["detail-type"]]
    assert decided == [{"source": ["paypipe.operator"], "detail-type": ["ReviewDecided"]}]


# -- data at rest --------------------------------------------------------------------------------


def archive_matches(pattern: dict[str, Any], detail_type: str, source: str) -> bool:
    from moto.events.models import EventPattern

    event = {"source": source, "detail-type": detail_type, "detail": {}}
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))


def test_the_archive_keeps_no_cardholder_data_type_nor_a_clients_event_under_an_internal_type(expanded):
    from paypipe.events import models as ev

    (archive,) = resources(expanded, "AWS::Events::Archive").values()
    pattern = archive["Properties"]["EventPattern"]
    internal = sorted(
        {p for model in ev.EVENT_TYPES.values() for p in model.PRODUCERS} - {ev.CLIENT_PRODUCER}
    )
    sources = [ev.source_of(producer) for producer in [*internal, ev.CLIENT_PRODUCER]] + ["elsewhere"]
    for detail_type, model in ev.EVENT_TYPES.items():
        for source in sources:
            expected = (
                not model.CARDHOLDER_DATA
                and source.startswith(f"{ev.EVENT_SOURCE_PREFIX}.")
                and (source != ev.CLIENT_SOURCE or detail_type in ev.CLIENT_EVENT_TYPES)
            )
            assert archive_matches(pattern, detail_type, source) is expected, (detail_type, source)
    assert {
        "PaymentRequested",
        "PaymentValidated",
        "PayeeAccountUpdated",  # a payee account number, in clear, until tokenize vaults it
        "PayeeAccountValidated",
    } == ev.CARDHOLDER_DATA_EVENT_TYPES


def test_the_bus_and_its_archive_are_encrypted_with_the_storage_key_for_this_bus_only(expanded):
    key_arn = {"Fn::GetAtt": ["StorageKey", "Arn"]}
    (bus,) = resources(expanded, "AWS::Events::EventBus").values()
    (archive,) = resources(expanded, "AWS::Events::Archive").values()
    assert bus["Properties"]["KmsKeyIdentifier"] == key_arn
    assert archive["Properties"]["KmsKeyIdentifier"] == key_arn
    assert archive["Properties"]["SourceArn"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    policy = resources(expanded, "AWS::KMS::Key")["StorageKey"]["Properties"]["KeyPolicy"]
    by_events = [s for s in policy["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert {action for s in by_events for action in as_list(s["Action"])} == {
        "kms:DescribeKey",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
    }
    bus_arn = {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/"
        + bus["Properties"]["Name"]["Fn::Sub"]
    }
    for statement in by_events:
        if as_list(statement["Action"]) != ["kms:DescribeKey"]:
            condition = statement["Condition"]["StringEquals"]
            assert condition["kms:EncryptionContext:aws:events:event-bus:arn"] == bus_arn
            assert condition["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def vault_decrypt_statements(expanded: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for role, statement in role_statements(expanded):
        if "kms:Decrypt" in as_list(statement["Action"]) and {"Fn::GetAtt": ["VaultKey", "Arn"]} in as_list(
            statement["Resource"]
        ):
            found.setdefault(role, []).append(statement)
    return found


def test_only_tokenize_charge_detokenize_the_ach_cut_and_returns_decrypt_with_the_vault_key_each_for_its_purpose(  # noqa: E501
    expanded,
):
    from paypipe.adapters.account_vault import ACCOUNT_FINGERPRINT_PURPOSE, ACCOUNT_PURPOSE
    from paypipe.adapters.vault import CARD_VAULT_PURPOSE, FINGERPRINT_KEY_PURPOSE

    decrypting = vault_decrypt_statements(expanded)
    assert set(decrypting) == {
        "TokenizeFunctionRole",
        "ChargeFunctionRole",
        "DetokenizeFunctionRole",
        "AchCutFunctionRole",
        "AchReturnsFunctionRole",
    }

    def purposes(role: str) -> set[str]:
        (statement,) = decrypting[role]
        return set(as_list(statement["Condition"]["StringEquals"]["kms:EncryptionContext:purpose"]))

    assert purposes("DetokenizeFunctionRole") == {CARD_VAULT_PURPOSE}
    assert purposes("ChargeFunctionRole") == {CARD_VAULT_PURPOSE}  # cards only, never accounts
    assert purposes("AchCutFunctionRole") == {ACCOUNT_PURPOSE}
    # A notification of change's corrected account is vaulted: account purposes, never card ones.
    assert purposes("AchReturnsFunctionRole") == {ACCOUNT_PURPOSE, ACCOUNT_FINGERPRINT_PURPOSE}
    assert purposes("TokenizeFunctionRole") == {
        CARD_VAULT_PURPOSE,
        FINGERPRINT_KEY_PURPOSE,
        ACCOUNT_PURPOSE,
        ACCOUNT_FINGERPRINT_PURPOSE,
    }
    key_policy = resources(expanded, "AWS::KMS::Key")["VaultKey"]["Properties"]["KeyPolicy"]
    assert [s["Sid"] for s in key_policy["Statement"]] == ["AccountAdministers"]  # IAM decides the rest


def test_the_queues_that_can_hold_cardholder_data_keep_it_only_as_long_as_redelivery_needs(sam_template):
    from paypipe.events import models as ev

    template_resources = sam_template["Resources"]
    holding: set[str] = set()
    for rule in resources(sam_template, "AWS::Events::Rule").values():
        pattern = rule["Properties"].get("EventPattern") or {}
        types = {t for branch in pattern_branches(pattern) for t in branch.get("detail-type", [])}
        if types & ev.CARDHOLDER_DATA_EVENT_TYPES:
            for target in rule["Properties"]["Targets"]:
                # EventBridge dead-letters the event as it was, before any input transformer.
                holding.add(target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
                if "InputTransformer" in target:
                    continue  # the queue gets the transformer's output (card-free: test_template_source)
                queue = target["Arn"]["Fn::GetAtt"][0]
                redrive = template_resources[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
                holding |= {queue, redrive["Fn::GetAtt"][0]}
    assert holding == {
        f"{step}{kind}" for step in ("Validate", "Tokenize") for kind in ("Queue", "DLQ", "RuleDLQ")
    } | {"ProjectorRuleDLQ"}
    retention = {"Ref": "CardDataRetentionSeconds"}
    for name, queue in resources(sam_template, "AWS::SQS::Queue").items():
        assert (queue["Properties"]["MessageRetentionPeriod"] == retention) is (name in holding), name
    parameter = sam_template["Parameters"]["CardDataRetentionSeconds"]
    assert parameter["Default"] <= 86_400 and parameter["MaxValue"] <= 4 * 86_400
    ages = {
        alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in resources(sam_template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
        and alarm["Properties"]["Threshold"] == 3600  # every queue's QueueAgeAlarmSeconds alarm aside
    }
    assert ages == {"ValidateQueue", "TokenizeQueue"}  # the queues SQS drops from, unparked
