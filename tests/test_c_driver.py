"""The C library on its own: tests/c/test_kernels.c built with AddressSanitizer and UBSan."""
import pathlib
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_c_driver_under_sanitizers(tmp_path):
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed (pip install -e '.[test]' installs it)"
    build = tmp_path / "build"
    subprocess.run([cmake, "-S", str(ROOT), "-B", str(build), "-DFASTRNN_CUDA=OFF",
                    "-DFASTRNN_SANITIZE=ON", "-DFASTRNN_C_TESTS=ON", "-DCMAKE_BUILD_TYPE=Debug"],
                   check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build), "--target", "test_kernels"], check=True,
                   capture_output=True)
    run = subprocess.run([str(build / "test_kernels")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all C kernel checks passed" in run.stdout
