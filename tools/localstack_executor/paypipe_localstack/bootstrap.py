"""One Lambda execution environment as a local process (standard library only).

Started by the local-process executor with the function's environment. Loads ``_HANDLER``
from ``LAMBDA_TASK_ROOT`` (then each layer's ``python/`` folder, like /var/task and
/opt/python), reports ready to LocalStack's executor endpoint, and runs the invocations
LocalStack posts to ``/invoke`` one at a time, posting each result or error back.

A test can move the functions' clock forward (a bank answers days after a payout settles):
``PAYPIPE_LAMBDA_CLOCK_FILE`` names a file holding an offset in milliseconds, read at each
invocation. Only what LocalStack stamps is moved: the SQS timestamps of the records a queue
delivers (``SentTimestamp``, ``ApproximateFirstReceiveTimestamp``), which the steps take as the
time a record was received. A payload a test builds itself (a scheduled event's ``time``) is
passed as it is. No file, or an empty one: the host's clock.
"""

import importlib
import json
import os
import queue
import sys
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

RUNTIME_ENDPOINT = os.environ["LOCALSTACK_RUNTIME_ENDPOINT"]
RUNTIME_ID = os.environ["LOCALSTACK_RUNTIME_ID"]
PORT = int(os.environ["PAYPIPE_EXECUTOR_PORT"])
CLOCK_FILE = os.environ.get("PAYPIPE_LAMBDA_CLOCK_FILE", "")
SQS_TIMESTAMPS = ("SentTimestamp", "ApproximateFirstReceiveTimestamp")
invocations: "queue.Queue[dict[str, Any]]" = queue.Queue()


def post(path: str, body: bytes) -> None:
    request = urllib.request.Request(  # noqa: S310 - LocalStack on loopback
        f"{RUNTIME_ENDPOINT}{path}", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass


def error_body(error: BaseException) -> bytes:
    return json.dumps(
        {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "stackTrace": traceback.format_exception(error),
        }
    ).encode()


def clock_offset_millis() -> int:
    """How far the functions' clock is moved (0 without a clock file or a number in it)."""
    if not CLOCK_FILE:
        return 0
    try:
        with open(CLOCK_FILE, encoding="ascii") as file:
            return int(file.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def moved_clock(event: Any, offset_millis: int) -> Any:
    """``event`` with its SQS records stamped ``offset_millis`` later."""
    if not offset_millis or not isinstance(event, dict):
        return event
    for record in event.get("Records") or ():
        attributes = record.get("attributes") if isinstance(record, dict) else None
        if record.get("eventSource") != "aws:sqs" or not isinstance(attributes, dict):
            continue
        for name in SQS_TIMESTAMPS:
            stamped = str(attributes.get(name, ""))
            if stamped.isdigit():
                attributes[name] = str(int(stamped) + offset_millis)
    return event


class InvokeHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        invocations.put(json.loads(body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class Context:
    """The parts of the Lambda context object handlers use."""

    def __init__(self, invocation: dict[str, Any]) -> None:
        self.aws_request_id = invocation["invoke-id"]
        self.invoked_function_arn = invocation["invoked-function-arn"]
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        timeout = int(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler() -> Any:
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    layers = [p for p in os.environ.get("PAYPIPE_LAYER_PATHS", "").split(os.pathsep) if p]
    sys.path[:0] = [task_root, *(os.path.join(layer, "python") for layer in layers)]
    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    return getattr(module, attribute)


def main() -> None:
    try:
        handler = load_handler()
    except Exception as error:  # noqa: BLE001 - reported as an init error
        traceback.print_exc()
        post(f"/status/{RUNTIME_ID}/error", error_body(error))
        sys.exit(1)
    server = HTTPServer(("127.0.0.1", PORT), InvokeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    post(f"/status/{RUNTIME_ID}/ready", b"{}")
    while True:
        invocation = invocations.get()
        request_id = invocation["invoke-id"]
        os.environ["_X_AMZN_TRACE_ID"] = invocation.get("trace-id") or ""
        try:
            event = moved_clock(json.loads(invocation["payload"] or "null"), clock_offset_millis())
            result = handler(event, Context(invocation))
            body = json.dumps(result).encode()
        except Exception as error:  # noqa: BLE001 - the invocation's error result
            traceback.print_exc()
            post(f"/invocations/{request_id}/error", error_body(error))
            continue
        post(f"/invocations/{request_id}/response", body)


if __name__ == "__main__":
    main()
