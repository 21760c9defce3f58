"""A/B of each tuned rule (fastrnn.rules, kernels/rules.def) against its alternatives, at three
shapes where the rule decides something, in one process: the same fastrnn module timed with the
rule at its value and at each alternative, interleaved rounds, medians (timing.measure). Behind
`fastrnn bench --suite rules`; a ratio above 1 means the rule's value is the faster.

Shape legend as in points.py; every point times `backend="native"` with torch's threads.
"""

from .. import rules
from . import report, timing
from .points import Inputs, Point, module_call


def _p(cell, pass_, T, B, H, dtype="float32"):
    return Point(cell, B, T, H, H, pass_=pass_, dtype=dtype)


# rule: (alternative values, three points where the rule decides)
CASES = {
    "team_madds_log2": ((15, 17), [_p("lstm", "forward", 64, 8, 64),
                                   _p("gru", "forward", 64, 16, 64),
                                   _p("rnn_tanh", "train", 64, 64, 64)]),
    "team_row_madds_log2": ((16,), [_p("lstm", "forward", 64, 1, 64),
                                    _p("gru", "train", 64, 1, 128),
                                    _p("rnn_tanh", "forward", 64, 1, 256)]),
    "rows_llc_share": ((1, 1 << 20), [_p("lstm", "forward", 32, 64, 256),
                                      _p("gru", "train", 32, 64, 512),
                                      _p("lstm", "forward", 32, 64, 1024)]),
    "rows_uneven_tiles": ((1,), [_p("lstm", "forward", 64, 18, 256),
                                 _p("gru", "forward", 64, 30, 256),
                                 _p("rnn_tanh", "train", 64, 42, 256)]),
    "inplace_min_H": ((1 << 20,), [_p("lstm", "forward", 32, 1, 512),
                                   _p("lstm", "forward", 32, 4, 1024),
                                   _p("gru", "train", 32, 1, 1024)]),
    "input_pack_rows": ((32, 1 << 20), [_p("lstm", "forward", 256, 1, 1024),
                                        _p("lstm", "forward", 32, 1, 1024),
                                        _p("gru", "train", 256, 1, 512)]),
    "chunk_rows": ((64, 1024), [_p("lstm", "forward", 256, 1, 1024),
                                _p("gru", "forward", 256, 8, 1024),
                                _p("lstm", "forward", 256, 8, 256)]),
    "grad_partial_batch": ((1,), [_p("lstm", "train", 32, 64, 256),
                                  _p("gru", "train", 256, 8, 256),
                                  _p("rnn_tanh", "train", 256, 64, 256)]),
    "amx_min_rows": ((1, 1 << 20), [_p("lstm", "forward", 100, 1, 256, "bfloat16"),
                                    _p("lstm", "train", 100, 4, 256, "bfloat16"),
                                    _p("gru", "forward", 32, 16, 1024, "bfloat16")]),
    "blas_blocks_per_core": ((1, 4), [_p("lstm", "train", 32, 64, 256),
                                      _p("gru", "train", 256, 8, 256),
                                      _p("rnn_tanh", "train", 32, 64, 1024)]),
    "blas_block_rows": ((16, 64), [_p("lstm", "train", 32, 64, 256),
                                   _p("gru", "train", 32, 8, 128),
                                   _p("lstm", "train", 100, 16, 256)]),
    "input_grad_tiles": ((0, 1), [_p("lstm", "train", 32, 64, 256),
                                  _p("gru", "train", 256, 8, 256),
                                  _p("rnn_tanh", "train", 32, 64, 1024)]),
}
QUICK = {name: (alts, [_p(p.cell, p.pass_, 3, p.B, 16, p.dtype) for p in points[:1]])
         for name, (alts, points) in CASES.items()}


def _under(call, name, value):
    def timed():
        with rules.override(**{name: value}):
            call()
    return timed


def run(out_dir, names=None, rounds=7, quick=False, progress=None):
    """Times every case (or those of `names`); writes RULES.md and results.json into out_dir and
    returns the RULES.md path."""
    cases = QUICK if quick else CASES
    unknown = sorted(set(names or ()) - set(cases))
    if unknown:
        raise ValueError(f"--rules: no A/B case for {', '.join(unknown)}; the cases are "
                         f"{', '.join(cases)}")
    rows = []
    for name in names or cases:
        alts, points = cases[name]
        value = rules.value(name)
        for p in points:
            call = module_call(Inputs(p), "native")
            fns = {v: _under(call, name, v) for v in (value, *alts)}
            times = timing.measure(fns, rounds=rounds, target_s=0.005 if quick else 0.05)
            rows.append(dict(rule=name, value=value, point=p.label(),
                             ms={str(v): t * 1e3 for v, t in times.items()},
                             ratio={str(v): times[v] / times[value] for v in alts}))
            if progress:
                progress(rows[-1])
    table = ["| rule | point | value: ms | alternatives: ms (ratio) |", "|---|---|---|---|"]
    for r in rows:
        alts = ", ".join(f"{v}: {r['ms'][v]:.3g} (**{x:.2f}**)" for v, x in r["ratio"].items())
        table.append(f"| {r['rule']} | {r['point']} | {r['value']}: "
                     f"{r['ms'][str(r['value'])]:.3g} | {alts} |")
    return report.write_suite(out_dir, "RULES.md", rows, "fastrnn tuned rules, A/B",
                              "Each point: fastrnn (`native`) with the rule at its value and at "
                              "each alternative, interleaved medians; ratio = alternative's time "
                              "/ the value's (above 1 the rule's value is faster). The rules: "
                              "kernels/rules.def.", table)
