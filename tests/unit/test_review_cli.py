"""``paypipe review --embedded OUT``: list, show, approve and decline, each error one line."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from paypipe import cli
from paypipe.embedded.reviews import DECISIONS_FILE, REVIEWS_FILE


def row(payment_id, status="open"):
    return {
        "payment_id": payment_id,
        "status": status,
        "score": 520,
        "reasons": ["velocity_card_1h"],
        "opened_at": "2026-03-02T12:00:00+00:00",
        "deadline": "2026-03-05T12:00:00+00:00",
        "decided_at": None,
        "reviewer": None,
        "note": None,
    }


@pytest.fixture
def out(tmp_path):
    rows = [row("run120000-000003"), row("run120000-000007", status="declined")]
    (tmp_path / REVIEWS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def review(out, *args):
    return cli.main(["review", *args, "--embedded", str(out)])


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_list_shows_the_open_reviews(out, capsys):
    assert review(out, "list") == 0
    printed = capsys.readouterr().out
    assert "run120000-000003" in printed and "run120000-000007" not in printed


def test_show_finds_a_review_by_payment_id_or_by_the_seeded_part(out, capsys):
    assert review(out, "show", "run120000-000007", "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "declined"
    assert review(out, "show", "000003") == 0
    assert "status: open" in capsys.readouterr().out


def test_an_unknown_id_exits_1_with_one_line(out, capsys):
    assert review(out, "show", "nobody") == 1
    assert "no fraud review for payment nobody" in one_line_error(capsys)


def test_approve_records_a_decision_once(out, capsys):
    assert review(out, "approve", "run120000-000003", "--reviewer", "ann", "--note", "known buyer") == 0
    lines = (out / DECISIONS_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"payment_id": "run120000-000003", "decision": "approve", "reviewer": "ann", "note": "known buyer"}
    ]
    capsys.readouterr()
    assert review(out, "decline", "run120000-000003", "--reviewer", "bob") == 1
    assert "already recorded" in one_line_error(capsys)
    assert len((out / DECISIONS_FILE).read_text().splitlines()) == 1


def test_a_decided_review_is_refused(out, capsys):
    assert review(out, "decline", "run120000-000007", "--reviewer", "ann") == 1
    assert "already declined" in one_line_error(capsys)
    assert not (out / DECISIONS_FILE).exists()


def test_bad_usage_exits_2_with_one_line(out, capsys):
    assert review(out, "approve", "run120000-000003", "--reviewer", "ann", "--note", "4111111111111111") == 2
    err = one_line_error(capsys)
    assert "note" in err and "4111" not in err
    assert review(out, "approve", "run120000-000003", "--reviewer", "a b") == 2
    one_line_error(capsys)
    with pytest.raises(SystemExit) as exited:
        review(out, "approve", "run120000-000003")  # no --reviewer
    assert exited.value.code == 2
    assert "--reviewer" in one_line_error(capsys)
    assert review(out.parent / "nowhere", "list") == 2
    assert "run `paypipe run --out" in one_line_error(capsys)


def test_on_a_stack_a_decision_is_published_as_the_operator(aws):
    import boto3

    from paypipe.adapters.reviews_store import ReviewsStore
    from paypipe.domain.reviews import Review
    from paypipe.ops.review_cli import ReviewUnavailable, StackReviews, decision_data
    from tests.tables import create_table

    dynamodb, events, sqs = boto3.client("dynamodb"), boto3.client("events"), boto3.client("sqs")
    create_table(dynamodb, "reviews", gsi=True)
    events.create_event_bus(Name="bus")
    tap = sqs.create_queue(QueueName="tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="bus", EventPattern=json.dumps({"source": [{"prefix": ""}]}))
    events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "tap", "Arn": arn}])
    opened = datetime(2026, 3, 2, 12, tzinfo=UTC)
    ReviewsStore("reviews", dynamodb).open(
        Review("p1", 500, ("velocity",), opened, opened + timedelta(hours=72), "{}")
    )

    class Aws:
        def client(self, service):
            return boto3.client(service)

    stack = StackReviews(Aws(), {"EventBusName": "bus", "ReviewsTableName": "reviews"})
    assert [row["payment_id"] for row in stack.all()] == ["p1"]
    with pytest.raises(ReviewUnavailable):
        stack.get("nobody")
    assert "published ReviewDecided" in stack.decide(stack.get("p1"), decision_data("approve", "ann", None))
    (message,) = sqs.receive_message(QueueUrl=tap).get("Messages", [])
    body = json.loads(message["Body"])
    assert (body["source"], body["detail-type"]) == ("paypipe.operator", "ReviewDecided")
    assert body["detail"]["producer"] == "operator" and body["detail"]["data"]["reviewer"] == "ann"
