"""Operator tooling (run by people during incidents, not by the pipeline)."""
