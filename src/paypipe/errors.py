"""Failures a command expects and explains, and the exit status of every ``paypipe`` command.

0 done; 1 the command's own "not clean" result (messages left in a DLQ, a run that did not
reconcile); 2 bad usage or input, nothing done; 3 AWS or the environment (region, credentials,
endpoint, stack, a refused AWS call, a missing optional dependency); 4 an unexpected error; 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NOT_CLEAN = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERNAL = 4


class CommandError(Exception):
    """Bad usage or input, detected before anything was done. The message says what to do."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(CommandError):
    """AWS or the local environment is not as the command needs it."""

    exit_code = EXIT_ENVIRONMENT
