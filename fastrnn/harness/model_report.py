"""The result of profiling a model (fastrnn.profile): the rows, what they say — growth of time
and memory with T as log-log slopes, the largest T that fits a memory budget — and the report
as JSON, Markdown and a plot."""
import json
import math

IMPLS = ("torch.nn", "fastrnn")
REST = "rest of the model"


def slope(xs, ys):
    """Least-squares slope of log y over log x: y grows like x^slope. None when fewer than two
    distinct x or a y that is not positive (no line to fit)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if y is not None and y > 0]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2 or len(pts) < len(xs):
        return None
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def _line(xs, ys):
    """(a, b) of the least-squares line y = a + b·x, or None with fewer than two distinct x."""
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def parse_size(text):
    """'4GiB', '512MiB', '1.5GB', '800M' -> MiB (binary units; GB and G read as GiB)."""
    units = {"": 1, "k": 2**-10, "m": 1, "g": 2**10, "t": 2**20}
    t = text.strip().lower().replace("ib", "").replace("b", "")
    num = t.rstrip("kmgt")
    try:
        value = float(num) * units[t[len(num):]]
    except (ValueError, KeyError):
        raise ValueError(f"memory budget: expected a size such as 4GiB or 512MiB, got "
                         f"{text!r}") from None
    if not value > 0:
        raise ValueError(f"memory budget: expected a positive size, got {text!r}")
    return value


class ModelProfile:
    """Rows of fastrnn.profile: one dict per (T, implementation) with forward_s, train_s,
    peak_mib, step_mib and breakdown (per recurrent layer and for the whole step)."""

    IMPLS = IMPLS

    def __init__(self, rows, config, machine):
        self.rows, self.config, self.machine = rows, config, machine

    @staticmethod
    def parts(breakdown):
        """(part, forward s, backward s) for each recurrent layer and the rest of the model."""
        layers = breakdown["layers"]
        out = [(f"`{n}`", v["forward_s"], v["backward_s"]) for n, v in layers.items()]
        rest_f = max(breakdown["forward_s"] - sum(v["forward_s"] for v in layers.values()), 0.0)
        rest_b = max(breakdown["backward_s"] - sum(v["backward_s"] for v in layers.values()), 0.0)
        return out + [(REST, rest_f, rest_b)]

    def __repr__(self):
        return f"ModelProfile({self.config['model']}, T={self.config['seq_lens']}, " \
               f"{len(self.rows)} rows)"

    def _of(self, impl):
        return [r for r in self.rows if r["impl"] == impl]

    def growth(self):
        """{impl: {quantity: log-log slope over the swept T}} for forward time, training time
        and the memory a training step adds."""
        out = {}
        for impl in IMPLS:
            rs = self._of(impl)
            Ts = [r["T"] for r in rs]
            out[impl] = {q: slope(Ts, [r.get(q) for r in rs])
                         for q in ("forward_s", "train_s", "step_mib")}
        return out

    def fits(self, budget_mib):
        """{impl: (largest measured T whose peak memory fits, estimated largest T or None)}. The
        estimate comes from a straight line through peak memory against T (a training step keeps
        every step's activations, so memory grows linearly in T) and is only an estimate."""
        out = {}
        for impl in IMPLS:
            rs = [r for r in self._of(impl) if r.get("peak_mib") is not None]
            fit_T = max((r["T"] for r in rs if r["peak_mib"] <= budget_mib), default=None)
            line = _line([r["T"] for r in rs], [r["peak_mib"] for r in rs]) if rs else None
            est = None
            if line and line[1] > 0:
                est = int((budget_mib - line[0]) / line[1])
                est = est if est >= 1 else None
            out[impl] = (fit_T, est)
        return out

    def to_json(self, budget_mib=None):
        d = dict(config=self.config, machine=self.machine, rows=self.rows,
                 growth=self.growth())
        if budget_mib:
            d["memory_budget_mib"] = budget_mib
            d["fits"] = {k: dict(zip(("largest_measured_T", "estimated_T"), v))
                         for k, v in self.fits(budget_mib).items()}
        return json.dumps(d, indent=1)

    def markdown(self, budget_mib=None, plot_name=None):
        """The report: times and speed-ups, peak memory, where the time goes, growth with T and,
        with a budget, the largest T that fits."""
        c, m = self.config, self.machine
        where = m.get("gpu") or f"{m['cpu']} ({m['cores']} cores), {m['torch threads']} torch threads"
        md = [f"# Profile of {c['model']}: torch.nn beside fastrnn", "",
              f"Measured on {where}, torch {m['torch']}, {m['measured at']}. Batch {c['batch']}, "
              f"device {c['device']}, fastrnn backend {c['backend']!r}. Recurrent layers: "
              + ", ".join(f"`{n}` {r}" for n, r in c["layers"].items()) + ".", "",
              "Times are medians of interleaved rounds (every copy once per round); `train` is "
              "forward + backward of the loss. Peak memory is that of a training step: "
              + ("torch's peak allocation on the GPU." if c["device"].startswith("cuda") else
                 "the process's peak resident memory with its high-water mark reset before the "
                 "step (both copies of the model, parameters and gradients included)."), "",
              "## Time and memory", "",
              "| T | forward ms torch.nn | forward ms fastrnn | speed-up | train ms torch.nn | "
              "train ms fastrnn | speed-up | peak MiB torch.nn | peak MiB fastrnn |",
              "|---|---|---|---|---|---|---|---|---|"]
        for T in c["seq_lens"]:
            a, b = (next(r for r in self.rows if r["T"] == T and r["impl"] == i) for i in IMPLS)
            md.append(f"| {T} | {_ms(a['forward_s'])} | {_ms(b['forward_s'])} | "
                      f"{_ratio(a['forward_s'], b['forward_s'])} | {_ms(a['train_s'])} | "
                      f"{_ms(b['train_s'])} | {_ratio(a['train_s'], b['train_s'])} | "
                      f"{_mib(a.get('peak_mib'))} | {_mib(b.get('peak_mib'))} |")
        if any("breakdown" in r for r in self.rows):
            md += ["", "## Where the time goes", "",
                   "From a separate run with a clock on each recurrent layer (forward and "
                   "backward hooks; the timed run above has none). Share = of the whole forward "
                   "or backward.", "",
                   "| T | copy | part | forward ms | share | backward ms | share |",
                   "|---|---|---|---|---|---|---|"]
            for r in self.rows:
                for part, f, b in self.parts(r["breakdown"]):
                    bd = r["breakdown"]
                    md.append(f"| {r['T']} | {r['impl']} | {part} | {_ms(f)} | "
                              f"{_share(f, bd['forward_s'])} | {_ms(b)} | "
                              f"{_share(b, bd['backward_s'])} |")
        g = self.growth()
        md += ["", "## Growth with sequence length", "",
               "k in time ∝ T^k: the least-squares slope of log(time) over log(T) across the "
               "swept T (1 = linear). Step memory is what a training step adds to the "
               "process.", "",
               "| copy | forward time | training time | step memory |", "|---|---|---|---|"]
        for impl in IMPLS:
            md.append(f"| {impl} | " + " | ".join(
                "–" if g[impl][q] is None else f"T^{g[impl][q]:.2f}"
                for q in ("forward_s", "train_s", "step_mib")) + " |")
        if budget_mib:
            md += ["", f"## Memory budget {budget_mib:.0f} MiB", "",
                   "Largest swept T whose training step's peak memory fits, and an *estimate* "
                   "from a straight line through peak memory against T (measured points only; "
                   "the estimate is not a measurement).", "",
                   "| copy | largest measured T that fits | estimated largest T |", "|---|---|---|"]
            for impl, (fit_T, est) in self.fits(budget_mib).items():
                md.append(f"| {impl} | {fit_T or 'none'} | "
                          f"{'–' if est is None else f'≈ {est} (estimate)'} |")
        if plot_name:
            md += ["", f"![profile]({plot_name})"]
        return "\n".join(md) + "\n"

    def plot(self, path):
        from .model_plot import plot
        plot(self, path)


def _ms(s):
    return "–" if s is None else f"{s * 1e3:.3g}"


def _mib(v):
    return "–" if v is None else f"{v:.0f}"


def _ratio(a, b):
    return "–" if a is None or b is None else f"{a / b:.2f}×"


def _share(part, whole):
    return f"{100 * part / whole:.0f} %" if whole else "–"
