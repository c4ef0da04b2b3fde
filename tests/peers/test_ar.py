"""Tests of the autoregressive peer (postprocess/ar_peer.py), chain and grid variants.

Truths used: perturbation (an output must not move when later sites change, and must move
when any earlier one does), exhaustive enumeration of every configuration of a tiny
lattice (probabilities sum to 1), a second sampling code path (the cached chain sampler
against one full forward pass per site, same uniforms), and a known distribution (i.i.d.
Bernoulli sites, whose exact held-out log-likelihood the fitted model must approach).
Everything runs in float64 so "does not depend" can be checked to 1e-12.
Usage: /usr/bin/python3 tests/peers/test_ar.py [REPO_ROOT]
"""
import itertools
import os
import sys
import unittest

ROOT = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "postprocess"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ar_peer  # noqa: E402

torch.set_default_dtype(torch.float64)


def randomized(net, seed):
    """Weights large enough that every allowed dependence is visible above 1e-9."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
    return net


def nets():
    return {"chain": (randomized(ar_peer.ARNet.for_chain(12, 4), 1), (12,)),
            "grid": (randomized(ar_peer.GatedPixelCNN(4, 3), 2), (3, 4))}


class Autoregressive(unittest.TestCase):
    def test_output_depends_exactly_on_earlier_sites(self):
        for name, (net, shape) in nets().items():
            n = int(np.prod(shape))
            x = torch.from_numpy(np.random.RandomState(3).randint(0, 2, (5,) + shape)).double()
            base = net.logits(x).reshape(5, n).detach()
            for i in range(n):
                # Flip every site >= i: logits at sites <= i must not move.
                y = x.reshape(5, n).clone()
                y[:, i:] = 1 - y[:, i:]
                moved = (net.logits(y.view_as(x)).reshape(5, n).detach() - base).abs()
                self.assertLess(moved[:, :i + 1].max().item(), 1e-12, f"{name}: site {i}")
                # Flip one earlier site j: the logit at i must move (the receptive field
                # covers every earlier site of these lattices and the two grid stacks leave
                # no blind spot, so the check above is not vacuous).
                for j in range(i):
                    y = x.reshape(5, n).clone()
                    y[:, j] = 1 - y[:, j]
                    d = (net.logits(y.view_as(x)).reshape(5, n).detach() - base)[:, i].abs()
                    self.assertGreater(d.max().item(), 1e-9, f"{name}: site {i} ignores {j}")

    def test_chain_receptive_field_covers_the_chain(self):
        for n in (2, 3, 8, 9, 128, 129):
            net = ar_peer.ARNet.for_chain(n, 2)
            reach = net.inp.reach + sum(b.reach for b in net.blocks)
            self.assertGreaterEqual(reach, n - 1)
            if net.blocks:  # and no more blocks than needed
                self.assertLess(reach - net.blocks[-1].reach, n - 1)


class Normalization(unittest.TestCase):
    def test_sum_over_all_configurations_is_one(self):
        for name, (net, shape) in nets().items():
            if name == "chain":  # a shorter chain: 2^10 configurations
                net, shape = randomized(ar_peer.ARNet.for_chain(10, 4), 4), (10,)
            else:                # a 3 x 3 grid: 2^9 configurations
                net, shape = randomized(ar_peer.GatedPixelCNN(4, 3), 5), (3, 3)
            n = int(np.prod(shape))
            allx = torch.tensor(list(itertools.product((0, 1), repeat=n)), dtype=torch.float64)
            with torch.no_grad():
                total = torch.exp(net.log_prob(allx.view((-1,) + shape))).sum().item()
            self.assertAlmostEqual(total, 1.0, delta=1e-6, msg=name)


class Sampling(unittest.TestCase):
    def test_cached_chain_sampler_equals_reference(self):
        net = randomized(ar_peer.ARNet.for_chain(16, 4), 6)
        u = torch.rand(200, 16, generator=torch.Generator().manual_seed(7))
        fast, slow = net.sample_chain(u), net.sample_reference(u)
        self.assertTrue(torch.equal(fast, slow))
        self.assertGreater(fast.mean().item(), 0.05)  # not a degenerate all-zero draw
        self.assertLess(fast.mean().item(), 0.95)

    def test_cached_grid_sampler_equals_reference(self):
        net = randomized(ar_peer.GatedPixelCNN(4, 3), 11)
        u = torch.rand(300, 5, 7, generator=torch.Generator().manual_seed(12))
        fast, slow = net.sample_grid(u), net.sample_reference(u)
        self.assertTrue(torch.equal(fast, slow))
        self.assertGreater(fast.mean().item(), 0.05)  # not a degenerate draw
        self.assertLess(fast.mean().item(), 0.95)

    def test_reference_sampler_matches_exact_probabilities(self):
        # 3 x 2 grid: 64 configurations; 40000 draws; chi-square against log_prob.
        net = randomized(ar_peer.GatedPixelCNN(3, 2), 8)
        u = torch.rand(40000, 3, 2, generator=torch.Generator().manual_seed(9))
        s = net.sample_reference(u).reshape(-1, 6).numpy().astype(int)
        counts = np.bincount(s @ (1 << np.arange(5, -1, -1)), minlength=64)
        allx = torch.tensor(list(itertools.product((0, 1), repeat=6)), dtype=torch.float64)
        with torch.no_grad():
            p = torch.exp(net.log_prob(allx.view(-1, 3, 2))).numpy()
        e = p * len(s)
        keep = e > 5
        chi2 = (((counts - e) ** 2) / e)[keep].sum()
        # 99.9% quantile of chi-square with <= 63 degrees of freedom is below 104.
        self.assertLess(chi2, 104.0)


class Fit(unittest.TestCase):
    def test_learns_iid_bernoulli(self):
        # A chain and a grid: both fits must reach the true model's held-out NLL.
        for shape in ((8,), (3, 3)):
            rng = np.random.RandomState(10)
            train = (rng.rand(4000, *shape) < 0.2).astype(np.uint8)
            held = (rng.rand(4000, *shape) < 0.2).astype(np.uint8)
            torch.set_default_dtype(torch.float32)
            try:
                net, info = ar_peer.fit(train, held, channels=4, learning_rate=1e-2, epochs=4,
                                        grid_layers=2)
            finally:
                torch.set_default_dtype(torch.float64)
            k = held.mean()
            exact = -(k * np.log(0.2) + (1 - k) * np.log(0.8))  # held-out NLL of the truth
            self.assertLess(info["heldout_nll_per_site"], exact + 0.01, shape)
            self.assertGreater(info["heldout_nll_per_site"], exact - 0.01, shape)
            self.assertEqual(len(info["nll_history"]), 4)

if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
