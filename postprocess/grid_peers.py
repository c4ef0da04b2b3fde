#!/usr/bin/python3
"""cmera against what a user would pick instead, on grid data [S, Ly, Lx] (MNIST, critical
2D Ising), scored with the numbers `cmera eval --json` reports for a grid model.

Peers: the gated PixelCNN of postprocess/ar_peer.py (exact likelihood, raster order) and a
baseline of independent pixels (one Bernoulli per position, add-1/2 smoothed). cmera's row
is read from its eval JSON, never recomputed. Numbers, all on the held-out file:
  kl_pooled_window  KL(q || p) of the translation-averaged 3 x 3 window histogram (512
                    cells; windows periodic, place 3 dy + dx, as docs/design-grid.md §2)
  kl_per_window     mean over the Ly Lx window positions of KL(q_w || p_w)
  corr_{x,y,diag}   C(r) = <s(x, y) s(x', y')>, s = 2x - 1, at offsets (r, 0), (0, r),
                    (r, r), r = 1 .. L/2, periodic: worst |C_m - C_d| and worst
                    |C_m / C_d - 1| (the critical job's measure, docs/design.md §3)
  seconds           fit + sampling wall time (AR: its fit up to the kept epoch, the
                    most favourable reading, plus its draws; the whole grid reported too)
Trade-off: the peers' window histograms and C(r) come from their samples, so every number
carries a sampling floor, MEASURED two ways and reported next to it: "data floor" scores
as many *training* configurations as the peer drew, in place of its draws (what a perfect
model would score); "halves" is the KL between the two halves of the peer's own draws.
The smoothing keeps log p finite and adds to both floors alike. The AR settings are chosen
on held-out likelihood (selection on the test file, which favours the peer).

Usage: grid_peers.py --train T.h5 --test H.h5 --out DIR [--cmera-eval eval.json]
                     [--cmera-seconds S] [--quick] [AR grid options, see --help]
"""
import argparse
import json
import os
import time

import numpy as np

import peers

CELLS = 512  # 3 x 3 binary windows


def window_counts(X):
    """[Ly, Lx, 512] counts of the periodic 3 x 3 windows with corner (x, y); place
    3 dy + dx, place 0 most significant (docs/design-grid.md §2)."""
    X = X.astype(np.int64)
    codes = np.zeros_like(X)
    for dy in range(3):
        for dx in range(3):
            codes = 2 * codes + np.roll(X, (-dy, -dx), axis=(1, 2))
    _, ly, lx = X.shape
    flat = codes + CELLS * np.arange(ly * lx).reshape(ly, lx)
    return np.bincount(flat.ravel(), minlength=ly * lx * CELLS).reshape(ly, lx, CELLS)


def window_kls(held_counts, model_counts):
    """Pooled and per-position window KL of held-out counts against a model's sampled
    counts (add-1/2 smoothed)."""
    q = held_counts.reshape(-1, CELLS).astype(np.float64)
    p = model_counts.reshape(-1, CELLS).astype(np.float64)
    pooled = q.sum(axis=0, keepdims=True)
    return {"kl_pooled_window": peers.kl_per_window(pooled / pooled.sum(),
                                                    peers.smoothed(p.sum(axis=0, keepdims=True))),
            "kl_per_window": peers.kl_per_window(q / q.sum(axis=1, keepdims=True),
                                                 peers.smoothed(p))}


