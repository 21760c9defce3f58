"""torch.compile of fastrnn modules, from a fresh process (tests/_compile_check.py)."""
import pathlib
import subprocess
import sys


def test_torch_compile_fullgraph_from_a_fresh_process():
    script = pathlib.Path(__file__).with_name("_compile_check.py")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    assert "OK fullgraph" in run.stdout and "OK packed" in run.stdout
    assert "OK low precision" in run.stdout
    assert "OK layernorm" in run.stdout  # LayerNorm cells: their ops in graph and export
