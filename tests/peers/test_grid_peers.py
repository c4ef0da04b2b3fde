"""Tests of the grid peers' scoring (postprocess/grid_peers.py) on tiny grids.

Truths used: plain loops over samples, positions and window places (window histograms,
pooled KL, C(r)), configurations whose C(r) is known in closed form (checkerboard,
stripes), the floor measure on two identical halves (KL from smoothing only), and known
distributions (independent pixels), whose pooled window histogram each peer must
reproduce within twice the measured data floor while a wrong model (every pixel 1/2)
lands far above it. The independent peer gets position-dependent rates; the PixelCNN one
rate everywhere, because a convolutional network knows a site's position only through the
zero padding near the border, so it cannot learn a different rate at every site.
Usage: /usr/bin/python3 tests/peers/test_grid_peers.py [REPO_ROOT]
"""
import json
import os
import sys
import tempfile
import unittest

ROOT = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "postprocess"))

import numpy as np  # noqa: E402

import grid_peers as gp  # noqa: E402


def product_data(n, seed, shape=(6, 6), rates=None):
    if rates is None:
        rates = np.linspace(0.1, 0.9, shape[0] * shape[1]).reshape(shape)
    return (np.random.RandomState(seed).rand(n, *shape) < rates).astype(np.uint8)


def loop_counts(X):
    s, ly, lx = X.shape
    c = np.zeros((ly, lx, 512), dtype=np.int64)
    for k in range(s):
        for y in range(ly):
            for x in range(lx):
                code = 0
                for dy in range(3):
                    for dx in range(3):
                        code += int(X[k, (y + dy) % ly, (x + dx) % lx]) << (8 - (3 * dy + dx))
                c[y, x, code] += 1
    return c


class Windows(unittest.TestCase):
    def test_counts_by_loop(self):
        X = product_data(20, 1, (4, 5))
        np.testing.assert_array_equal(gp.window_counts(X), loop_counts(X))

    def test_kls_by_direct_sums(self):
        held, model = product_data(40, 2, (4, 5)), product_data(30, 3, (4, 5))
        q, p = loop_counts(held).astype(float), loop_counts(model).astype(float)
        pooled_q, pooled_p = q.sum((0, 1)), p.sum((0, 1))
        ps = (pooled_p + 0.5) / (pooled_p.sum() + 256)
        want_pooled = sum(pooled_q[c] / pooled_q.sum() * np.log(pooled_q[c] / pooled_q.sum() / ps[c])
                          for c in range(512) if pooled_q[c] > 0)
        want_pos = 0.0
        for y in range(4):
            for x in range(5):
                qw, pw = q[y, x] / 40, (p[y, x] + 0.5) / (30 + 256)
                want_pos += sum(qw[c] * np.log(qw[c] / pw[c]) for c in range(512) if qw[c] > 0)
        got = gp.window_kls(loop_counts(held), loop_counts(model))
        self.assertAlmostEqual(got["kl_pooled_window"], want_pooled, delta=1e-12)
        self.assertAlmostEqual(got["kl_per_window"], want_pos / 20, delta=1e-12)

    def test_floor_of_identical_halves_is_smoothing_only(self):
        A = product_data(200, 4)
        floor = gp.halves_floor(np.concatenate([A, A]))
        windows = 200 * 36
        self.assertGreaterEqual(floor, 0.0)
        # KL(q || (n q + 1/2) / (n + 256)) <= log(1 + 256 / n): the smoothing alone
        self.assertLess(floor, np.log1p(256 / windows))
        # and two independent halves score well above it (the measure is not blind)
        self.assertGreater(gp.halves_floor(product_data(400, 5)), 3 * floor)


