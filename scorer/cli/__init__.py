"""The ``scorer`` command line: thin commands that parse, call the library and print.

Every expected failure (a ScorerError) ends as one ``error: ...`` line and exit status 1, never a traceback.
Command modules are the ``*_cmd``/``*_cmds`` modules of this package; importing one registers its commands
on ``main``, so adding a command never means editing this file.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from scorer.cli.base import main

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    if _module.name.endswith(("_cmd", "_cmds")):
        import_module(f"{__name__}.{_module.name}")

__all__ = ["main"]
