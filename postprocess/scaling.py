#!/usr/bin/python3
"""Scaling sweep logs (jobs/scaling.sh) -> efficiency table (markdown + csv) and plot.

Usage: /usr/bin/python3 postprocess/scaling.py DIR
Reads DIR/strong-P.log and DIR/weak-P.log, takes the s/iter of cmera's final line
("wrote ...model.h5  (final KL/window ..., X s/iter)"), and writes DIR/scaling.md,
DIR/scaling.csv and DIR/scaling.png. Strong efficiency is t_1 / (P t_P) at fixed N, weak
efficiency t_1 / t_P at N proportional to P; the smallest rank count stands in for P = 1
when the sweep does not include it (efficiencies are then relative to that count).
"""
import csv
import glob
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TIMING = re.compile(r"wrote .*model\.h5 .*, ([0-9.eE+-]+) s/iter\)")
HEADER = re.compile(r"scaling: mode (\w+) ranks (\d+) sites (\d+)")


def read_runs(directory):
    runs = []
    for path in sorted(glob.glob(os.path.join(directory, "*-*.log"))):
        text = open(path, errors="replace").read()
        header, timing = HEADER.search(text), TIMING.findall(text)
        if not header or not timing:
            print(f"scaling.py: skipping {path} (no timing line; job failed or still running?)")
            continue
        runs.append({"mode": header[1], "ranks": int(header[2]), "sites": int(header[3]),
                     "s_per_iter": float(timing[-1])})
    return runs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    runs = read_runs(directory)
    if not runs:
        sys.exit(f"scaling.py: no finished runs in {directory}")
    rows = []
    for mode in ("strong", "weak"):
        mine = sorted((r for r in runs if r["mode"] == mode), key=lambda r: r["ranks"])
        if not mine:
            continue
        base = mine[0]
        for r in mine:
            speedup = base["s_per_iter"] / r["s_per_iter"]
            scale = r["ranks"] / base["ranks"]
            eff = speedup / scale if mode == "strong" else speedup
            rows.append(dict(r, speedup=speedup, efficiency=eff))

    fields = ["mode", "ranks", "sites", "s_per_iter", "speedup", "efficiency"]
    with open(os.path.join(directory, "scaling.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    lines = ["| mode | ranks | sites | s/iter | speedup | efficiency |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['ranks']} | {r['sites']} | {r['s_per_iter']:.4f} | "
              f"{r['speedup']:.2f} | {r['efficiency']:.2f} |" for r in rows]
    table = "\n".join(lines) + "\n"
    open(os.path.join(directory, "scaling.md"), "w").write(table)
    print(table, end="")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode, marker in (("strong", "o"), ("weak", "s")):
        mine = [r for r in rows if r["mode"] == mode]
        if mine:
            ax.plot([r["ranks"] for r in mine], [r["efficiency"] for r in mine], marker=marker,
                    label=f"{mode} scaling")
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("MPI ranks")
    ax.set_ylabel("parallel efficiency")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "scaling.png"), dpi=120)
    print(f"wrote {directory}/scaling.md, scaling.csv, scaling.png")


if __name__ == "__main__":
    main()