class Correlations(unittest.TestCase):
    def test_known_configurations(self):
        y, x = np.mgrid[0:6, 0:8]
        checker = ((x + y) % 2).astype(np.uint8)[None]
        c = gp.grid_corr(checker)
        np.testing.assert_array_equal(c["x"], [-1, 1, -1, 1])
        np.testing.assert_array_equal(c["y"], [-1, 1, -1])
        np.testing.assert_array_equal(c["diag"], [1, 1, 1])
        stripes = (x % 2).astype(np.uint8)[None]      # columns alternate, rows constant
        c = gp.grid_corr(stripes)
        np.testing.assert_array_equal(c["x"], [-1, 1, -1, 1])
        np.testing.assert_array_equal(c["y"], [1, 1, 1])
        np.testing.assert_array_equal(c["diag"], [-1, 1, -1])

    def test_random_by_loop(self):
        X = product_data(15, 6, (4, 6))
        s = 2.0 * X - 1.0
        c = gp.grid_corr(X)
        for d, (fy, fx), rmax in (("x", (0, 1), 3), ("y", (1, 0), 2), ("diag", (1, 1), 2)):
            want = [np.mean([s[k, i, j] * s[k, (i + fy * r) % 4, (j + fx * r) % 6]
                             for k in range(15) for i in range(4) for j in range(6)])
                    for r in range(1, rmax + 1)]
            np.testing.assert_allclose(c[d], want, rtol=0, atol=1e-14, err_msg=d)

    def test_worst_errors(self):
        data = {"x": [0.5, 0.2, 0.1], "y": [0.4, 0.2], "diag": [0.3, 0.05]}
        model = {"x": [0.5, 0.25, 0.1], "y": [0.4, 0.2], "diag": [0.3, 0.07]}
        e = gp.corr_errors(model, data)
        self.assertAlmostEqual(e["worst_abs"], 0.05, delta=1e-15)
        self.assertEqual(e["worst_abs_at"], "x, r = 2")
        self.assertAlmostEqual(e["worst_rel"], 0.4, delta=1e-12)   # 0.07 / 0.05 - 1
        self.assertEqual(e["worst_rel_at"], "diag, r = 2")


class Peers(unittest.TestCase):
    def test_peers_reproduce_a_product_distribution(self):
        import torch
        torch.set_num_threads(1)
        grid = {"channels": [4], "learning_rates": [1e-2], "epochs": 3, "layers": 2, "batch": 64}
        fits = {"independent": (None, lambda tr, he: gp.independent_peer(tr, he, 3000, 9)[0]),
                "pixelcnn": (0.3, lambda tr, he: gp.ar_peer_fit(tr, he, grid, 3000, 9)[0])}
        for name, (rate, fit) in fits.items():
            train, held = product_data(3000, 7, rates=rate), product_data(3000, 8, rates=rate)
            hc, cd = gp.window_counts(held), gp.grid_corr(held)
            floor = gp.sampled_scores(train, hc, cd)["kl_pooled_window"]
            kl = gp.sampled_scores(fit(train, held), hc, cd)["kl_pooled_window"]
            self.assertLess(kl, 2 * floor, name)
            wrong = (np.random.RandomState(10).rand(3000, 6, 6) < 0.5).astype(np.uint8)
            self.assertGreater(gp.sampled_scores(wrong, hc, cd)["kl_pooled_window"], 20 * floor)

    def test_independent_nll_is_exact(self):
        train, held = product_data(50, 11, (3, 4)), product_data(20, 12, (3, 4))
        _, m = gp.independent_peer(train, held, 10, 0)
        p = (train.sum(0) + 0.5) / 51
        want = -np.mean([np.log(p[i, j] if held[k, i, j] else 1 - p[i, j])
                         for k in range(20) for i in range(3) for j in range(4)])
        self.assertAlmostEqual(m["heldout_nll_per_site"], want, delta=1e-14)


class CmeraRow(unittest.TestCase):
    def test_figures_are_the_eval_files_and_winners_lowest(self):
        corr = {"r": [1, 2], "model": [0.5, 0.3], "data": [0.5, 0.2]}
        ev = {"kl_per_window": 0.02, "kl_pooled_window": 1e-3, "kl_floor": 2e-4,
              "corr_x": corr, "corr_y": corr, "corr_diag": corr}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(ev, f)
        try:
            data = {d: np.array([0.5, 0.2]) for d in ("x", "y", "diag")}
            row = gp.cmera_row(f.name, 12.0, data)
        finally:
            os.unlink(f.name)
        self.assertEqual((row["kl_per_window"], row["kl_pooled_window"], row["kl_floor"]),
                         (0.02, 1e-3, 2e-4))
        self.assertAlmostEqual(row["corr"]["worst_rel"], 0.5, delta=1e-15)
        self.assertEqual(row["data_corr_vs_heldout"], 0.0)
        peer = {"kl_per_window": 0.01, "kl_pooled_window": 2e-3, "seconds": 30.0,
                "corr": {"worst_abs": 0.05, "worst_rel": 0.6}}
        w = gp.winners({"cmera": row, "ar": peer})
        self.assertEqual(w, {"kl_pooled_window": "cmera", "kl_per_window": "ar",
                             "corr_worst_abs": "ar", "corr_worst_rel": "cmera",
                             "seconds": "cmera"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