def grid_corr(X):
    """C(r) along x, y and the diagonal, r = 1 .. L/2 (the diagonal to min(Lx, Ly)/2)."""
    s = 2.0 * X.astype(np.float64) - 1.0
    _, ly, lx = X.shape
    shifts = {"x": lambda r: (0, r), "y": lambda r: (r, 0), "diag": lambda r: (r, r)}
    reach = {"x": lx // 2, "y": ly // 2, "diag": min(lx, ly) // 2}
    return {d: np.array([np.mean(s * np.roll(s, (-f(r)[0], -f(r)[1]), axis=(1, 2)))
                         for r in range(1, reach[d] + 1)]) for d, f in shifts.items()}


def corr_errors(model, data):
    """Worst absolute and relative C(r) error per direction and over all three, with the
    direction and r where each worst one sits."""
    out = {}
    for d in ("x", "y", "diag"):
        m, c = np.asarray(model[d]), np.asarray(data[d])
        ab, rel = np.abs(m - c), np.abs(m / c - 1.0)
        out[d] = {"abs": float(ab.max()), "abs_at_r": int(ab.argmax()) + 1,
                  "rel": float(rel.max()), "rel_at_r": int(rel.argmax()) + 1}
    for kind in ("abs", "rel"):
        d = max(("x", "y", "diag"), key=lambda k: out[k][kind])
        out[f"worst_{kind}"] = out[d][kind]
        out[f"worst_{kind}_at"] = f"{d}, r = {out[d][kind + '_at_r']}"
    return out


def sampled_scores(S, held_counts, c_data):
    """Every quality number of a model known through its samples S."""
    return {**window_kls(held_counts, window_counts(S)),
            "corr": corr_errors(grid_corr(S), c_data), "samples": int(len(S))}


def halves_floor(S):
    """Pooled window KL between the two halves of S: zero signal, sampling noise only."""
    h = len(S) // 2
    return window_kls(window_counts(S[:h]), window_counts(S[h:2 * h]))["kl_pooled_window"]


# ---------------------------------------------------------------- peers
def independent_peer(train, held, count, seed):
    """One Bernoulli per position, add-1/2 smoothed; exact held-out NLL per site."""
    t0 = time.time()
    p = (train.sum(axis=0) + 0.5) / (len(train) + 1.0)
    fit = time.time() - t0
    t0 = time.time()
    S = (np.random.RandomState(seed).rand(count, *p.shape) < p).astype(np.uint8)
    sample = time.time() - t0
    nll = -np.mean(held * np.log(p) + (1 - held) * np.log1p(-p))
    return S, {"setting": "p(x_i) = (count_i + 1/2) / (S + 1)", "fit_seconds": fit,
               "sample_seconds": sample, "heldout_nll_per_site": float(nll)}


def ar_peer_fit(train, held, grid, count, seed):
    """The gated PixelCNN at every (channels, learning rate) of the grid, best epoch kept on
    held-out NLL; the best setting draws the samples. One torch thread: the machine is
    shared, and intra-op threads spinning in barriers make times swing (as in peers.py)."""
    import torch
    import ar_peer
    torch.set_num_threads(1)
    fits, nets = [], []
    for ch in grid["channels"]:
        for lr in grid["learning_rates"]:
            net, info = ar_peer.fit(train, held, ch, lr, grid["epochs"], grid["batch"],
                                    grid_layers=grid["layers"])
            fits.append({"setting": f"channels={ch} lr={lr} epoch={info['best_epoch']} of "
                                    f"{grid['epochs']} batch={grid['batch']} layers={grid['layers']} "
                                    f"params={info['parameters']} train={len(train)}",
                         **{k: info[k] for k in ("fit_seconds", "total_seconds",
                                                 "heldout_nll_per_site", "nll_history")}})
            nets.append(net)
    k = min(range(len(fits)), key=lambda i: fits[i]["heldout_nll_per_site"])
    t0 = time.time()
    S = ar_peer.draw(nets[k], count, held.shape[1:], seed)
    best = dict(fits[k], sample_seconds=time.time() - t0,
                grid_seconds=sum(f["total_seconds"] for f in fits))
    return S, best, fits


def cmera_row(path, seconds, c_data):
    """cmera's figures exactly as its eval JSON gives them; C(r) errors against the
    data's C(r) in the same file (and how far that is from this script's held-out C(r))."""
    with open(path) as fh:
        e = json.load(fh)
    model = {d: e[f"corr_{d}"]["model"] for d in ("x", "y", "diag")}
    data = {d: e[f"corr_{d}"]["data"] for d in ("x", "y", "diag")}
    row = {"setting": os.path.abspath(path), "kl_pooled_window": e["kl_pooled_window"],
           "kl_per_window": e["kl_per_window"], "kl_floor": e.get("kl_floor"),
           "corr": corr_errors(model, data),
           "data_corr_vs_heldout": max(float(np.max(np.abs(np.asarray(data[d]) - c_data[d])))
                                       for d in data if len(data[d]) == len(c_data[d]))}
    if seconds is not None:
        row["seconds"] = seconds
    return row


QUALITY = {"kl_pooled_window": lambda m: m["kl_pooled_window"],
           "kl_per_window": lambda m: m["kl_per_window"],
           "corr_worst_abs": lambda m: m["corr"]["worst_abs"],
           "corr_worst_rel": lambda m: m["corr"]["worst_rel"],
           "seconds": lambda m: m.get("seconds", np.inf)}


def winners(models):
    """Lowest value of each number among the models that report it."""
    return {q: min(models, key=lambda m: f(models[m])) for q, f in QUALITY.items()
            if any(np.isfinite(f(x)) for x in models.values())}


# ---------------------------------------------------------------- outputs
def write_table(rep, path):
    rows = [f"{rep['label']}: train {rep['train_shape']}, held-out {rep['heldout_shape']}", "",
            "| model (setting) | pooled 3x3 KL | per-position KL | worst C(r) abs err (at) | "
            "worst C(r) rel err (at) | held-out NLL/site | seconds | wins |",
            "|---|---|---|---|---|---|---|---|"]
    for name, m in rep["models"].items():
        wins = [q for q, w in rep["winner"].items() if w == name]
        src = f" ({m['samples']} draws)" if "samples" in m else " (its eval)"
        nll = f"{m['heldout_nll_per_site']:.4f}" if "heldout_nll_per_site" in m else "-"
        secs = f"{m['seconds']:.1f}" if "seconds" in m else "-"
        rows.append(f"| {name} ({m['setting']}) | {m['kl_pooled_window']:.2e}{src} | "
                    f"{m['kl_per_window']:.3f} | {m['corr']['worst_abs']:.3f} "
                    f"({m['corr']['worst_abs_at']}) | {m['corr']['worst_rel']:.3f} "
                    f"({m['corr']['worst_rel_at']}) | {nll} | {secs} | {', '.join(wins) or '-'} |")
    f = rep["data_floor"]
    rows.append(f"| data floor ({f['samples']} training configs as draws) | "
                f"{f['kl_pooled_window']:.2e} | {f['kl_per_window']:.3f} | "
                f"{f['corr']['worst_abs']:.3f} ({f['corr']['worst_abs_at']}) | "
                f"{f['corr']['worst_rel']:.3f} ({f['corr']['worst_rel_at']}) | | | |")
    rows.append("")
    rows.append("Pooled KL between the halves of each peer's draws: " + "; ".join(
        f"{n} {m['kl_pooled_halves']:.2e}" for n, m in rep["models"].items()
        if "kl_pooled_halves" in m))
    if "kl_floor" in rep["models"].get("cmera", {}):
        rows.append(f"cmera eval's kl_floor: {rep['models']['cmera']['kl_floor']}")
    with open(path, "w") as fh:
        fh.write("\n".join(rows) + "\n")


def plot_samples(images, path, per_row=8):
    """One row of images per model, data first; images spread evenly over each set (a
    dataset file may be sorted by class)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(images), per_row, figsize=(1.3 * per_row, 1.4 * len(images)),
                             squeeze=False)
    for ax_row, (name, S) in zip(axes, images.items()):
        for k, ax in zip(np.linspace(0, len(S) - 1, per_row).astype(int), ax_row):
            ax.imshow(S[k], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--label", help="dataset name in the table (default: the train file's)")
    ap.add_argument("--cmera-eval", help="`cmera eval --json` of the grid model on --test")
    ap.add_argument("--cmera-seconds", type=float, help="cmera's train + sample wall time")
    ap.add_argument("--quick", action="store_true", help="tiny AR grid (smoke test)")
    ap.add_argument("--draws", type=int, default=2000, help="samples per peer")
    ap.add_argument("--ar-channels", default="16,32")
    ap.add_argument("--ar-lrs", default="3e-3,1e-2")
    ap.add_argument("--ar-epochs", type=int, default=3)
    ap.add_argument("--ar-layers", type=int, default=4)
    ap.add_argument("--ar-batch", type=int, default=64)
    ap.add_argument("--ar-train-limit", type=int, default=0,
                    help="fit the AR net on the first N training configs only (0: all)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    train, held = peers.load(a.train), peers.load(a.test)
    grid = {"channels": [int(c) for c in a.ar_channels.split(",")],
            "learning_rates": [float(x) for x in a.ar_lrs.split(",")], "epochs": a.ar_epochs,
            "layers": a.ar_layers, "batch": a.ar_batch}
    if a.quick:
        grid.update(channels=[4], learning_rates=[1e-2], epochs=1, layers=2)
    limit = a.ar_train_limit or len(train)
    held_counts, c_data = window_counts(held), grid_corr(held)
    rep = {"label": a.label or os.path.basename(a.train).removesuffix(".h5"),
           "train_shape": list(train.shape), "heldout_shape": list(held.shape),
           "ar_grid": grid, "ar_train_configs": min(limit, len(train)), "models": {}}
    floor_n = min(a.draws, len(train))
    rep["data_floor"] = sampled_scores(train[:floor_n], held_counts, c_data)
    images = {"data (held-out)": held}

    S, m = independent_peer(train, held, a.draws, seed=2)
    peers_run = [("independent", S, m)]
    S, m, rep["ar_all"] = ar_peer_fit(train[:limit], held, grid, a.draws, seed=2)
    peers_run.append(("pixelcnn", S, m))
    for name, S, m in peers_run:
        m.update(sampled_scores(S, held_counts, c_data), kl_pooled_halves=halves_floor(S),
                 seconds=m["fit_seconds"] + m["sample_seconds"])
        rep["models"][name] = m
        images[name] = S
    if a.cmera_eval:
        rep["models"]["cmera"] = cmera_row(a.cmera_eval, a.cmera_seconds, c_data)
    rep["winner"] = winners(rep["models"])
    rep["data_corr"] = {d: c.tolist() for d, c in c_data.items()}
    with open(os.path.join(a.out, "grid_peers.json"), "w") as fh:
        json.dump(rep, fh, indent=1)
    write_table(rep, os.path.join(a.out, "grid_peers_table.md"))
    plot_samples(images, os.path.join(a.out, "grid_peers_samples.png"))
    print(open(os.path.join(a.out, "grid_peers_table.md")).read())


if __name__ == "__main__":
    main()
