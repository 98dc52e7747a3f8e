"""Read the SAM template and create its resources in an AWS-compatible endpoint (moto).

The embedded pipeline is provisioned from ``infra/sam/template.yaml`` itself, so what runs locally
is what deploys. Resource types that matter for message flow and state are created; IAM,
alarms, policies, layers and archives have no local effect and are only given placeholder ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = REPO_ROOT / "infra" / "sam" / "template.yaml"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template uses something the embedded provisioner cannot resolve."""


@dataclass(frozen=True)
class SqsSource:
    queue_arn: str
    batch_size: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    sqs_sources: tuple[SqsSource, ...]
    schedules: tuple[str, ...]
    timeout_seconds: int


@dataclass
class Stack:
    name: str
    parameters: dict[str, str]
    physical: dict[str, dict[str, str]] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def ref(self, logical_id: str) -> str:
        return self.physical[logical_id]["Ref"]

    def queue_url_for_arn(self, arn: str) -> str:
        for ids in self.physical.values():
            if ids.get("Arn") == arn and "QueueName" in ids:
                return ids["Ref"]
        raise KeyError(arn)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Every parameter's value: the override, checked as CloudFormation would, or the default."""
    declared = template.get("Parameters", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameters {unknown} (see Parameters in infra/sam/template.yaml)")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = str(overrides[name])
            problem = parameter_problem(spec, values[name])
            if problem is not None:
                raise TemplateError(f"parameter {name}: {problem}")
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no default; pass it as an override")
    return values


def parameter_problem(spec: Mapping[str, Any], value: str) -> str | None:
    """Why CloudFormation would refuse ``value`` for a parameter declared as ``spec`` (None: it takes it)."""
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return f"{value!r} is not one of {spec['AllowedValues']}"
    if "AllowedPattern" in spec and re.fullmatch(str(spec["AllowedPattern"]), value) is None:
        return f"{value!r} does not match {spec['AllowedPattern']}"
    if spec.get("Type") != "Number":
        return None
    try:
        number = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    if "MinValue" in spec and number < float(spec["MinValue"]):
        return f"{value} is below the minimum {spec['MinValue']}"
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        return f"{value} is above the maximum {spec['MaxValue']}"
    return None


class Resolver:
    """Evaluates the intrinsic functions the template uses against created resources."""

    def __init__(self, template: Mapping[str, Any], stack: Stack) -> None:
        self._conditions = template.get("Conditions", {})
        self._stack = stack
        self._pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": stack.name,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._attribute(logical, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(item) for item in self.resolve(items))
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if key.startswith("Fn::"):
                raise TemplateError(f"intrinsic {key} is not supported by the embedded provisioner")
        return {key: self.resolve(item) for key, item in value.items()}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self._conditions[name]))

    def _ref(self, name: str) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._stack.parameters:
            return self._stack.parameters[name]
        if name in self._stack.physical:
            return self._stack.physical[name]["Ref"]
        raise _Unresolved(name)

    def _attribute(self, logical: str, attribute: str) -> str:
        ids = self._stack.physical.get(logical)
        if ids is None:
            raise _Unresolved(logical)
        if attribute not in ids:
            raise TemplateError(f"{logical} has no attribute {attribute} in the embedded provisioner")
        return ids[attribute]

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in variables:
                return str(variables[token])
            if "." in token:
                logical, attribute = token.split(".", 1)
                return self._attribute(logical, attribute)
            return self._ref(token)

        return _SUB_VARIABLE.sub(replace, text)


class _Unresolved(Exception):
    """A reference to a resource not created yet; the provisioner retries in a later pass."""


