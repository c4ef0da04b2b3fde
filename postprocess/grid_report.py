#!/usr/bin/python3
"""Judges and plots grid (2D) models from the files cmera writes (run with Debian's python3).

criteria: for each `cmera eval --json` of a grid model, the worst |C_model(r)/C_data(r) - 1|
  over every r in the file along x, y and the diagonal, the energy per site
  e = -(C_x(1) + C_y(1)) (nearest-neighbour Ising, J = 1, two bonds per site) against the
  data's, and the pooled window KL; one table row per run, a JSON summary, exit 1 if a
  run fails a bound. With --data it also states the data's own noise on C(r): the
  standard error of the mean over B batches of whole configurations (batch means, so
  correlations inside a configuration are kept), relative to C(r), worst over r and
  axes. A C(r) bound below that noise would test the sample size, not the model: the
  script says so and fails.

plots: corr.png (C(r) of model and data along x, y, diagonal, log-log), samples.png
  (model samples next to data configurations), flow.png (magnetization, nearest-neighbour
  correlations and mutual information per layer, from the eval JSON's "flow"). Nothing is recomputed from the model: the plots show the numbers
  the program reported.

Usage: grid_report.py criteria --max-rel-corr 0.05 --max-rel-energy 0.02 --max-kl 0.035
                               [--data d.h5] [--summary s.json] [--label NAME ...] e1.json ...
       grid_report.py plots --eval eval.json [--samples s.h5 --data d.h5] --out DIR
"""
import argparse
import json
import os
import sys

import numpy as np

AXES = (("corr_x", "x", (1, 0)), ("corr_y", "y", (0, 1)), ("corr_diag", "diagonal", (1, 1)))


def spins(x):
    """s = 2x - 1 for a binary alphabet, x otherwise (the program's spin_value)."""
    return 2.0 * x - 1.0 if x.max() <= 1 else x.astype(np.float64)


def per_config_corr(s, step, rmax):
    """[S, rmax]: per configuration, <s_i s_{i + r step}> averaged over sites, r = 1..rmax."""
    dx, dy = step
    out = np.empty((s.shape[0], rmax))
    for r in range(1, rmax + 1):
        shifted = np.roll(np.roll(s, -r * dy, axis=1), -r * dx, axis=2)
        out[:, r - 1] = (s * shifted).mean(axis=(1, 2))
    return out


