"""The theory's linear CNN, trained by gradient descent, and its exact closed-form prediction.

The network: K filters w_k (C x k x k), a convolution, global average pooling, and the sum over
filters: f(x) = sum_k GAP(conv(x, w_k)) = s . m(x), with s = sum_k w_k and m(x) the average of
the image's patches (in the conv's stride). Full-batch gradient descent on the loss
L = 1/(2N) sum_n (f(x_n) - y_n)^2 moves every filter by the same vector,

    Delta(t) = w_k(t) - w_k(0) = G(t) (b - A s(0)),   G(t) = V diag(g_j(t)) V^T,
    g_j(t) = (1 - (1 - eta K a_j)^t) / (K a_j)         (eta t when a_j = 0),

with A = (1/N) sum_n m_n m_n^T (the second moment of the average patches; their covariance
when the average patch has mean zero) = V diag(a) V^T, and b = (1/N) sum_n y_n m_n. This is
exact: no assumption about the patches. For random labels (y_n = +-1, independent of the
images) the expected energy along a unit vector u is E[(u . Delta)^2] = u^T G (A / N) G u (plus
a term from the random init, u^T G A S A G u with S the covariance of s(0)).

The paper's formula assumes the patches inside an image are uncorrelated; then A = Sigma / P
(Sigma the patch covariance, P patches per image), A is diagonal in the patch-PCA basis and the
expected energy reduces to lambda_i |1 - (1 - eta' lambda_i^2)^t| / (eta' lambda_i^2) with
eta' = eta K / P. Overlapping stride-1 patches cannot be uncorrelated, so synthetic data that
satisfies the assumption tiles independent patches at stride k and the network uses stride k.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError


def average_patches(images_nchw, k: int, stride: int = 1) -> np.ndarray:
    """m(x) for every image: the mean of its k x k patches at `stride`, (N, C*k*k) in
    (c, kh, kw) order, float64. Exactly GAP(conv(x, w)) = w . m(x)."""
    x = torch.as_tensor(np.asarray(images_nchw), dtype=torch.float64)
    n, channels, height, width = x.shape
    if not 1 <= k <= min(height, width):
        raise InputError(f"patch size k={k} does not fit {height}x{width} images")
    rows = torch.arange(0, height - k + 1, stride)
    cols = torch.arange(0, width - k + 1, stride)
    out = torch.empty(n, channels, k, k, dtype=torch.float64)
    for a in range(k):
        for b in range(k):
            out[:, :, a, b] = x[:, :, rows + a][:, :, :, cols + b].mean(dim=(2, 3))
    return out.reshape(n, -1).numpy()


@dataclass
class Moments:
    """A (d x d) and, optionally, b (d) of average patches, with the number of images."""

    A: np.ndarray
    b: np.ndarray | None
    n: int

    @classmethod
    def of(cls, average, labels=None) -> "Moments":
        average = np.asarray(average, np.float64)
        b = None if labels is None else average.T @ np.asarray(labels, np.float64) / len(average)
        return cls(average.T @ average / len(average), b, len(average))


def growth(a: np.ndarray, eta: float, t: float, filters: int = 1) -> np.ndarray:
    """g_j(t) = (1 - (1 - eta K a_j)^t) / (K a_j), exact and stable (eta t where a_j = 0)."""
    a = np.clip(np.asarray(a, np.float64), 0, None)
    rate = eta * filters * a
    out = np.full_like(a, eta * t)
    positive = rate > 0
    stable = positive & (rate < 1)
    out[stable] = -np.expm1(t * np.log1p(-rate[stable])) / (filters * a[stable])
    rest = positive & ~stable
    out[rest] = (1 - np.power(1 - rate[rest], t)) / (filters * a[rest])
    return out


def _propagator(moments: Moments, eta: float, t: float, filters: int) -> np.ndarray:
    a, vectors = np.linalg.eigh(moments.A)
    return (vectors * growth(a, eta, t, filters)) @ vectors.T


def exact_change(moments: Moments, eta: float, t: float, filters: int = 1,
                 init_sum=None) -> np.ndarray:
    """Delta(t), the change of every filter after t full-batch GD steps, for the labels in
    `moments.b` and the init whose filter sum is `init_sum` (zero when None)."""
    if moments.b is None:
        raise InputError("the exact change needs labels (moments.b)")
    target = moments.b if init_sum is None else moments.b - moments.A @ np.asarray(init_sum)
    return _propagator(moments, eta, t, filters) @ target


def expected_random_label_profile(moments: Moments, basis: np.ndarray, eta: float, t: float,
                                  filters: int = 1, init_std: float = 0.0) -> np.ndarray:
    """sqrt(E[(u_i . Delta(t))^2]) over random +-1 labels (and a Gaussian init of per-weight
    std `init_std`, which makes s(0) ~ N(0, K init_std^2 I)), for the columns u_i of `basis`."""
    G = _propagator(moments, eta, t, filters)
    label_part = moments.A / moments.n
    init_part = filters * init_std ** 2 * moments.A @ moments.A
    second = G @ (label_part + init_part) @ G
    basis = np.asarray(basis, np.float64)
    return np.sqrt(np.clip(np.einsum("di,de,ei->i", basis, second, basis), 0, None))


def continuous_profile(moments: Moments, basis: np.ndarray, tau: float) -> np.ndarray:
    """The random-label expected profile in the small-step limit, a function of tau = eta K t
    alone (g_j -> (1 - exp(-tau a_j)) / a_j): what is fitted to networks trained otherwise."""
    a, vectors = np.linalg.eigh(moments.A)
    a = np.clip(a, 0, None)
    g = np.where(a > 0, -np.expm1(-tau * a) / np.where(a > 0, a, 1), tau)
    G = (vectors * g) @ vectors.T
    second = G @ moments.A @ G
    return np.sqrt(np.clip(np.einsum("di,de,ei->i", basis, second, basis), 0, None))


class LinearCNN(torch.nn.Module):
    """conv (K filters, no bias) -> global average pooling -> sum over filters: one scalar."""

    def __init__(self, channels: int, k: int, filters: int, stride: int = 1):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, filters, k, stride=stride, bias=False)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3)).sum(dim=1)


def train_linear_cnn(model: LinearCNN, x, y, eta: float, steps: int) -> torch.Tensor:
    """Full-batch gradient descent on 1/(2N) sum (f(x) - y)^2 by autograd; returns the filters
    after `steps` steps (the model's parameters are updated in place)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=eta)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = 0.5 * torch.mean((model(x) - y) ** 2)
        loss.backward()
        optimizer.step()
    return model.conv.weight.detach().clone()


def train_on_average_patches(average, labels, init, eta: float, steps: int) -> np.ndarray:
    """The same gradient descent for many runs at once, on the average patches: since
    f(x) = s . m(x), a network is fully described by its (K, d) filters and the images by
    their (N, d) average patches. `labels` (R, N) and `init` (R, K, d) for R runs; returns the
    (R, K, d) filters. Differentiated by autograd, like the conv network it equals."""
    m = torch.as_tensor(np.asarray(average), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    w = torch.as_tensor(np.asarray(init), dtype=torch.float64).clone().requires_grad_(True)
    for _ in range(steps):
        out = torch.einsum("rkd,nd->rn", w, m)  # every run's prediction on every image
        loss = 0.5 * torch.mean((out - y) ** 2, dim=1).sum()
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= eta * grad
    return w.detach().numpy()


def tiled_images(n: int, covariance: np.ndarray, channels: int, k: int, tiles: int,
                 seed: int) -> np.ndarray:
    """Synthetic images satisfying the theorem: tiles x tiles independent patches, each drawn
    from N(0, covariance) in (c, kh, kw) order, laid side by side. (n, C, tiles*k, tiles*k)."""
    rng = np.random.default_rng(seed)
    d = channels * k * k
    root = np.linalg.cholesky(covariance + 1e-12 * np.eye(d))
    patches = rng.standard_normal((n, tiles, tiles, d)) @ root.T
    patches = patches.reshape(n, tiles, tiles, channels, k, k)
    return patches.transpose(0, 3, 1, 4, 2, 5).reshape(n, channels, tiles * k, tiles * k)


def random_sign_labels(runs: int, n: int, seed: int) -> np.ndarray:
    """(runs, n) labels, each +-1 with probability 1/2, independent of the images."""
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(runs, n))


def one_vs_rest_labels(classes, positive: int) -> np.ndarray:
    return np.where(np.asarray(classes) == positive, 1.0, -1.0)


def stable_eta(moments: Moments, filters: int, fraction: float = 0.5) -> float:
    """A step size `fraction` of the way to the largest stable one, 2 / (K a_max)."""
    a_max = float(np.linalg.eigvalsh(moments.A)[-1])
    if not a_max > 0:
        raise InputError("the average patches are all zero")
    return 2 * fraction / (filters * a_max)


def energy_of_change(weights, init, basis) -> np.ndarray:
    """Per-run energy profiles of the change, (R, K, d) weights -> (R, d)."""
    change = np.asarray(weights) - np.asarray(init)
    return np.sqrt(np.mean((change @ np.asarray(basis)) ** 2, axis=1))

