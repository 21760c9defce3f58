"""Interleaved median timing: every candidate runs once per round, rounds repeat, and each
candidate's time is the median over rounds, so slow drift of a shared machine hits all alike.
Each round starts one candidate further on, so none always runs right after the same other
(on the Zen 3 VM the candidate after a row-split LSTM call ran 12–19 % faster than the one before
it, at H = 1024)."""
import statistics
import time


def calibrate(fn, target_s):
    """Calls per measurement so that one measurement lasts about target_s (after a warm-up)."""
    fn()  # warm-up: compilation, allocator, caches
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(target_s / once))


def measure(fns, rounds=5, target_s=0.02):
    """{name: median seconds per call} for the callables in `fns`, interleaved over rounds."""
    reps = {name: calibrate(fn, target_s) for name, fn in fns.items()}
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / reps[name])
    return {name: statistics.median(s) for name, s in samples.items()}