def data_noise(path, evals, batches):
    """Worst relative standard error of the data's C(r) over the axes and r of the evals."""
    import h5py
    with h5py.File(path, "r") as f:
        s = spins(f["configs"][...])
    worst = 0.0
    for key, _, step in AXES:
        rs = [r for e in evals if key in e for r in e[key]["r"]]
        if not rs:
            continue
        c = per_config_corr(s, step, max(rs))
        usable = (c.shape[0] // batches) * batches
        means = c[:usable].reshape(batches, -1, c.shape[1]).mean(axis=1)
        se = means.std(axis=0, ddof=1) / np.sqrt(batches)
        worst = max(worst, float(np.max(se / np.abs(c.mean(axis=0)))))
    return worst


def worst_rel(curve):
    model, data = np.asarray(curve["model"]), np.asarray(curve["data"])
    rel = np.abs(model / data - 1.0)
    k = int(np.argmax(rel))
    return float(rel[k]), int(curve["r"][k])


def energy(e, which):
    return -(e["corr_x"][which][0] + e["corr_y"][which][0])


def criteria(a):
    evals = [json.load(open(p)) for p in a.evals]
    labels = a.label or [os.path.basename(os.path.dirname(p)) or p for p in a.evals]
    ok, rows = True, []
    if a.data:
        noise = data_noise(a.data, evals, a.batches)
        enough = noise < a.max_rel_corr / 3
        print(f"data C(r) noise (batch means, {a.batches} batches): worst relative standard "
              f"error {noise:.4f} against the bound {a.max_rel_corr}: "
              f"{'below a third of it' if enough else 'TOO LARGE: more configurations needed'}")
        ok &= enough
    print(f"{'run':>16} {'pooled KL':>10} {'x worst':>9} {'y worst':>9} {'diag worst':>10} "
          f"{'e model':>8} {'e data':>8} {'de/e':>7}  verdict")
    for label, e in zip(labels, evals):
        row = {"run": label, "kl_pooled_window": e["kl_pooled_window"]}
        passed = e["kl_pooled_window"] <= a.max_kl
        for key, name, _ in AXES:
            rel, r = worst_rel(e[key])
            row[f"worst_rel_corr_{name}"], row[f"at_r_{name}"] = rel, r
            passed &= rel <= a.max_rel_corr
        em, ed = energy(e, "model"), energy(e, "data")
        row.update(energy_model=em, energy_data=ed, rel_energy=abs(em / ed - 1))
        passed &= row["rel_energy"] <= a.max_rel_energy
        row["pass"] = bool(passed)
        ok &= passed
        rows.append(row)
        print(f"{label:>16} {row['kl_pooled_window']:10.4g} {row['worst_rel_corr_x']:9.4f} "
              f"{row['worst_rel_corr_y']:9.4f} {row['worst_rel_corr_diagonal']:10.4f} {em:8.4f} "
              f"{ed:8.4f} {row['rel_energy']:7.4f}  {'PASS' if passed else 'FAIL'}")
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump({"bounds": {"max_rel_corr": a.max_rel_corr, "max_rel_energy": a.max_rel_energy,
                                  "max_kl_pooled": a.max_kl}, "runs": rows}, f, indent=1)
    return 0 if ok else 1


def plots(a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    e = json.load(open(a.eval))
    os.makedirs(a.out, exist_ok=True)
    fig, ax = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for axis, (key, name, _) in zip(ax, AXES):
        c = e[key]
        axis.loglog(c["r"], np.abs(c["data"]), "o", ms=4, label="data")
        axis.loglog(c["r"], np.abs(c["model"]), "-", label="model")
        axis.set(title=f"C(r) along {name}", xlabel="r")
    ax[0].set_ylabel("|C(r)|")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "corr.png"), dpi=120)
    if a.samples and a.data:
        import h5py
        with h5py.File(a.samples, "r") as f:
            model = f["configs"][: a.count]
        with h5py.File(a.data, "r") as f:
            data = f["configs"][: a.count]
        fig, ax = plt.subplots(2, a.count, figsize=(1.6 * a.count, 3.6))
        for k in range(a.count):
            for row, imgs, name in ((0, model, "model"), (1, data, "data")):
                ax[row, k].imshow(imgs[k], cmap="gray_r", interpolation="nearest")
                ax[row, k].set_xticks([]), ax[row, k].set_yticks([])
            ax[0, 0].set_ylabel("model"), ax[1, 0].set_ylabel("data")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "samples.png"), dpi=120)
    flow = e.get("flow")
    if flow:
        layers = [f["layer"] for f in flow]
        keys = ["magnetization", "nn_corr_x", "nn_corr_y", "nn_corr_diag",
                "mutual_information_x", "mutual_information_y"]
        fig, ax = plt.subplots(figsize=(6, 4))
        for k in keys:
            ax.plot(layers, [f[k] for f in flow], "o-", label=k)
        ax.set(xlabel="layer (0 = data scale)", title="learned flow per layer")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "flow.png"), dpi=120)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("criteria")
    c.add_argument("evals", nargs="+")
    c.add_argument("--max-rel-corr", type=float, required=True)
    c.add_argument("--max-rel-energy", type=float, required=True)
    c.add_argument("--max-kl", type=float, required=True)
    c.add_argument("--data")
    c.add_argument("--batches", type=int, default=20)
    c.add_argument("--label", action="append")
    c.add_argument("--summary")
    p = sub.add_parser("plots")
    p.add_argument("--eval", required=True)
    p.add_argument("--samples")
    p.add_argument("--data")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    sys.exit(criteria(a) if a.command == "criteria" else plots(a))


if __name__ == "__main__":
    main()
