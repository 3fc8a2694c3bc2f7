"""The ``scorer`` command line: thin commands that parse, call the library and print.

Every expected failure (a ScorerError) ends as one ``error: ...`` line and exit status 1, never a traceback.
"""

from __future__ import annotations

from scorer.cli import schema_cmd  # noqa: F401  (registers commands)
from scorer.cli import train_cmd  # noqa: F401
from scorer.cli.base import main

__all__ = ["main"]
