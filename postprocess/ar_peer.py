"""Autoregressive neural-network peer: a gated causal-convolution model of binary lattice
configurations (the family of variational autoregressive networks and PixelCNN), trained by
exact maximum likelihood in PyTorch.

p(x) = prod_i p(x_i | x_<i) in a fixed site order: left to right on a chain [S, N], raster
order (row by row) on a grid [S, Ly, Lx]. Every conditional is a Bernoulli whose logit a
masked convolution stack computes, so log p(x) is exact and normalized, and sampling is
ancestral. Trade-offs:
  * The chain is periodic but the order is not: convolutions are zero-padded, never
    circular, so the last sites of a ring see the first ones only through the
    autoregressive order (as conditioning inputs, via the receptive field, which
    `ARNet.for_chain` makes cover the whole chain), never as right-hand neighbours.
  * Chains use dilated causal convolutions (left padding, no wasted taps: reach doubles per
    layer, so log2 N layers see every earlier site) and sample with per-layer caches, one
    site per step at the cost of one full forward pass in total. Grids use gated PixelCNN's
    masked 2D convolutions, a vertical and a horizontal stack (no blind spot; masked taps
    are computed as zeros, simpler than shifted non-square kernels), with reach growing by
    one site per layer, not doubling. They sample with caches too (`sample_grid`): the
    vertical stack advances a row at a time, the horizontal stack a site at a time, about
    one forward pass's work in total instead of one pass per site.
Spins enter as s = 2x - 1, so the zero padding reads as "no information".
"""
import copy
import math
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class CausalConv1d(nn.Module):
    """Output at site i reads inputs at i - j * dilation, j = 0 .. kernel - 1 (kind "B"),
    or at i - 1 - j * dilation (kind "A": strictly earlier sites, used on the raw data)."""

    def __init__(self, cin, cout, kernel, dilation, kind):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, dilation=dilation)
        self.kernel, self.dilation, self.shift = kernel, dilation, 1 if kind == "A" else 0
        self.reach = (kernel - 1) * dilation + self.shift  # how far back one output reads

    def forward(self, x):  # x [B, C, N]
        n = x.shape[-1]
        x = F.pad(x, ((self.kernel - 1) * self.dilation + self.shift, 0))
        return self.conv(x[..., :x.shape[-1] - self.shift] if self.shift else x)[..., :n]

    def step(self, buf, i):
        """Output at site i alone, from buf [B, C, N] holding this layer's inputs at sites < i
        (and at i for kind B). Sites before 0 read as zero, as in forward()."""
        pos = [i - self.shift - (self.kernel - 1 - j) * self.dilation for j in range(self.kernel)]
        cols = torch.stack([buf[:, :, p] if p >= 0 else torch.zeros_like(buf[:, :, 0])
                            for p in pos], dim=-1)                      # [B, Cin, kernel]
        return torch.einsum("bck,ock->bo", cols, self.conv.weight) + self.conv.bias


class MaskedConv2d(nn.Conv2d):
    """Masked k x k convolution on [B, C, Ly, Lx] (zero padded). Kinds: "V" reads rows <= y
    (every column of the kernel; the vertical stack); the horizontal stack's "HA" (input
    layer) reads columns < x of row y, "HB" (later layers) columns <= x."""

    def __init__(self, cin, cout, kernel, kind):
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        mask = torch.zeros_like(self.weight)
        c = kernel // 2
        if kind == "V":
            mask[:, :, :c + 1, :] = 1
        else:
            mask[:, :, c, :c + (1 if kind == "HB" else 0)] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def gate(z):
    a, b = z.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class Autoregressive(nn.Module):
    """What every geometry shares, given logits(x): the exact log-likelihood and a reference
    ancestral sampler. Spins enter the networks as s = 2x - 1."""

    def log_prob(self, x):
        """Exact log p(x) per configuration, [B]."""
        x = x.to(self.head.weight.dtype)
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none") \
            .flatten(1).sum(1)

    @torch.no_grad()
    def sample_reference(self, uniforms):
        """Ancestral samples, one full forward pass per site (any geometry). uniforms has
        the sample shape; site i is 1 where uniforms[i] < p(x_i = 1 | x_<i)."""
        flat_u = uniforms.reshape(len(uniforms), -1)
        flat_x = torch.zeros_like(flat_u)
        for i in range(flat_x.shape[1]):
            p = torch.sigmoid(self.logits(flat_x.view(uniforms.shape)).reshape(len(flat_x), -1)[:, i])
            flat_x[:, i] = (flat_u[:, i] < p).to(flat_x.dtype)
        return flat_x.view(uniforms.shape)

    def spins(self, x):
        return (2.0 * x.to(self.head.weight.dtype) - 1.0).unsqueeze(1)


