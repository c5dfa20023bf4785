"""The README's main job runs end to end on local Spark."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.spark
def test_quickstart_scores_through_spark():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
    assert "prediction" in lines[0]
    assert len(lines) == 11  # header + 10 scored rows
    assert {ln.rstrip("|").split("|")[-1].strip() for ln in lines[1:]} <= {"0", "1", "2"}
