"""Faults: a missing or corrupt compiled library, an unwritable Numba cache folder, a backend the
user forced that cannot run here. fastrnn still works through the next backend with one clear
warning, or, where the user insisted on that backend, raises an error naming the fix. Each runs
in a fresh process, whose backends are found (or not) at first use."""
import os
import subprocess
import sys
import textwrap

import pytest

import fastrnn

PROBE = textwrap.dedent("""
    import warnings, torch, fastrnn
    x = torch.randn(5, 2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = fastrnn.LSTM(3, 4)
        m(x); m(x)  # twice: the warning comes once
    print("auto ran on", m.last_backend)
    print("warnings:", len([w for w in caught if "fastrnn" in str(w.message)]))
    for w in caught:
        print("warning:", w.message)
    try:
        fastrnn.LSTM(3, 4, backend="native")(x)
        print("native ran")
    except RuntimeError as e:
        print("native refused:", e)
""")


def _run(env):
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=dict(os.environ, **env), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_a_missing_library_falls_back_with_one_warning(tmp_path):
    out = _run({"FASTRNN_LIBRARY_DIR": str(tmp_path)})  # an empty folder
    assert "auto ran on numba" in out and "warnings: 1" in out
    assert "libfastrnn_cpu.so was not built or not installed" in out
    assert "native refused:" in out and "To build it: reinstall fastrnn with a C compiler" in out


def test_a_corrupt_library_falls_back_with_one_warning(tmp_path):
    (tmp_path / "libfastrnn_cpu.so").write_bytes(b"\x7fELF but not really a library")
    from fastrnn._native import find
    (tmp_path / "fastrnn.h").write_text(open(find("fastrnn.h"), encoding="utf-8").read(),
                                        encoding="utf-8")
    out = _run({"FASTRNN_LIBRARY_DIR": str(tmp_path)})
    assert "auto ran on numba" in out and "warnings: 1" in out
    assert "native refused:" in out and "To build it" in out


@pytest.mark.skipif("numba" not in fastrnn.backends(), reason="numba is not usable here")
def test_an_unwritable_numba_cache_still_runs_with_one_warning(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    probe = textwrap.dedent("""
        import warnings, torch, fastrnn
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = fastrnn.GRU(3, 4, backend="numba")
            y, _ = m(torch.randn(5, 2, 3))
        print("ran on", m.last_backend, tuple(y.shape))
        for w in caught:
            if "fastrnn" in str(w.message):
                print("warning:", w.message)
    """)
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=dict(os.environ, NUMBA_CACHE_DIR=str(blocker / "cache")),
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ran on numba (5, 2, 4)" in run.stdout
    assert run.stdout.count("warning:") == 1 and "cannot be written" in run.stdout
