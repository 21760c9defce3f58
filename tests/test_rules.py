"""The tuned rules and the CPU variants are each declared once (kernels/rules.def, and
FASTRNN_CPU_VARIANTS in kernels/fastrnn.h): the C library and the Python layer read the same
values, a rule can be changed for a measurement and is restored, bad names are refused."""
import re

import pytest
import torch

import fastrnn
from fastrnn import _native, dispatch, rules

NATIVE = "native" in fastrnn.backends()
needs_native = pytest.mark.skipif(not NATIVE, reason="native backend not built")


def _library():
    return dispatch.load("native").library


def test_every_rule_says_what_it_decides_and_where_it_was_set():
    table = rules.table()
    assert {"team_madds_log2", "rows_llc_share", "chunk_rows", "grad_partial_rows",
            "input_grad_tiles"} <= set(table)
    for r in table.values():
        assert isinstance(r.default, int) and r.default >= 0, r.name
        assert len(r.what) > 40 and len(r.where) > 20, r.name
        assert rules.value(r.name) == r.default


@needs_native
def test_the_library_reads_the_same_table():
    lib = _library().lib
    for r in rules.table().values():
        assert lib.fastrnn_get_rule(r.name.encode()) == r.default, r.name
    assert lib.fastrnn_get_rule(b"no_such_rule") == -1


@needs_native
def test_override_reaches_the_kernels_and_is_restored():
    lib = _library().lib
    x, w_ih, w_hh = torch.randn(40, 3, 8), torch.randn(32, 8), torch.randn(32, 8)
    with torch.no_grad():
        y = fastrnn.functional.lstm(x, None, w_ih, w_hh, backend="native")[0]
        with rules.override(chunk_rows=5, grad_partial_rows=64):
            assert lib.fastrnn_get_rule(b"chunk_rows") == 5
            assert rules.value("chunk_rows") == 5 and rules.value("grad_partial_rows") == 64
            # (chunks of 2 steps rather than all 40: the same sums, bitwise)
            assert torch.equal(fastrnn.functional.lstm(x, None, w_ih, w_hh,
                                                       backend="native")[0], y)
    assert lib.fastrnn_get_rule(b"chunk_rows") == rules.table()["chunk_rows"].default
    assert rules.value("grad_partial_rows") == rules.table()["grad_partial_rows"].default


def test_bad_rules_are_refused_by_name():
    with pytest.raises(ValueError, match="no rule named 'chunk_row'.*chunk_rows"):
        with rules.override(chunk_row=5):
            pass
    with pytest.raises(ValueError, match="chunk_rows must be an int >= 0, got -1"):
        with rules.override(chunk_rows=-1):
            pass
    assert rules.value("chunk_rows") == rules.table()["chunk_rows"].default


@needs_native
def test_the_c_setter_refuses_an_unknown_rule():
    library = _library()
    with pytest.raises(ValueError, match="no rule named 'sse9'"):
        library.raise_for(library.lib.fastrnn_set_rule(b"sse9", 1))


def test_the_native_library_loads():
    """The C library is built by every install (CMake, a C compiler): a build that does not load
    (a missing variant's symbol, say) must fail here, not turn the native tests into skips."""
    assert dispatch.why_not("native") is None, dispatch.why_not("native")


def test_the_variants_are_the_table_s_rows_in_order():
    with open(_native.find("fastrnn.h"), encoding="utf-8") as f:
        rows = re.findall(r"^  X\(a, (\w+), \"([^\"]*)\", (\d+), ", f.read(), flags=re.M)
    names = [r[0] for r in rows]
    assert names and rows[-1][1] == "x86-64"  # the last row runs on every x86-64
    here = fastrnn.cpu_variants()
    if here:  # what this CPU runs: a tail of the table (each row needs at least the next's level)
        assert here == names[len(names) - len(here):]
        assert all(f" {v} (" in _library().build_info() for v in names)
