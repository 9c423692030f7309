"""scripts/wheel_check.py's judgement of a wheel's file list (`make wheel-check` builds and installs the real one)."""

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _wheel_check():
    sys.path.insert(0, str(SCRIPTS))  # wheel_check imports demo.py beside it
    try:
        spec = importlib.util.spec_from_file_location("wheel_check", SCRIPTS / "wheel_check.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(SCRIPTS))
    return mod


W = _wheel_check()
GOOD = [*W.REQUIRED, "animate_cli/models/loader.py", "everanimate-0.1.0.dist-info/METADATA", "everanimate-0.1.0.dist-info/RECORD"]


def test_a_complete_package_passes():
    assert W.content_problems(GOOD) == []


def test_missing_package_data_and_shipped_test_code_are_named():
    names = [n for n in GOOD if not n.endswith("footprint_table.json")]
    names += ["animate_cli/devtools/tiny_models.py", "animate_cli/support/tiny_pose.py", "tests/conftest.py",
              "benchmarks/full_configs.py"]  # fmt: skip
    problems = W.content_problems(names)
    assert "missing from the wheel: animate_cli/models/footprint_table.json" in problems
    assert "test/dev code in the wheel: animate_cli/devtools/tiny_models.py" in problems
    assert "test/dev code in the wheel: animate_cli/support/tiny_pose.py" in problems
    assert "not part of the package: tests/conftest.py" in problems
    assert "not part of the package: benchmarks/full_configs.py" in problems
    assert len(problems) == 5
