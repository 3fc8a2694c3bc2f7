"""The scoring side stays light: importing scorer.models pulls in none of the training or I/O stacks."""

from __future__ import annotations

import subprocess
import sys


def test_scorer_models_imports_no_sklearn_click_cassandra_or_faust() -> None:
    code = (
        "import sys, scorer.models\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'click', 'cassandra', 'faust'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
