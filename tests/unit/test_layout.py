"""Repository conventions that would otherwise break collection or CI in confusing ways."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique() -> None:
    # pytest's default import mode puts each test dir on sys.path, so two test files with one basename collide.
    names = Counter(path.name for path in (ROOT / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []


def test_command_modules_follow_the_naming_rule() -> None:
    # scorer/cli/__init__.py imports exactly the *_cmd / *_cmds modules; anything else would be silently ignored.
    modules = {p.stem for p in (ROOT / "scorer" / "cli").glob("*.py")} - {"__init__", "base"}
    assert all(name.endswith(("_cmd", "_cmds")) for name in modules), sorted(modules)


def test_the_runtime_never_imports_trainers() -> None:
    # Dependency direction: trainers -> scorer, never back. Only the two CLI commands that train reach
    # into trainers (`scorer train`, and `scorer retrain-worker` which hands the worker its fit function).
    allowed = {ROOT / "scorer" / "cli" / "train_cmd.py", ROOT / "scorer" / "cli" / "retrain_cmd.py"}
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "scorer").rglob("*.py") if path not in allowed
                 and any(line.lstrip().startswith(("import trainers", "from trainers"))
                         for line in path.read_text().splitlines())]
    assert offenders == []
