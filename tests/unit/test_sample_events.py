import json

from paypipe.embedded.samples import EVENTS_DIR, SAMPLE_PAN, env_vars, sample_files
from paypipe.events import models as ev
from paypipe.runtime.objects import stored_object


def test_sample_event_files_match_the_generator():
    generated = sample_files()
    committed = {path: path.read_text() for path in EVENTS_DIR.glob("*.json")}
    assert set(committed) == set(generated), "run scripts/gen_sample_events.py"
    drifted = [path.name for path, text in generated.items() if committed[path] != text]
    assert drifted == [], f"sample events drifted: {drifted}; run scripts/gen_sample_events.py"


def test_only_the_validate_and_tokenize_inputs_carry_the_test_card_number():
    for path in EVENTS_DIR.glob("*Function.json"):
        text = path.read_text()
        assert (SAMPLE_PAN in text) == (path.stem in {"ValidateFunction", "TokenizeFunction"}), path.name


def test_sqs_samples_hold_valid_eventbridge_events():
    for path in EVENTS_DIR.glob("*Function.json"):
        document = json.loads(path.read_text())
        for record in document.get("Records", []):
            body = json.loads(record["body"])
            if body["source"] == "aws.s3":  # the returns consumer's: S3's notification of a bank file
                env = json.loads((EVENTS_DIR / "env.json").read_text())[path.stem]
                assert stored_object(record["body"], env["ACH_BUCKET"], "inbound/").key.endswith(".ach")
                continue
            event = ev.parse_detail(body["detail-type"], body["detail"])
            assert body["source"] == f"paypipe.{event.producer}"


def test_env_file_from_a_stack_uses_its_physical_ids():
    ids = {"LedgerTable": "paypipe-dev-LedgerTable-1Q2W3E", "EventBus": "paypipe-dev"}
    env = env_vars(ids | {"PaymentsTable": "payments-x"})
    assert env["EscrowHoldFunction"]["LEDGER_TABLE"] == "paypipe-dev-LedgerTable-1Q2W3E"
    assert env["ReleaseSweepFunction"] == {"LEDGER_TABLE": "paypipe-dev-LedgerTable-1Q2W3E"}
