"""What the GPU check depends on that can be checked without a GPU: the CUDA suite's shapes are
not chaotic, the precision settings can be set and restored, bench/gpu_check.sh parses, the speed
script runs end to end (on the CPU), and the CUDA kernels compile without register spills — the
ptxas report is kept in build/ptxas-report.txt."""
import pathlib
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from _cases import CUDA_CASES, CUDA_IDS, GATES, Case, ieee_float32, rel_err

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cell,kw", CUDA_CASES, ids=CUDA_IDS)
def test_cuda_shapes_are_not_chaotic(cell, kw):
    """On these shapes torch.nn's own float32 result stays close to float64, so a float32 kernel
    can be judged against the reference at all."""
    c = Case(cell, **kw)
    ref, nn = c.run_reference(), c.run_torch(torch.float32)
    for k in ref:
        assert rel_err(nn[k], ref[k]) <= 1e-5, k


def test_ieee_float32_sets_and_restores_through_one_api():
    flags = torch.backends.cudnn.rnn, torch.backends.cuda.matmul
    before = [f.fp32_precision for f in flags]
    for _ in range(2):  # a second use must not meet a state the first left behind
        with ieee_float32():
            assert [f.fp32_precision for f in flags] == ["ieee", "ieee"]
        assert [f.fp32_precision for f in flags] == before
    # Legacy flags are still readable: nothing mixed the two APIs.
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_check.sh")], check=True)


def test_gpu_speed_script_runs_on_the_cpu(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_speed.py"), "--device", "cpu",
                        "--quick", "--rounds", "1", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "gpu-speed.md").read_text()
    assert table.count("| lstm |") == table.count("| gru |") == table.count("| rnn_tanh |") == 3
    assert (tmp_path / "gpu-speed.json").stat().st_size > 0


def _architectures():
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r'FASTRNN_CUDA_ARCHITECTURES "([0-9;]+)"', text).group(1).split(";")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here")
def test_cuda_kernels_compile_without_spills(tmp_path):
    """Each CUDA cell file, per element type, for the architectures CMake builds by default,
    with ptxas's per-kernel report (registers, stack, spills)."""
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in _architectures()]
    # fastrnn_cells.h as the build writes it: each entry point must match its declaration there
    subprocess.run([sys.executable, str(ROOT / "kernels" / "abi.py"), str(tmp_path)], check=True)

    def compile_one(job):
        cell, f64 = job
        cmd = ["nvcc", "-O3", *gencode, "-Xptxas", "-v", f"-DFASTRNN_F64={f64}", "-I", str(tmp_path),
               "-I", str(ROOT / "kernels"), "-c",
               str(ROOT / "kernels" / "cuda" / f"{cell}.cu"), "-o", str(tmp_path / f"{cell}{f64}.o")]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        return f"== {cell}.cu, {'float64' if f64 else 'float32'}\n{r.stdout}{r.stderr}", r.returncode

    files = sorted(f.stem for f in (ROOT / "kernels" / "cuda").glob("*.cu"))
    jobs = [(cell, f64) for cell in files for f64 in (0, 1)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(compile_one, jobs))
    report = "".join(text for text, _ in results)
    out = ROOT / "build" / "ptxas-report.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    assert all(rc == 0 for _, rc in results), report
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    assert len(spills) >= 6 * 5 * len(_architectures()), report  # 5 kernels a file at least
    assert all(s == ("0", "0") for s in spills), f"register spills (see {out}):\n{report}"
