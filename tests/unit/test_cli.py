"""``paypipe``'s error boundary: every expected failure is one line on stderr with its exit status,
nothing moved and nothing audited; arguments are checked before any AWS call."""

import json
import subprocess
import sys

import boto3
import pytest
from botocore.stub import Stubber

from paypipe import cli, cost
from paypipe.errors import EXIT_ENVIRONMENT, EXIT_INTERNAL, EXIT_USAGE
from paypipe.ops import dlq_cli
from paypipe.runtime.aws import CLIENT_CONFIG

CLOSED_PORT = "http://127.0.0.1:9"
STACK = "paypipe-clitest"


def failure(capsys, argv):
    """Exit status and the one stderr line of ``paypipe argv``."""
    code = cli.main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return code, lines[0]


def usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return exited.value.code, err


@pytest.fixture
def no_aws_files(monkeypatch, tmp_path):
    """No profile, config or credentials file, no instance metadata: only what a test sets."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def no_session(monkeypatch):
    """Fails the test's command (exit 4) if it builds an AWS session at all."""

    def refused(*args, **kwargs):
        raise RuntimeError("an AWS session was built")

    monkeypatch.setattr(boto3.session, "Session", refused)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cost", "--volume", "0"], "argument --volume: must be at least 1, got 0"),
        (["cost", "--volume", "-5"], "argument --volume: must be at least 1, got -5"),
        (["cost", "--volume", "many"], "argument --volume: 'many' is not a whole number"),
        (["cost", "--volume", "10", "--avg-amount", "0"], "argument --avg-amount: must be a positive number"),
        (
            ["cost", "--volume", "10", "--avg-amount", "nan"],
            "argument --avg-amount: must be a positive number",
        ),
        (["run", "--payments", "-3"], "argument --payments: must be at least 1, got -3"),
        (["dlq", "show", "FraudDLQ", "--stack", STACK, "--limit", "0"], "argument --limit"),
        (["dlq", "show", "FraudDLQ", "--stack", STACK, "--visibility", "-1"], "argument --visibility"),
        (["dlq", "replay", "FraudDLQ", "--stack", STACK, "--max", "0"], "argument --max"),
        (["dlq", "replay", "FraudDLQ", "--stack", STACK, "--rate", "-2"], "argument --rate"),
        (["dlq", "replay", "FraudDLQ", "--stack", STACK, "--max-replays", "0"], "argument --max-replays"),
        (["dlq", "list"], "the following arguments are required: --stack"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(capsys, no_session, argv, message):
    code, err = usage_error(capsys, argv)
    assert code == EXIT_USAGE
    assert message in err and "--help)" in err


def test_help_shows_the_defaults(capsys):
    for argv, default in [
        (["cost"], "(default: 100.0)"),
        (["run"], "(default: 50)"),
        (["dlq", "replay"], "(default: 3)"),
        (["dlq", "show"], "(default: 30)"),
    ]:
        with pytest.raises(SystemExit) as exited:
            cli.main([*argv, "--help"])
        assert exited.value.code == 0
        assert default in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--since", "soon"], "bad time 'soon'"),
        (["--since", "1h", "--until", "2h"], "is after --until"),
        (["--detail-type", "PaymentSomething"], "unknown detail-type PaymentSomething"),
        (["--reason", " "], "empty --reason"),
        (["--server-side", "--dry-run"], "--server-side cannot be combined"),
        (["--audit-s3", "bucket/prefix"], "bad --audit-s3"),
    ],
)
def test_a_bad_filter_is_refused_before_any_aws_call(capsys, no_session, tmp_path, options, message):
    audit = tmp_path / "audit.jsonl"
    argv = ["dlq", "replay", "FraudDLQ", "--stack", STACK, "--audit-file", str(audit), *options]
    code, line = failure(capsys, argv)
    assert code == EXIT_USAGE
    assert line.startswith("paypipe dlq: error: ") and message in line
    assert not audit.exists()


