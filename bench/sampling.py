"""Where handler time goes once moto is set aside: a sampling profile of an embedded run.

A thread samples the main thread's stack every half millisecond. Samples outside a record's
processing, or with moto anywhere on the stack, are dropped; the rest are attributed to the
first library our code called into on that stack (botocore wins wherever it appears).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from unittest import mock

from paypipe.embedded.demo import run_demo

_AWS_SIMULATION = ("/moto/", "/werkzeug/", "/responses/", "/xmltodict", "/jsonpath_ng/")
_RECORD_FRAME = ("runtime/consumer.py", "_process_record")
_SAMPLE_SECONDS = 0.0005

# (path fragment, label) in order of precedence for the first frame below our own code.
_LIBRARIES = (
    ("/pydantic", "pydantic (event parsing and building)"),
    ("/aws_lambda_powertools/", "Powertools (batch, idempotency hashing)"),
    ("/jmespath/", "Powertools (batch, idempotency hashing)"),
    ("/structlog/", "logging"),
    ("/logging/", "logging"),
    ("/json/", "json (fingerprints, payloads)"),
    ("/boto3/", "boto3 (DynamoDB type conversion)"),
    ("/cryptography/", "cryptography (AES-GCM)"),
    ("_strptime", "datetime parsing"),
)


def classify(stack: list[tuple[str, str]]) -> str | None:
    """Label of one sampled stack (outermost frame first); None when it is not handler time."""
    if not any(path.endswith(_RECORD_FRAME[0]) and name == _RECORD_FRAME[1] for path, name in stack):
        return None
    if any(fragment in path for path, _ in stack for fragment in _AWS_SIMULATION):
        return None
    if any("/botocore/" in path for path, _ in stack):
        return "botocore (AWS request build and parse)"
    ours = [i for i, (path, _) in enumerate(stack) if "/paypipe/" in path]
    below = stack[ours[-1] + 1 :] if ours else stack
    if not below:
        path = stack[-1][0]
        return "paypipe domain logic" if "/paypipe/domain/" in path else "paypipe adapters and runtime"
    path = below[0][0] + "/" + below[-1][0]
    for fragment, label in _LIBRARIES:
        if fragment in path:
            return label
    return "other standard library"


def _stack(frame: FrameType | None) -> list[tuple[str, str]]:
    stack: list[tuple[str, str]] = []
    while frame is not None:
        stack.append((frame.f_code.co_filename, frame.f_code.co_name))
        frame = frame.f_back
    stack.reverse()
    return stack


def handler_time_breakdown(payments: int) -> Counter[str]:
    """Samples per label over the ``paypipe run`` scenario."""
    target = threading.get_ident()
    samples: Counter[str] = Counter()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            time.sleep(_SAMPLE_SECONDS)
            label = classify(_stack(sys._current_frames().get(target)))
            if label is not None:
                samples[label] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            mock.patch.dict(os.environ, LOG_FILE=f"{scratch}/log.jsonl"),
        ):
            run_demo(payments, out_dir=Path(scratch))
    finally:
        done.set()
        sampler.join()
        sys.setswitchinterval(interval)
    return samples