class ARNet(Autoregressive):
    """Chains: gated residual stack (WaveNet style): a kind-A input convolution, then blocks
    h <- h + W_res (tanh(a) * sigmoid(b)) with (a, b) from a kind-B dilated convolution, and
    a 1x1 head giving the logit of x_i = 1 at every site."""

    def __init__(self, channels, kernel, dilations):
        super().__init__()
        self.inp = CausalConv1d(1, 2 * channels, kernel, 1, "A")
        self.blocks = nn.ModuleList(CausalConv1d(channels, 2 * channels, kernel, d, "B")
                                    for d in dilations)
        self.res = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in dilations)
        self.head = nn.Conv1d(channels, 1, 1)

    @classmethod
    def for_chain(cls, n, channels, kernel=2):
        """Dilations 1, 2, 4, ... until the receptive field covers all n - 1 earlier sites."""
        dilations, reach = [], kernel          # the input layer reads sites i-1 .. i-kernel
        while reach < n - 1:
            d = 2 ** len(dilations)
            dilations.append(d)
            reach += (kernel - 1) * d
        return cls(channels, kernel, dilations)

    def logits(self, x):
        """x {0,1} of shape [B, N]; logits [B, N]."""
        h = gate(self.inp(self.spins(x)))
        for conv, res in zip(self.blocks, self.res):
            h = h + res(gate(conv(h)))
        return self.head(torch.relu(h)).squeeze(1)

    @torch.no_grad()
    def sample_chain(self, uniforms):
        """Same samples as sample_reference for chains, in one forward pass's work: each layer
        keeps its inputs in a buffer and computes only the current site."""
        b, n = uniforms.shape
        c = self.res[0].in_channels if self.res else self.head.in_channels
        s = torch.zeros(b, 1, n, dtype=uniforms.dtype)            # layer inputs: spins
        bufs = [torch.zeros(b, c, n, dtype=uniforms.dtype) for _ in self.blocks]
        x = torch.zeros_like(uniforms)
        for i in range(n):
            h = gate(self.inp.step(s, i))
            for k, (conv, res) in enumerate(zip(self.blocks, self.res)):
                bufs[k][:, :, i] = h
                z = gate(conv.step(bufs[k], i))
                h = h + F.linear(z, res.weight[:, :, 0], res.bias)
            logit = F.linear(torch.relu(h), self.head.weight[:, :, 0], self.head.bias)[:, 0]
            x[:, i] = (uniforms[:, i] < torch.sigmoid(logit)).to(x.dtype)
            s[:, 0, i] = 2.0 * x[:, i] - 1.0
        return x


class GatedPixelCNN(Autoregressive):
    """Grids, raster order: gated PixelCNN's two stacks. The vertical stack reads rows <= y;
    shifted down one row it feeds the horizontal stack, which reads row y left of x. So the
    logit at (y, x) reads every earlier site within its reach (no blind spot, unlike one
    masked stack), and nothing else (tests/peers/test_ar.py)."""

    def __init__(self, channels, layers, kernel=3):
        super().__init__()
        c2 = 2 * channels
        self.v_in, self.h_in = MaskedConv2d(1, c2, kernel, "V"), MaskedConv2d(1, c2, kernel, "HA")
        self.v = nn.ModuleList(MaskedConv2d(channels, c2, kernel, "V") for _ in range(layers))
        self.h = nn.ModuleList(MaskedConv2d(channels, c2, kernel, "HB") for _ in range(layers))
        self.v2h = nn.ModuleList(nn.Conv2d(c2, c2, 1) for _ in range(layers + 1))
        self.res = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(layers))
        self.head = nn.Conv2d(channels, 1, 1)

    @staticmethod
    def _down(v):
        return F.pad(v, (0, 0, 1, 0))[:, :, :-1, :]

    def logits(self, x):
        """x {0,1} of shape [B, Ly, Lx]; logits [B, Ly, Lx]."""
        s = self.spins(x)
        v_pre = self.v_in(s)
        h = gate(self.h_in(s) + self.v2h[0](self._down(v_pre)))
        v = gate(v_pre)
        for vc, hc, v2h, res in zip(self.v, self.h, self.v2h[1:], self.res):
            v_pre = vc(v)
            h = h + res(gate(hc(h) + v2h(self._down(v_pre))))
            v = gate(v_pre)
        return self.head(torch.relu(h)).squeeze(1)

    @torch.no_grad()
    def sample_grid(self, uniforms):
        """Same samples as sample_reference for grids [B, Ly, Lx], in about one forward pass's
        work. The horizontal stack sees the vertical one shifted down a row, so row y's sites
        need the vertical stack only on rows < y: it advances one row per grid row (each
        masked convolution reads its input's rows r - 1 and r, kept in full-grid buffers).
        The horizontal taps read columns x - 1 and x of their own row, so each horizontal
        layer keeps a row buffer and computes only the current site."""
        b, ly, lx = uniforms.shape
        c = self.head.in_channels
        vconv = [self.v_in, *self.v]
        # vin[k]: input of vertical convolution k (spins, then gated outputs), every row so far
        vin = [torch.zeros(b, 1 if k == 0 else c, ly, lx, dtype=uniforms.dtype)
               for k in range(len(vconv))]
        vdown = [torch.zeros(b, 2 * c, 1, lx, dtype=uniforms.dtype) for _ in vconv]
        x = torch.zeros_like(uniforms)
        for y in range(ly):
            if y > 0:  # the vertical stack's row y - 1 (zero above row 0, as _down pads)
                r = y - 1
                for k, conv in enumerate(vconv):
                    pre = conv(vin[k][:, :, max(0, r - 1):r + 1])[:, :, -1:]
                    vdown[k] = pre
                    if k + 1 < len(vconv):
                        vin[k + 1][:, :, r] = gate(pre)[:, :, 0]
            vh = [v2h(d)[:, :, 0] for v2h, d in zip(self.v2h, vdown)]  # [B, 2C, Lx] per layer
            srow = torch.zeros(b, 1, lx, dtype=uniforms.dtype)
            hrow = [torch.zeros(b, c, lx, dtype=uniforms.dtype) for _ in range(len(self.h) + 1)]
            for i in range(lx):
                h = gate(self._row_taps(self.h_in, srow, i) + vh[0][:, :, i])
                hrow[0][:, :, i] = h
                for k, (hc, res) in enumerate(zip(self.h, self.res)):
                    z = gate(self._row_taps(hc, hrow[k], i) + vh[k + 1][:, :, i])
                    h = h + F.linear(z, res.weight[:, :, 0, 0], res.bias)
                    hrow[k + 1][:, :, i] = h
                logit = F.linear(torch.relu(h), self.head.weight[:, :, 0, 0], self.head.bias)[:, 0]
                x[:, y, i] = (uniforms[:, y, i] < torch.sigmoid(logit)).to(x.dtype)
                srow[:, 0, i] = 2.0 * x[:, y, i] - 1.0
            vin[0][:, :, y] = srow
        return x

    @staticmethod
    def _row_taps(conv, row, i):
        """A horizontal masked convolution's output at column i of the current row, from
        the row buffer [B, Cin, Lx]: its unmasked taps are the centre row's columns left of
        the centre, and the centre itself for kind HB."""
        ctr = conv.kernel_size[0] // 2
        out = conv.bias.expand(row.shape[0], -1)
        for j in range(conv.kernel_size[1]):
            col = i + j - ctr
            if col >= 0 and conv.mask[0, 0, ctr, j] > 0:
                out = out + F.linear(row[:, :, col], conv.weight[:, :, ctr, j])
        return out