class Provisioner:
    def __init__(self, session: Any, template: Mapping[str, Any], stack: Stack, template_dir: Path) -> None:
        self._session = session
        self._template = template
        self._stack = stack
        self._template_dir = template_dir
        self._resolver = Resolver(template, stack)
        self._globals = template.get("Globals", {}).get("Function", {})

    def provision(self) -> Stack:
        pending = dict(self._template.get("Resources", {}))
        while pending:
            progressed = False
            for logical_id, resource in list(pending.items()):
                try:
                    self._create(logical_id, resource)
                except _Unresolved:
                    continue
                del pending[logical_id]
                progressed = True
            if not progressed:
                raise TemplateError(f"unresolvable references among {sorted(pending)}")
        for name, output in self._template.get("Outputs", {}).items():
            self._stack.outputs[name] = str(self._resolver.resolve(output["Value"]))
        return self._stack

    def _create(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        kind = resource["Type"]
        props = self._resolver.resolve(resource.get("Properties", {}))
        creator = getattr(self, "_" + kind.replace("::", "_").lower(), None)
        ids = creator(logical_id, props) if creator else {"Ref": f"{self._stack.name}-{logical_id}"}
        ids.setdefault("Arn", f"arn:aws:embedded:{REGION}:{ACCOUNT_ID}:{logical_id}")
        self._stack.physical[logical_id] = ids

    def _name(self, logical_id: str) -> str:
        return f"{self._stack.name}-{logical_id}"

    def _aws_events_eventbus(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        arn = self._session.client("events").create_event_bus(Name=props["Name"])["EventBusArn"]
        return {"Ref": props["Name"], "Arn": arn, "Name": props["Name"]}

    def _aws_events_archive(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        """A moto archive: it keeps what its event pattern admits, as EventBridge's would."""
        name = self._name(logical_id)[:48]
        pattern = props.get("EventPattern")
        arn = self._session.client("events").create_archive(
            ArchiveName=name,
            EventSourceArn=props["SourceArn"],
            **({"EventPattern": json.dumps(pattern)} if pattern is not None else {}),
            RetentionDays=int(props.get("RetentionDays", 0)),
        )["ArchiveArn"]
        return {"Ref": name, "Arn": arn, "ArchiveName": name}

    def _aws_sqs_queue(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        sqs = self._session.client("sqs")
        attributes: dict[str, str] = {
            key: str(props[key])
            for key in (
                "VisibilityTimeout",
                "MessageRetentionPeriod",
                "DelaySeconds",
                "ReceiveMessageWaitTimeSeconds",
            )
            if key in props
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        name = self._name(logical_id)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        tags = {tag["Key"]: tag["Value"] for tag in props.get("Tags", [])}
        if tags:
            sqs.tag_queue(QueueUrl=url, Tags=tags)
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _aws_events_rule(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        name = self._name(logical_id)
        if "EventPattern" not in props:
            return {"Ref": name}
        events = self._session.client("events")
        bus = props.get("EventBusName", "default")
        arn = events.put_rule(
            Name=name, EventBusName=bus, EventPattern=json.dumps(props["EventPattern"]), State=props["State"]
        )["RuleArn"]
        targets = [
            {
                key: target[key]
                for key in ("Id", "Arn", "DeadLetterConfig", "RetryPolicy", "Input", "InputTransformer")
                if key in target
            }
            for target in props.get("Targets", [])
        ]
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        return {"Ref": name, "Arn": arn}

    def _aws_dynamodb_table(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        dynamodb = self._session.client("dynamodb")
        name = self._name(logical_id)
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if "GlobalSecondaryIndexes" in props:
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        arn = dynamodb.create_table(**request)["TableDescription"]["TableArn"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        return {"Ref": name, "Arn": arn}

    def _aws_kms_key(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        metadata = self._session.client("kms").create_key(Description=props.get("Description", logical_id))
        return {"Ref": metadata["KeyMetadata"]["KeyId"], "Arn": metadata["KeyMetadata"]["Arn"]}

    def _aws_s3_bucket(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        s3 = self._session.client("s3")
        name = self._name(logical_id).lower()
        s3.create_bucket(Bucket=name)
        if props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        if props.get("BucketEncryption"):
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        notifications = props.get("NotificationConfiguration", {})
        if notifications.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        return {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}

    def _aws_serverless_function(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        environment = {
            key: str(value)
            for key, value in {
                **self._resolver.resolve(self._globals.get("Environment", {}).get("Variables", {})),
                **props.get("Environment", {}).get("Variables", {}),
            }.items()
        }
        sqs_sources: list[SqsSource] = []
        schedules: list[str] = []
        for event in props.get("Events", {}).values():
            event_props = event.get("Properties", {})
            if event["Type"] == "SQS":
                sqs_sources.append(
                    SqsSource(
                        queue_arn=event_props["Queue"],
                        batch_size=int(event_props.get("BatchSize", 10)),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in event_props.get("FunctionResponseTypes", []),
                    )
                )
            elif event["Type"] in {"Schedule", "ScheduleV2"}:
                schedules.append(str(event_props.get("Schedule") or event_props.get("ScheduleExpression")))
        name = self._name(logical_id)
        self._stack.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_dir=(self._template_dir / props["CodeUri"]).resolve(),
            handler=props["Handler"],
            environment={"AWS_LAMBDA_FUNCTION_NAME": name, **environment},
            sqs_sources=tuple(sqs_sources),
            schedules=tuple(schedules),
            timeout_seconds=int(
                props.get("Timeout") or self._resolver.resolve(self._globals.get("Timeout", 3))
            ),
        )
        return {"Ref": name, "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"}


def provision_stack(
    session: Any,
    *,
    stack_name: str = "paypipe-embedded",
    overrides: Mapping[str, str] | None = None,
    template_path: Path = TEMPLATE_PATH,
) -> Stack:
    template = load_template(template_path)
    stack = Stack(name=stack_name, parameters=parameter_values(template, overrides or {}))
    return Provisioner(session, template, stack, template_path.parent).provision()
