"""``scorer learn-worker`` refuses bad flags with one error line before it connects to anything."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scorer.cli import main


@pytest.mark.parametrize("args,message", [
    (["--every-labels", "0"], "--every-labels must be >= 1"),
    (["--sgd", "alpah=0.1"], "unknown sgd parameter(s) ['alpah']"),
    (["--sgd", "loss=hinge"], "gives no probabilities to serve"),
    (["--sgd", "learning_rate=constant", "--sgd", "eta0=0"], "needs eta0 > 0"),
    (["--sgd", "alpha"], "--sgd takes KEY=VALUE"),
    (["--canary-fraction", "1.5", "--promote", "gated"], "canary_fraction"),
])
def test_bad_flags_are_one_error_line(args, message):
    result = CliRunner().invoke(main, ["learn-worker", "--models", "m", *args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
