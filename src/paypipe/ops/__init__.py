"""Operator tooling (run by people during incidents, not by the pipeline)."""

DEFAULT_MAX_REPLAYS = 3  # replays of one message before it stays parked for good
