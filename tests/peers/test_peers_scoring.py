"""Tests of the scoring in postprocess/peers.py against plain loops and exact cases.

Window frequencies, C(r), the window KL and the C(r) error summary are the numbers the
peers table reports for every model; each is recomputed here by direct enumeration over
samples, sites and windows. A model's sampled scores must reduce to the data's own when
its "samples" are the held-out rows themselves (KL from smoothing only, C(r) error 0).
Usage: /usr/bin/python3 tests/peers/test_peers_scoring.py [REPO_ROOT]
"""
import os
import sys
import unittest

ROOT = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "postprocess"))

import numpy as np  # noqa: E402

import peers  # noqa: E402


def data(seed=1, s=300, n=16):
    rng = np.random.RandomState(seed)
    return (rng.rand(s, n) < np.linspace(0.2, 0.7, n)).astype(np.uint8)


class Scoring(unittest.TestCase):
    def test_window_frequencies_by_loop(self):
        X = data()
        s, n = X.shape
        want = np.zeros((n, 8))
        for row in X:
            for i in range(n):
                want[i, 4 * row[i] + 2 * row[(i + 1) % n] + row[(i + 2) % n]] += 1
        np.testing.assert_allclose(peers.window_q(X), want / s, rtol=0, atol=1e-15)

    def test_flipped_rows_and_the_training_histograms_kl(self):
        X, H = data(3), data(4)
        F = peers.with_flips(X)
        self.assertEqual(F.shape, (2 * len(X), X.shape[1]))
        for k, row in enumerate(X):
            np.testing.assert_array_equal(F[2 * k], row)
            np.testing.assert_array_equal(F[2 * k + 1], 1 - row)
        # Independent path: the histogram of the rows with their flips, by loop, against
        # the held-out rows' histogram, by loop.
        def hist(Y):
            n = Y.shape[1]
            h = np.zeros((n, 8))
            for row in Y:
                for i in range(n):
                    h[i, 4 * row[i] + 2 * row[(i + 1) % n] + row[(i + 2) % n]] += 1
            return h / len(Y)
        q, p, p_flip = hist(H), hist(X), hist(np.concatenate([X, 1 - X]))
        def kl(q, p):
            return sum(a * np.log(a / b) for a, b in zip(q.ravel(), p.ravel()) if a > 0) / q.shape[0]
        got = peers.train_histogram_kl(X, H)
        self.assertAlmostEqual(got["as_read"], kl(q, p), places=13)
        self.assertAlmostEqual(got["spin_flip"], kl(q, p_flip), places=13)

    def test_correlation_by_loop(self):
        X = data(2)
        s, n = X.shape
        want = [np.mean([(2.0 * X[k, i] - 1) * (2.0 * X[k, (i + r) % n] - 1)
                         for k in range(s) for i in range(n)]) for r in range(1, n // 2 + 1)]
        np.testing.assert_allclose(peers.corr(X, n // 2), want, rtol=0, atol=1e-13)

    def test_window_kl_by_loop(self):
        q = peers.window_q(data(3))
        p = peers.sampled_windows(data(4))
        want = sum(q[i, c] * np.log(q[i, c] / p[i, c])
                   for i in range(q.shape[0]) for c in range(8) if q[i, c] > 0) / q.shape[0]
        self.assertAlmostEqual(peers.kl_per_window(q, p), want, delta=1e-14)

    def test_smoothing_and_self_scores(self):
        held = data(5)
        e = peers.sampled_scores(held, held)
        self.assertEqual(e["samples"], len(held))
        c = peers.corr(held, held.shape[1] // 2)
        np.testing.assert_array_equal(np.asarray(e["corr_model"]), c)
        # add-1/2 smoothing: each window's estimate is (count + 1/2) / (S + 4)
        counts = peers.window_q(held) * len(held)
        np.testing.assert_allclose(peers.sampled_windows(held), (counts + 0.5) / (len(held) + 4),
                                   rtol=1e-15)
        self.assertGreater(e["kl_per_window"], 0)
        self.assertLess(e["kl_per_window"], 8 * 0.5 / len(held))  # smoothing moves little mass
        f = peers.sampling_floor(held, held, len(held), c)
        self.assertEqual(f["corr_max_abs_error"], 0.0)

    def test_summary_of_correlation_errors(self):
        c_data = np.linspace(0.5, 0.1, 64)          # N = 128
        err = np.zeros(64)
        err[[0, 3, 10, 20, 40]] = [1e-3, 2e-3, 5e-2, 3e-3, 4e-3]
        e = peers.summarize({"corr_model": (c_data + err).tolist()}, c_data)
        self.assertEqual(list(e["corr_abs_error"]), ["1", "4", "16", "64"])
        np.testing.assert_allclose(list(e["corr_abs_error"].values()), err[[0, 3, 15, 63]],
                                   rtol=0, atol=1e-15)
        self.assertAlmostEqual(e["corr_max_abs_error"], 5e-2, delta=1e-15)
        self.assertEqual(e["corr_max_abs_error_at_r"], 11)
        self.assertEqual(e["long_range_from_r"], 16)   # N/8
        self.assertAlmostEqual(e["corr_max_abs_error_long"], 4e-3, delta=1e-15)

    def test_ising1d_log_prob_by_enumeration(self):
        import itertools
        n, t = 7, 0.6
        X = np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.uint8)
        p = np.exp(peers.ising1d_log_prob(X, t))
        self.assertAlmostEqual(p.sum(), 1.0, delta=1e-13)
        s = 2.0 * X - 1.0
        nn = (p[:, None] * s * np.roll(s, -1, axis=1)).sum(0).mean()
        self.assertAlmostEqual(nn, (t + t ** (n - 1)) / (1 + t ** n), delta=1e-13)


class Compare(unittest.TestCase):
    def model(self, kl, cmax, clong, seconds, **extra):
        return {"kl_per_window": kl, "corr_max_abs_error": cmax, "corr_max_abs_error_long": clong,
                "fit_seconds": seconds, "corr_abs_error": {"1": cmax}, "setting": "s", **extra}

    def test_winners_and_time_to_best_peer(self):
        e = {"cmera": self.model(1e-3, 1e-2, 1e-3, 10.0, sampled_kl_per_window=2e-3,
                                 sampled_count=100),
             "a": self.model(5e-3, 5e-3, 2e-3, 40.0, samples=100),   # wins worst C(r)
             "b": self.model(2e-2, 3e-2, 3e-2, 4.0),
             "cmera_budgets": [self.model(9e-3, 1, 1, 1.0), self.model(4e-3, 1, 1, 2.0),
                               self.model(6e-3, 1, 1, 0.5)]}
        peers.compare(e, ("a", "b"))
        self.assertEqual(e["winner"], {"kl_per_window": "cmera", "corr_max_abs_error": "a",
                                       "corr_max_abs_error_long": "cmera"})
        self.assertEqual(e["peer_wins"], ["a beats cmera on corr_max_abs_error"])
        self.assertFalse(e["cmera_better_on_all_quality"])
        self.assertEqual(e["best_peer_on_kl"], "a")
        # budgets at or below a's KL 5e-3: the 2 s run (4e-3); the 0.5 s one misses it
        self.assertEqual(e["cmera_time_to_best_peer_kl"]["seconds"], 2.0)
        self.assertEqual(e["time_ratio_best_peer_over_cmera"], 20.0)
        self.assertEqual(e["kl_sampled_like_for_like"], {"a": {"peer": 5e-3, "cmera": 2e-3}})

    def test_not_reached(self):
        e = {"cmera": self.model(1e-2, 1e-3, 1e-3, 10.0), "a": self.model(5e-3, 5e-3, 2e-3, 40.0),
             "cmera_budgets": [self.model(9e-3, 1, 1, 1.0)]}
        peers.compare(e, ("a",))
        self.assertFalse(e["cmera_reaches_best_peer_kl"])
        self.assertNotIn("time_ratio_best_peer_over_cmera", e)
        self.assertEqual(e["peer_wins"], ["a beats cmera on kl_per_window"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
