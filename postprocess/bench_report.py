#!/usr/bin/env python3
"""Turns the raw outputs of jobs/bench-local.sh into bench-results/summary.json, a
Markdown table (table.md, pasted into the README) and plots (PNG).

Every ratio is formed from numbers measured in the same run on the same machine: the
statistics pass against that run's memcpy, the sweep against that run's Eigen GEMM. The
GEMM yardstick is the n = 256 rate (Eigen's steady rate, the stricter denominator).
Timings are reported, never asserted.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, {platform.node()}"


def bench(path):
    with open(path) as f:
        return {b["name"]: b for b in json.load(f)["benchmarks"]}


def wins(peer_result, model):
    """The quality numbers `model` is best on for one dataset ("-" if none)."""
    won = [k for k, w in peer_result.get("winner", {}).items() if w == model]
    return "best on " + ", ".join(won) if won else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--seconds", type=float, default=None, help="wall time of the whole run")
    args = ap.parse_args()
    d = args.results
    stats, sweep = bench(f"{d}/stats.json"), bench(f"{d}/sweep.json")
    runs = {}
    with open(f"{d}/runs.tsv") as f:
        header = f.readline().split()
        for line in f:
            row = dict(zip(header, line.split()))
            runs[row["name"]] = row
    with open(f"{d}/peers/peers.json") as f:
        peers = json.load(f)
    with open(f"{d}/pairs/pairs.json") as f:
        pairs = json.load(f)
    with open(f"{d}/eval/eval.json") as f:
        evaluation = json.load(f)
    grid = bench(f"{d}/grid.json")
    mach = machine()

    copy = stats["BM_Memcpy/real_time"]["bytes_per_second"]
    read = stats["BM_DatasetRead/real_time"]["bytes_per_second"]
    passed = stats["BM_StatisticsPass/real_time"]["bytes_per_second"]
    passed_grid = stats["BM_GridStatisticsPass/real_time"]["bytes_per_second"]
    gemm = sweep["BM_EigenGemm/n:256/real_time"]["flops"]
    gemm64 = sweep["BM_EigenGemm/n:64/real_time"]["flops"]
    rate = {c: sweep[f"BM_Sweep/chi:{c}/tied:1/threads:1/real_time"]["flops"] for c in (2, 4, 8)}
    rate_bin = {c: sweep[f"BM_SweepBinaryData/chi:{c}/tied:1/threads:1/real_time"]["flops"] for c in (4, 8)}
    spi = lambda n: float(runs[n]["s_per_iter"])  # noqa: E731
    samples = {runs[n]["samples"]: spi(n) for n in runs if n.startswith("samples_")}
    t1s, t2 = spi("strong_np1"), spi("np2")

    summary = {
        "machine": mach,
        "date": datetime.date.today().isoformat(),
        "git": subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True).stdout.strip(),
        "command": "jobs/bench-local.sh",
        "bench_wall_seconds": args.seconds,
        "load_average_at_report": open("/proc/loadavg").read().split()[:3],
        "cpu_share_of_wall": {n.split("/real_time")[0]: b["cpu_time"] / b["real_time"]
                              for n, b in {**stats, **sweep}.items()},
        "device_machine": "not available to this task: no GPU and no runs beyond 2 ranks",
        "stats_fraction_of_copy_bandwidth": passed / copy,
        "stats_detail": {"pass_bytes_per_s": passed, "memcpy_bytes_per_s": copy,
                         "hdf5_read_only_bytes_per_s": read,
                         "read_share_of_pass_time": passed / read, "ranks": 1, "threads": 1},
        "stats_grid_fraction_of_copy_bandwidth": passed_grid / copy,
        "stats_grid_detail": {"pass_bytes_per_s": passed_grid, "memcpy_bytes_per_s": copy,
                              "grid": "64 x 64, 3 x 3 windows (512 cells each), random bits",
                              "ranks": 1, "threads": 1},
        "sweep_fraction_of_gemm": {str(c): rate[c] / gemm for c in rate},
        "sweep_detail": {"gemm256_flops_per_s": gemm, "gemm64_flops_per_s": gemm64,
                         "sweep_flops_per_s": {str(c): v for c, v in rate.items()},
                         "binary_data_fraction_of_gemm": {str(c): v / gemm for c, v in rate_bin.items()},
                         "flops": "2mnk per product of descend_pair + ascend_pair (reverse "
                                  "recomputes the isometry stages), all layers at chi"},
        "seconds_per_iteration_vs_samples": samples,
        "seconds_per_iteration_vs_samples_spread": max(samples.values()) / min(samples.values()),
        "statistics_pass_seconds_vs_samples": {runs[n]["samples"]: float(runs[n]["stats_s"])
                                               for n in runs if n.startswith("samples_")},
        "openmp_speedup_2_threads": t1s / spi("omp2_np1"),
        "weak_efficiency": {"machine": mach, "1": 1.0, "2": spi("weak_np1") / t2,
                            "sites_per_rank": int(runs["weak_np1"]["sites"])},
        "strong_efficiency": {"machine": mach, "1": 1.0, "2": t1s / (2 * t2),
                              "sites": int(runs["strong_np1"]["sites"]), "chi": 4},
        "pairs_over_windows": {k: v["pairs_over_windows"] for k, v in pairs["cases"].items()},
        "pairs_detail": pairs,
        "openmp_speedup_2_threads_pairs": pairs["openmp_speedup_2_threads_pairs"],
        "eval_seconds": evaluation["eval_seconds"],
        "eval_seconds_grid256": evaluation["grid"]["eval_seconds"],
        "eval_detail": evaluation,
        "grid_window_kernels": {n.split("/real_time")[0]: b["real_time"] for n, b in grid.items()
                                if "real_time" in b},
        "peers": {k: v for k, v in peers.items() if k != "method"},
        "peers_method": peers["method"],
    }
    for k in summary["peers"].values():
        for drop in ("hmm_all", "rbm_all", "ar_all"):
            k.pop(drop, None)
    goals = {
        "stats_fraction_of_copy_bandwidth >= 0.8": summary["stats_fraction_of_copy_bandwidth"] >= 0.8,
        "stats_grid_fraction_of_copy_bandwidth >= 0.8":
            summary["stats_grid_fraction_of_copy_bandwidth"] >= 0.8,
        "sweep_fraction_of_gemm >= 0.25 at chi 4, 8": all(rate[c] / gemm >= 0.25 for c in (4, 8)),
        "seconds_per_iteration flat (max/min < 1.5)": summary["seconds_per_iteration_vs_samples_spread"] < 1.5,
        "weak_efficiency >= 0.9": summary["weak_efficiency"]["2"] >= 0.9,
        "strong_efficiency >= 0.7": summary["strong_efficiency"]["2"] >= 0.7,
        "pairs_over_windows <= 2 (chains, every case)": all(
            v <= 2 for k, v in summary["pairs_over_windows"].items() if not k.startswith("grid_")),
        "pairs_over_windows <= 3 (grids, L = 64 and 256)": all(
            v <= 3 for k, v in summary["pairs_over_windows"].items() if k.startswith("grid_")),
        "openmp_speedup_2_threads_pairs >= 1.8": summary["openmp_speedup_2_threads_pairs"] >= 1.8,
        "eval_seconds <= 10 (N = 65536, 2 ranks)": summary["eval_seconds"] <= 10,
        "eval_seconds <= 10 (256 x 256 grid, 2 ranks)": summary["eval_seconds_grid256"] <= 10,
        "peers: cmera better on all quality numbers": all(
            p["cmera_better_on_all_quality"] for p in summary["peers"].values()),
        "peers: cmera reaches best peer KL in >= 10x less time": all(
            p["cmera_reaches_best_peer_kl"] and p.get("time_ratio_best_peer_over_cmera", 0) >= 10
            for p in summary["peers"].values()),
    }
    summary["goals_met"] = goals
    with open(f"{d}/summary.json", "w") as f:
        json.dump(summary, f, indent=1)

    rows = [("statistics pass / memcpy (1 rank)", f"{summary['stats_fraction_of_copy_bandwidth']:.3f}",
             f"{passed / 1e9:.2f} GB/s vs {copy / 1e9:.2f} GB/s", ">= 0.8"),
            ("statistics pass / memcpy, 3 x 3 grid windows (1 rank)",
             f"{summary['stats_grid_fraction_of_copy_bandwidth']:.3f}",
             f"{passed_grid / 1e9:.2f} GB/s vs {copy / 1e9:.2f} GB/s, 64 x 64 grid", ">= 0.8")]
    for c in (2, 4, 8):
        rows.append((f"sweep / Eigen GEMM, chi = {c}", f"{rate[c] / gemm:.3f}",
                     f"{rate[c] / 1e9:.2f} vs {gemm / 1e9:.2f} GFLOP/s", ">= 0.25 (chi >= 4)"))
    rows.append(("s/iter at S = " + ", ".join(samples), ", ".join(f"{v:.4f}" for v in samples.values()),
                 f"max/min {summary['seconds_per_iteration_vs_samples_spread']:.2f}", "flat"))
    rows.append(("OpenMP speedup 1 -> 2 threads", f"{summary['openmp_speedup_2_threads']:.2f}",
                 "N = 2^20, chi = 4", "-"))
    rows.append(("weak efficiency, 2 ranks", f"{summary['weak_efficiency']['2']:.2f}",
                 "2^19 sites per rank, chi = 4", ">= 0.9"))
    rows.append(("strong efficiency, 2 ranks", f"{summary['strong_efficiency']['2']:.2f}",
                 f"N = 2^20, chi = 4, {t1s:.2f} -> {t2:.2f} s/iter", ">= 0.7"))
    for case, v in summary["pairs_over_windows"].items():
        rows.append((f"pairs / windows, {case}", f"{v:.2f}", "s/iter ratio, same data and model",
                     "<= 3" if case.startswith("grid_") else "<= 2"))
    rows.append(("OpenMP speedup 1 -> 2 threads, pairs on", f"{summary['openmp_speedup_2_threads_pairs']:.2f}",
                 "N = 4096, chi = 4", ">= 1.8"))
    ev = summary["eval_detail"]
    rows.append(("cmera eval, N = 65536, chi = 4, 2 ranks", f"{ev['eval_seconds']:.1f} s",
                 f"1 rank {ev['eval_seconds_1rank']:.1f} s; CPU {ev['eval_cpu_seconds']:.1f} s", "<= 10 s"))
    rows.append(("cmera eval, 256 x 256 grid, chi = 2, 2 ranks", f"{ev['grid']['eval_seconds']:.1f} s",
                 f"CPU {ev['grid']['eval_cpu_seconds']:.1f} s", "<= 10 s"))
    for name, p in summary["peers"].items():
        for m in [k for k in ("cmera", "hmm", "rbm", "ar") if k in p]:
            e = p[m]
            errs = " ".join(f"{float(v):.1e}" for v in e["corr_abs_error"].values())
            rows.append((f"peers {name}: {m} ({e['setting']})", f"KL {e['kl_per_window']:.2e}",
                         f"{e['fit_seconds']:.1f} s; err C(r) r=1,4,16,64: {errs}",
                         wins(p, m)))
        t = p.get("cmera_time_to_best_peer_kl")
        rows.append((f"peers {name}: cmera time to best peer KL",
                     f"{p.get('time_ratio_best_peer_over_cmera', 0):.1f}x faster" if t else "not reached",
                     f"{t['seconds']:.2f} s ({t['setting']}, KL {t['kl_per_window']:.2e})" if t else "-",
                     ">= 10x"))
    with open(f"{d}/table.md", "w") as f:
        f.write("| measure | value | detail | goal |\n|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(r) + " |\n")

    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    xs = [int(s) for s in samples]
    ax[0].semilogx(xs, list(samples.values()), "o-")
    ax[0].set(xlabel="samples S", ylabel="s / iteration", title="cost vs data size", ylim=(0, None))
    ax[1].bar([f"chi={c}" for c in rate], [rate[c] / 1e9 for c in rate], label="sweep")
    ax[1].axhline(gemm / 1e9, color="k", ls="--", label="Eigen GEMM n=256")
    ax[1].set(ylabel="GFLOP/s (1 core)", title="cone sweep vs GEMM")
    ax[1].legend()
    ax[2].bar(["weak", "strong"], [summary["weak_efficiency"]["2"], summary["strong_efficiency"]["2"]])
    ax[2].axhline(0.9, color="k", ls=":")
    ax[2].axhline(0.7, color="k", ls="--")
    ax[2].set(ylabel="efficiency at 2 ranks", title="scaling", ylim=(0, 1.1))
    fig.tight_layout()
    fig.savefig(f"{d}/bench.png", dpi=100)
    print(json.dumps(goals, indent=1))
    print(f"bench_report: wrote {d}/summary.json, {d}/table.md, {d}/bench.png")


if __name__ == "__main__":
    main()
