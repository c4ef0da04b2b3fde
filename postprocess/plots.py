#!/usr/bin/python3
"""Plots of one trained model from the files cmera writes (run with Debian's python3):

  training.png     objective and window KL per iteration (model.h5 /history)
  correlation.png  C(r) of model and data on log-log axes, optionally a second model
                   (e.g. window-only training) for contrast, and |C_model/C_data - 1|
  samples.png      ancestral samples next to data rows, as images (one row per sample)
  flow.png         the learned flow: neighbour mutual information and the marginal of
                   the coarse variables per layer, and scaling dimensions per layer

Everything comes from model.h5, `cmera eval --json` output and dataset-format .h5 files;
nothing is recomputed, so the plots show exactly the numbers the program reported.

Usage: plots.py --model model.h5 --eval eval.json [--contrast eval2.json]
                [--samples samples.h5 --data data.h5] --out DIR
"""
import argparse
import json
import os

import h5py
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Known scaling dimensions of the 2D Ising CFT below 2.5 (sigma, epsilon, and the
# descendants sigma + 1, epsilon + 1 / T-bar, 2): what a critical Ising fit should show.
ISING_DELTAS = {"1/8": 0.125, "1": 1.0, "9/8": 1.125, "2": 2.0}


def plot_training(model_path, out):
    with h5py.File(model_path, "r") as f:
        obj = f["history/objective"][...]
        kl = f["history/kl"][...]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    it = np.arange(1, len(obj) + 1)
    # Distance to the best value reached, on a log scale: shows the convergence rate and
    # any non-monotone steps of the optimizer, which a linear axis hides.
    gap = obj.max() - obj
    ax[0].semilogy(it, np.where(gap > 0, gap, np.nan))
    ax[0].set(xlabel="iteration", ylabel="max objective - objective (nats/window)",
              title="objective (windows + pair terms)")
    ax[1].semilogy(it, kl)
    ax[1].set(xlabel="iteration", ylabel="KL per window (nats)", title="window KL")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "training.png"), dpi=110)
    plt.close(fig)


def plot_correlation(ev, contrast, out):
    r = np.array(ev["corr"]["r"])
    cd, cm = np.array(ev["corr"]["data"]), np.array(ev["corr"]["model"])
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].loglog(r, cd, "ko", ms=3, label="data")
    ax[0].loglog(r, cm, "C0-", label="model (windows + pairs)")
    if contrast is not None:
        cc = np.array(contrast["corr"]["model"])
        # Where the window-only C(r) turns negative a log axis cannot show it: gaps.
        ax[0].loglog(r, np.where(cc > 0, cc, np.nan), "C3--", label="model (windows only)")
        ax[0].set_ylim(bottom=max(1e-4, 0.3 * np.nanmin(np.where(cc > 0, cc, np.nan))))
        ax[1].semilogx(r, np.abs(cc / cd - 1), "C3--", label="windows only")
    ax[0].set(xlabel="r", ylabel="C(r) = <s_i s_i+r>", title="two-point function (exact)")
    ax[0].legend()
    ax[1].semilogx(r, np.abs(cm / cd - 1), "C0-", label="windows + pairs")
    ax[1].axhline(0.02, color="gray", ls=":", label="2%")
    ax[1].set_yscale("log")
    ax[1].set(xlabel="r", ylabel="|C_model / C_data - 1|", title="relative error, every r")
    ax[1].legend()
    for a in ax:
        a.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "correlation.png"), dpi=110)
    plt.close(fig)


def spread_rows(path, count):
    """`count` rows spread evenly over the file: for rows of 2D configurations written
    consecutively, rows far apart come from different configurations."""
    with h5py.File(path, "r") as f:
        c = f["configs"]
        idx = np.linspace(0, c.shape[0] - 1, min(count, c.shape[0])).astype(int)
        return np.stack([c[i].reshape(-1) for i in idx])


def plot_samples(samples_path, data_path, out, count=128):
    s, d = spread_rows(samples_path, count), spread_rows(data_path, count)
    fig, ax = plt.subplots(1, 2, figsize=(10, 5.4))
    for a, x, title in ((ax[0], d, "data rows"), (ax[1], s, "model samples")):
        a.imshow(x, cmap="gray_r", interpolation="nearest", aspect="auto")
        a.set(title=f"{title} ({x.shape[0]} x {x.shape[1]})", xlabel="site", ylabel="sample")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "samples.png"), dpi=110)
    plt.close(fig)


def plot_flow(ev, contrast, out):
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    runs = [(ev, "C0", "windows + pairs")]
    if contrast is not None:
        runs.append((contrast, "C3", "windows only"))
    for e, color, label in runs:
        layers = [f["layer"] for f in e["flow"]]
        ax[0].plot(layers, [f["mutual_information"] for f in e["flow"]], "o-", color=color,
                   label=label)
        ax[1].plot(layers, [f["marginal"][-1] for f in e["flow"]], "o-", color=color, label=label)
    ax[0].set(xlabel="layer", ylabel="I(x_i; x_i+1) (nats)",
              title="neighbour mutual information per layer")
    ax[1].set(xlabel="layer", ylabel="P(x = last value)", title="coarse-variable marginal",
              ylim=(0, 1))
    ax[0].legend()
    ax[1].legend()
    sc = ev.get("scaling")
    if sc:
        per = sc["per_layer"]
        n = min(5, len(sc["delta"]))
        for k in range(1, n):
            ax[2].plot([p["layers"][0] for p in per], [p["delta"][k] for p in per], "o-",
                       color=f"C{k}", label=f"Delta_{k} per layer")
            ax[2].axhline(sc["delta"][k], color=f"C{k}", ls="--", lw=1)
        for name, v in ISING_DELTAS.items():
            ax[2].axhline(v, color="gray", ls=":", lw=0.8)
            ax[2].text(ax[2].get_xlim()[1], v, f" {name}", va="center", color="gray", fontsize=8)
        ax[2].set(xlabel="layer", ylabel="Delta = -log2 |lambda|", ylim=(0, 2.5),
                  title=f"scaling dimensions (dashed: layers {sc['layers'][0]}-{sc['layers'][-1]})")
        ax[2].legend(fontsize=8)
    else:
        ax[2].axis("off")
    for a in ax[: 3 if sc else 2]:
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(os.path.join(out, "flow.png"), dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--contrast", help="eval JSON of a second model (e.g. windows only)")
    ap.add_argument("--samples")
    ap.add_argument("--data")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ev = json.load(open(a.eval))
    contrast = json.load(open(a.contrast)) if a.contrast else None
    plot_training(a.model, a.out)
    plot_correlation(ev, contrast, a.out)
    plot_flow(ev, contrast, a.out)
    written = ["training.png", "correlation.png", "flow.png"]
    if a.samples and a.data:
        plot_samples(a.samples, a.data, a.out)
        written.append("samples.png")
    print("plots: " + ", ".join(os.path.join(a.out, w) for w in written))


if __name__ == "__main__":
    main()
