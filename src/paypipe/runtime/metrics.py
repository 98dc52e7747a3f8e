"""Business metrics as CloudWatch embedded metric format (EMF) documents in the step log.

Each document is one JSON log line whose ``_aws`` key tells CloudWatch Logs to extract the
metric (namespace ``paypipe``); the template's alarms watch those metrics. Dimensions are small
fixed sets (step, outcome, reason), never ids or card data.
"""

from __future__ import annotations

from typing import Any

from paypipe.runtime import clock
from paypipe.runtime.logging import get_logger

NAMESPACE = "paypipe"


def emf_document(name: str, value: float, unit: str = "Count", **dimensions: str) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": clock.now_millis(),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }
            ],
        },
        name: value,
        **dimensions,
    }


def emit(name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
    get_logger().info("metric", **emf_document(name, value, unit, **dimensions))
