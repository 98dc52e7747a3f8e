"""The start of a Lambda cold start: imported first by every ``services/<step>/app.py``, and only there.

Importing it pauses the garbage collector: start-up allocates hundreds of thousands of objects
that all live as long as the process (modules, classes, botocore's service models), so every
collection during it is wasted work (about 100 ms per function). ``finish``, called by the Lambda
entry once the first invocation has built the handler, moves everything start-up made to the
permanent generation (``gc.freeze``: later collections never scan it) and resumes collection.

It also imports Powertools batch before anything imports pydantic: that package decides at import
time, by whether pydantic is already in ``sys.modules``, to import its pydantic event-source models
(``aws_lambda_powertools.utilities.parser.models``) for type hints only, which builds about a
hundred models the pipeline never uses (80-130 ms). ``tests/unit/test_cold_start.py`` holds every
entry point to this.
"""

import gc

_paused = [gc.isenabled()]  # whether collection was on when start-up paused it
gc.disable()

import aws_lambda_powertools.utilities.batch  # noqa: E402, F401 - before pydantic: see above


def finish() -> None:
    """End of start-up (idempotent): freeze what it made and resume garbage collection."""
    if _paused.pop() if _paused else False:
        gc.freeze()
        gc.enable()
