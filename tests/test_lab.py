"""The kernel lab (kernels/lab) builds from the kernels' headers and its candidates pass their own
float64 checks on every CPU variant this machine runs, so it cannot rot."""
import pathlib
import shutil
import subprocess

import pytest

LAB = pathlib.Path(__file__).resolve().parents[1] / "kernels" / "lab" / "run"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_kernel_lab_builds_and_validates():
    run = subprocess.run(["bash", str(LAB), "13", "70", "45", "3"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "packed tile" in run.stdout and "FAILS" not in run.stdout
