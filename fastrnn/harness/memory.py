"""Peak memory of one benchmark point in a fresh process: the peak resident set size while it
runs (after one warm-up run), minus the resident size just before it (so torch's own footprint,
library loading and the inputs are not counted). Run as
`python -m fastrnn.harness.memory '<point json>' <backend>`.

Linux keeps the peak in VmHWM, and writing 5 to /proc/self/clear_refs resets it to the current
size, which lets the peak of the run alone be read."""
import json
import subprocess
import sys


def status_mib(key):
    """A size from /proc/self/status (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise OSError(f"{key} not in /proc/self/status")


def peak_mb(point, backend, timeout=300):
    """Extra peak memory (MiB) of running `point` once on `backend` (or 'torch.nn')."""
    cmd = [sys.executable, "-m", "fastrnn.harness.memory", json.dumps(point.asdict()), backend]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _main(spec, backend):
    from .points import BASELINE, Inputs, Point, module_call
    p = Point(**json.loads(spec))
    inp = Inputs(p)
    call = module_call(inp, None if backend == BASELINE else backend)
    call()  # warm-up: imports, compilation caches and first-touch allocations are not the point's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_mib("VmRSS")
    call()
    print(max(status_mib("VmHWM") - base, 0.0))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