def mean_nll_per_site(net, X, batch=512):
    """Exact held-out negative log-likelihood in nats per site."""
    with torch.no_grad():
        tot = sum(-net.log_prob(X[k:k + batch]).sum().item() for k in range(0, len(X), batch))
    return tot / (len(X) * X[0].numel())


def fit(train, held, channels, learning_rate, epochs, batch=128, seed=1, grid_layers=4):
    """Adam on the exact log-likelihood; keeps the epoch with the lowest held-out NLL.
    train, held: uint8 numpy [S, N] or [S, Ly, Lx]. Returns (net, info); info's fit_seconds
    is the training time up to the end of the kept epoch, without the held-out evaluations
    (the peer's time to its own result, the most favourable reading), total_seconds all of it."""
    torch.manual_seed(seed)
    Xt, Xh = torch.from_numpy(train.astype(np.float32)), torch.from_numpy(held.astype(np.float32))
    net = (ARNet.for_chain(train.shape[1], channels) if train.ndim == 2
           else GatedPixelCNN(channels, grid_layers))
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    sites = Xt[0].numel()
    best, best_state, history, train_seconds = math.inf, None, [], []
    t0 = time.time()
    for epoch in range(epochs):
        t = time.time()
        for idx in torch.randperm(len(Xt)).split(batch):
            opt.zero_grad()
            loss = -net.log_prob(Xt[idx]).mean() / sites
            loss.backward()
            opt.step()
        train_seconds.append(time.time() - t + (train_seconds[-1] if train_seconds else 0.0))
        nll = mean_nll_per_site(net, Xh)
        history.append(nll)
        if nll < best:
            best, best_state = nll, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    k = int(np.argmin(history))
    return net, {"fit_seconds": train_seconds[k], "total_seconds": time.time() - t0,
                 "heldout_nll_per_site": best, "best_epoch": k + 1, "nll_history": history,
                 "parameters": sum(p.numel() for p in net.parameters())}


def draw(net, count, shape, seed, batch=2000):
    """count samples uint8 [count, *shape] (shape: N for a chain, (Ly, Lx) for a grid) from
    the cached sampler of the net's geometry, reproducible from seed."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    sample = net.sample_chain if len(shape) == 1 else net.sample_grid
    g = torch.Generator().manual_seed(seed)
    out = [sample(torch.rand(min(batch, count - k), *shape, generator=g))
           for k in range(0, count, batch)]
    return torch.cat(out).numpy().astype(np.uint8)
