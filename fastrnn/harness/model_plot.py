"""The picture of a model profile: time per call against T, peak memory against T, and each
recurrent layer's share of a step, torch.nn beside fastrnn. `prof` is a
fastrnn.harness.model_report.ModelProfile, which says which copies it timed (IMPLS) and how a
step's time breaks into parts (parts)."""


def plot(prof, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    Ts = prof.config["seq_lens"]
    train = prof.config["train"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    for i, impl in enumerate(prof.IMPLS):
        rs = [r for r in prof.rows if r["impl"] == impl]
        axes[0].plot(Ts, [r["forward_s"] * 1e3 for r in rs], "s:", color=f"C{i}",
                     label=f"{impl} forward")
        if train:
            axes[0].plot(Ts, [r["train_s"] * 1e3 for r in rs], "o-", color=f"C{i}",
                         label=f"{impl} train")
        if all(r.get("peak_mib") is not None for r in rs):
            axes[1].plot(Ts, [r["peak_mib"] for r in rs], "o-", color=f"C{i}", label=impl)
    axes[0].set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="ms per call",
                title="time (solid: forward + backward, dotted: forward)")
    axes[1].set(xscale="log", xlabel="sequence length T", ylabel="MiB",
                title="peak memory of a " + ("training step" if train else "forward"))
    for ax in axes[:2]:
        ax.set_xticks(Ts, [str(t) for t in Ts])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    # Stacked bars, one pair (torch.nn, fastrnn) per T: each part's share of forward + backward.
    with_bd = [r for r in prof.rows if "breakdown" in r]
    if with_bd:
        names = [p for p, _, _ in prof.parts(with_bd[0]["breakdown"])]
        width = 0.4
        for k, impl in enumerate(prof.IMPLS):
            rs = [r for r in with_bd if r["impl"] == impl]
            bottom = [0.0] * len(rs)
            for j, name in enumerate(names):
                vals = [100 * next(f + b for p, f, b in prof.parts(r["breakdown"]) if p == name)
                        / (r["breakdown"]["forward_s"] + r["breakdown"]["backward_s"]) for r in rs]
                axes[2].bar([i + k * width for i in range(len(rs))], vals, width, bottom=bottom,
                            color=f"C{j + 2}", label=name.strip("`") if k == 0 else None,
                            edgecolor="white", hatch="//" if k else None)
                bottom = [a + v for a, v in zip(bottom, vals)]
        axes[2].set_xticks([i + width / 2 for i in range(len(Ts))], [str(t) for t in Ts])
        axes[2].set(xlabel="sequence length T (left: torch.nn, hatched: fastrnn)",
                    ylabel="% of a step", title="where a step's time goes")
        axes[2].legend(fontsize=8)
    else:
        axes[2].axis("off")
    fig.suptitle(f"{prof.config['model']}, batch {prof.config['batch']}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