def test_no_region_is_exit_3(capsys, no_aws_files, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    audit = tmp_path / "audit.jsonl"
    code, line = failure(capsys, ["dlq", "replay", "FraudDLQ", "--stack", STACK, "--audit-file", str(audit)])
    assert code == EXIT_ENVIRONMENT
    assert "no AWS region" in line and "--region" in line and "AWS_REGION" in line
    assert not audit.exists()


def test_no_credentials_is_exit_3(capsys, no_aws_files, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code, line = failure(capsys, ["dlq", "list", "--stack", STACK, "--endpoint-url", CLOSED_PORT])
    assert code == EXIT_ENVIRONMENT
    assert "Unable to locate credentials" in line and "AWS_PROFILE" in line


def test_an_unknown_profile_is_exit_3(capsys, no_aws_files):
    code, line = failure(capsys, ["dlq", "list", "--stack", STACK, "--profile", "nobody"])
    assert code == EXIT_ENVIRONMENT
    assert "nobody" in line and "--profile" in line


@pytest.mark.parametrize("via", ["option", "environment"])
def test_an_unreachable_endpoint_is_exit_3(capsys, no_aws_files, monkeypatch, tmp_path, via):
    audit = tmp_path / "audit.jsonl"
    argv = ["dlq", "replay", "FraudDLQ", "--stack", STACK, "--audit-file", str(audit)]
    if via == "option":
        argv += ["--endpoint-url", CLOSED_PORT]
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", CLOSED_PORT)
    code, line = failure(capsys, argv)
    assert code == EXIT_ENVIRONMENT
    assert "Could not connect" in line and "127.0.0.1:9" in line and "AWS_ENDPOINT_URL" in line
    assert not audit.exists()


def test_the_region_comes_from_the_option_then_aws_region_then_aws_default_region(no_aws_files, monkeypatch):
    def region_of(*options):
        args = cli.build_parser().parse_args(["dlq", "list", "--stack", STACK, *options])
        return dlq_cli.Aws.from_args(args).client("sqs").meta.region_name

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert region_of() == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert region_of() == "eu-central-1"
    assert region_of("--region", "ap-south-1") == "ap-south-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert region_of() == "eu-central-1"


def test_clients_use_the_project_client_config_and_the_endpoint(no_aws_files):
    args = cli.build_parser().parse_args(
        ["dlq", "list", "--stack", STACK, "--region", "us-east-1", "--endpoint-url", CLOSED_PORT]
    )
    aws = dlq_cli.Aws.from_args(args)
    for service in ("sqs", "cloudformation", "events", "s3"):
        config = aws.client(service).meta.config
        assert config.connect_timeout == CLIENT_CONFIG.connect_timeout
        assert config.read_timeout == CLIENT_CONFIG.read_timeout
        assert config.retries == CLIENT_CONFIG.retries
        assert aws.client(service).meta.endpoint_url == CLOSED_PORT
    assert aws.client("sqs") is aws.client("sqs")


def tagged_dlq(sqs, name="paypipe-clitest-FraudDLQ"):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.tag_queue(
        QueueUrl=url,
        Tags={"paypipe:stack": STACK, "paypipe:dlq-kind": "consumer", "paypipe:step": "fraud"},
    )
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    return url


def visible(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_an_unknown_stack_is_exit_3(capsys, aws, tmp_path):
    audit = tmp_path / "audit.jsonl"
    argv = ["dlq", "replay", "FraudDLQ", "--stack", "nope", "--audit-file", str(audit)]
    code, line = failure(capsys, argv)
    assert code == EXIT_ENVIRONMENT and "no DLQs found for stack nope" in line
    code, line = failure(capsys, [*argv, "--discover", "outputs"])
    assert code == EXIT_ENVIRONMENT and "cannot read stack nope" in line
    assert not audit.exists()


def test_an_unknown_queue_is_exit_2_and_moves_nothing(capsys, aws, tmp_path):
    sqs = boto3.client("sqs")
    url = tagged_dlq(sqs)
    audit = tmp_path / "audit.jsonl"
    code, line = failure(
        capsys, ["dlq", "replay", "TokenizeDLQ", "--stack", STACK, "--audit-file", str(audit)]
    )
    assert code == EXIT_USAGE
    assert "unknown queue 'TokenizeDLQ'" in line and "FraudDLQ (consumer:fraud)" in line
    assert visible(sqs, url) == 1 and not audit.exists()


def test_a_dlq_with_nowhere_to_go_is_exit_2_and_moves_nothing(capsys, aws, tmp_path):
    sqs = boto3.client("sqs")
    url = tagged_dlq(sqs)  # no source queue redrives into it
    audit = tmp_path / "audit.jsonl"
    code, line = failure(capsys, ["dlq", "replay", "FraudDLQ", "--stack", STACK, "--audit-file", str(audit)])
    assert code == EXIT_USAGE and "no source queue redrives into it" in line
    assert visible(sqs, url) == 1 and not audit.exists()


def stubbed(monkeypatch):
    """The tool's clients, each behind a botocore Stubber (no request leaves the process)."""
    stubs = {
        service: Stubber(boto3.client(service, region_name="us-east-1", config=CLIENT_CONFIG))
        for service in ("sqs", "cloudformation", "events")
    }
    for stub in stubs.values():
        stub.activate()
    monkeypatch.setattr(dlq_cli.Aws, "client", lambda self, service: stubs[service].client)
    return stubs


def test_an_aws_error_is_exit_3_naming_the_call_and_the_code(capsys, monkeypatch, tmp_path):
    stubs = stubbed(monkeypatch)
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/paypipe-clitest-FraudDLQ"
    outputs = [
        {"OutputKey": "FraudDLQUrl", "OutputValue": url, "Description": "dlq:consumer:fraud"},
        {"OutputKey": "FraudQueueUrl", "OutputValue": url.replace("DLQ", "Queue")},
    ]
    stack = {"StackName": STACK, "CreationTime": "2026-11-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}
    stubs["cloudformation"].add_response("describe_stacks", {"Stacks": [{**stack, "Outputs": outputs}]})
    stubs["sqs"].add_client_error(
        "get_queue_attributes", service_error_code="AccessDenied", service_message="not for you"
    )
    audit = tmp_path / "audit.jsonl"
    argv = [
        "dlq",
        "replay",
        "FraudDLQ",
        "--stack",
        STACK,
        "--discover",
        "outputs",
        "--audit-file",
        str(audit),
    ]
    code, line = failure(capsys, argv)
    assert code == EXIT_ENVIRONMENT
    assert "AWS refused GetQueueAttributes: AccessDenied: not for you" in line and "permission" in line
    assert not audit.exists()
    for stub in stubs.values():
        stub.assert_no_pending_responses()


def test_an_unexpected_error_is_one_line_exit_4_and_debug_shows_the_traceback(capsys, monkeypatch):
    def broken():
        raise KeyError("usd")

    monkeypatch.setattr(cost, "load_prices", broken)
    code, line = failure(capsys, ["cost", "--volume", "10"])
    assert code == EXIT_INTERNAL
    assert line == "paypipe cost: unexpected KeyError: 'usd' (rerun with --debug for the traceback)"
    for argv in (["--debug", "cost", "--volume", "10"], ["cost", "--volume", "10", "--debug"]):
        assert cli.main(argv) == EXIT_INTERNAL
        err = capsys.readouterr().err
        assert "Traceback" in err and "in broken" in err


def test_a_missing_optional_dependency_names_the_install(capsys):
    missing = ModuleNotFoundError("No module named 'moto'", name="moto")
    code, line = cli.describe(missing, cli.COMMANDS["run"])
    assert code == EXIT_ENVIRONMENT and "moto" in line and "paypipe[dev]" in line
    code, _ = cli.describe(
        ModuleNotFoundError("No module named 'paypipe.x'", name="paypipe.x"), cli.COMMANDS["run"]
    )
    assert code == EXIT_INTERNAL  # a module of the project itself missing is a bug


def paypipe(*argv, env=None):
    return subprocess.run(
        [sys.executable, "-m", "paypipe.cli", *argv], capture_output=True, text=True, env=env, check=False
    )


def test_the_installed_command_prints_no_traceback(tmp_path):
    unreachable = paypipe(
        "dlq", "list", "--stack", STACK, "--region", "us-east-1", "--endpoint-url", CLOSED_PORT
    )
    assert unreachable.returncode == EXIT_ENVIRONMENT
    assert unreachable.stderr.count("\n") == 1 and "Traceback" not in unreachable.stderr
    bad = paypipe("cost", "--volume", "0")
    assert bad.returncode == EXIT_USAGE and bad.stderr.count("\n") == 1


def test_importing_the_cli_and_running_cost_import_no_boto3_rich_or_moto():
    probe = (
        "import sys, paypipe.cli as cli\n"
        "names = {'boto3', 'botocore', 'rich', 'moto'}\n"
        "heavy = lambda: sorted({m.split('.')[0] for m in sys.modules} & names)\n"
        "imported = heavy()\n"
        "cli.main(['cost', '--volume', '1000'])\n"
        "print(__import__('json').dumps([imported, heavy()]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    after_import, after_cost = json.loads(result.stdout.strip().splitlines()[-1])
    assert after_import == [] and after_cost == []


def test_run_prenote_turns_prenotes_on_for_the_sample_run_only_when_asked(monkeypatch, tmp_path):
    from paypipe.embedded import console

    asked: list[bool] = []
    monkeypatch.setattr(
        console, "run_with_console", lambda *_args, prenote, **_kw: asked.append(prenote) or 0
    )
    for argv in (["run", "--out", str(tmp_path)], ["run", "--prenote", "--out", str(tmp_path)]):
        assert cli.main(argv) == 0
    assert asked == [False, True]
