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
import pandas as pd
import torch

from firstlayer.errors import InputError
from firstlayer.theory.formula import fit_formula, formula_profile
from firstlayer.theory.nulls import FAMILY_LABELS, compare_fits, null_curve


@dataclass
class Moments:
    """A (d x d) and, optionally, b (d) of average patches, with the number of images."""

    A: np.ndarray
    b: np.ndarray | None
    n: int

    @classmethod
    def of(cls, average, labels=None) -> Moments:
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


def exact_change(
    moments: Moments, eta: float, t: float, filters: int = 1, init_sum=None
) -> np.ndarray:
    """Delta(t), the change of every filter after t full-batch GD steps, for the labels in
    `moments.b` and the init whose filter sum is `init_sum` (zero when None)."""
    if moments.b is None:
        raise InputError("the exact change needs labels (moments.b)")
    target = moments.b if init_sum is None else moments.b - moments.A @ np.asarray(init_sum)
    return _propagator(moments, eta, t, filters) @ target


def expected_random_label_profile(
    moments: Moments,
    basis: np.ndarray,
    eta: float,
    t: float,
    filters: int = 1,
    init_std: float = 0.0,
) -> np.ndarray:
    """sqrt(E[(u_i . Delta(t))^2]) over random +-1 labels (and a Gaussian init of per-weight
    std `init_std`, which makes s(0) ~ N(0, K init_std^2 I)), for the columns u_i of `basis`.

    G (A/N + K std^2 A^2) G is diagonal in A's eigenbasis: g_j^2 (a_j/N + K std^2 a_j^2)."""
    a, vectors = np.linalg.eigh(moments.A)
    a = np.clip(a, 0, None)
    g = growth(a, eta, t, filters)
    variance = g**2 * (a / moments.n + filters * init_std**2 * a**2)
    return np.sqrt(((vectors.T @ np.asarray(basis, np.float64)) ** 2).T @ variance)


class ExactProfile:
    """The random-label expected profile in the small-step limit, a function of tau = eta K t
    alone (g_j -> (1 - exp(-tau a_j)) / a_j): the exact linear prediction fitted to networks
    trained otherwise. Evaluating it at many tau costs one d x d product each."""

    def __init__(self, moments: Moments, basis: np.ndarray):
        a, vectors = np.linalg.eigh(moments.A)
        self.a = np.clip(a, 0, None)
        self.weights = ((vectors.T @ np.asarray(basis, np.float64)) ** 2).T  # (basis i, eigen j)

    def __call__(self, tau: float) -> np.ndarray:
        a = self.a
        g = np.where(a > 0, -np.expm1(-tau * a) / np.where(a > 0, a, 1), tau)
        return np.sqrt(self.weights @ (g**2 * a))


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
    (R, K, d) filters. Differentiated by autograd, like the conv network it equals.

    The loss of run r, 1/(2N) sum_n (s . m_n - y_rn)^2, equals 1/2 s^T A s - b_r . s plus a
    constant (A and b_r the moments of the module docstring), so each step costs d x d per run
    instead of N x d: the same steps, a few hundred times faster at N = 10,000."""
    m = torch.as_tensor(np.asarray(average), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    second = m.T @ m / len(m)  # A
    cross = y @ m / len(m)  # b_r, one row per run
    w = torch.as_tensor(np.asarray(init), dtype=torch.float64).clone().requires_grad_(True)
    for _ in range(steps):
        s = w.sum(dim=1)  # every run's filter sum, (R, d)
        loss = (0.5 * ((s @ second) * s).sum(dim=1) - (cross * s).sum(dim=1)).sum()
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= eta * grad
    return w.detach().numpy()


def tiled_images(
    n: int, covariance: np.ndarray, channels: int, k: int, tiles: int, seed: int
) -> np.ndarray:
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


def seed_study(
    average,
    basis,
    lambdas,
    patches_per_image: int,
    labels,
    random_labels: bool,
    filters: int = 8,
    steps=(100, 1000, 10000),
    fraction: float = 0.5,
    init_std: float = 1e-4,
    seed: int = 0,
    name: str = "images",
    show_runs: int = 12,
    tau_range=(1e-4, 1e4),
):
    """Train many linear CNNs (one per row of `labels`, (R, N) +-1) on the average patches and
    compare their profiles with the predictions at each number of steps. `random_labels`: the
    rows are independent random draws (compare with the expectation over labels), else fixed
    label vectors (compare with the exact change for each of them).

    Returns (curves, summary): tidy tables of profiles for the figure and of correlations:
    seed-averaged profile (root mean square over runs) against the exact prediction, the
    paper's formula at the known eta' = eta K / P and t, the formula at its best-fitting t and
    the best null family (`firstlayer.theory.nulls`); and the median of the same correlations
    for single runs.
    """
    labels = np.asarray(labels, np.float64)
    moments = Moments.of(average)
    eta = stable_eta(moments, filters, fraction)
    init = np.random.default_rng(seed).normal(
        0, init_std, (len(labels), filters, moments.A.shape[0])
    )
    weights, done = init, 0
    curves, summary = [], []
    for total in sorted(steps):
        weights = train_on_average_patches(average, labels, weights, eta, total - done)
        done = total
        profiles = energy_of_change(weights, init, basis)
        mean = np.sqrt(np.mean(profiles**2, axis=0))
        if random_labels:
            exact = expected_random_label_profile(moments, basis, eta, total, filters, init_std)
        else:  # the same label vectors, exactly (init's share is negligible at small init_std)
            changes = np.stack(
                [
                    exact_change(Moments.of(average, y), eta, total, filters)
                    for y in np.unique(labels, axis=0)
                ]
            )
            exact = np.sqrt(np.mean((changes @ basis) ** 2, axis=0))
        formula = formula_profile(lambdas, eta * filters / patches_per_image, total)
        fit = fit_formula(mean, lambdas, tau_range=tuple(tau_range))
        best = formula_profile(lambdas, fit.eta, fit.t)
        nulls = compare_fits(mean, lambdas, fit.eta, tuple(tau_range))
        corr = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
        summary.append(
            {
                "data": name,
                "steps": total,
                "runs": len(labels),
                "filters": filters,
                "eta": eta,
                "mean_vs_exact": corr(mean, exact),
                "mean_vs_formula": corr(mean, formula),
                "mean_vs_formula_best_fit": fit.correlation,
                "best_null": nulls["best_null"],
                "mean_vs_best_null": nulls["best_null_correlation"],
                "formula_best_fit_log_rmse": nulls["formula_log_rmse"],
                "best_null_log_rmse": nulls["best_null_log_rmse"],
                "single_vs_exact_median": float(np.median([corr(p, exact) for p in profiles])),
                "single_vs_formula_median": float(np.median([corr(p, formula) for p in profiles])),
            }
        )
        panel = f"{name}, t = {total}"
        series = [
            ("exact", exact, "prediction", f"exact linear (r = {corr(mean, exact):.3f})"),
            ("formula", formula, "prediction", f"formula, known t (r = {corr(mean, formula):.3f})"),
            ("formula_fit", best, "prediction", f"formula, best t (r = {fit.correlation:.3f})"),
            (
                "best_null",
                null_curve(nulls, lambdas),
                "prediction",
                f"best null {FAMILY_LABELS[nulls['best_null']]} "
                f"(r = {nulls['best_null_correlation']:.3f})",
            ),
            ("mean", mean, "measured", f"mean of {len(labels)} runs"),
        ]
        series += [
            (f"run{i}", profiles[i], "single", "single runs")
            for i in range(min(show_runs, len(profiles)))
        ]
        for key, values, style, label in series:
            curves.append(
                pd.DataFrame(
                    {
                        "panel": panel,
                        "series": key,
                        "style": style,
                        "label": label,
                        "component": np.arange(1, len(values) + 1),
                        "value": values,
                    }
                )
            )
    return pd.concat(curves, ignore_index=True), pd.DataFrame(summary)


def linear_cnn_study(stats, features, settings: dict, dataset: str):
    """Rule `linear_cnn`: the study design. Three seed studies with the settings of
    `theory.linear_cnn`: synthetic data satisfying the theorem (independent patches from the
    dataset's own patch covariance, tiled at stride k and seen by a stride-k network, random
    labels), and the real images at stride 1 with random labels and with the true one-vs-rest
    labels of every class. Returns (curves, summary)."""
    from firstlayer.patches.features import average_patches

    common = dict(
        filters=settings["filters"],
        steps=settings["steps"],
        fraction=settings["step_fraction"],
        init_std=settings["init_std"],
        seed=settings["seed"],
        tau_range=settings.get("tau_range", (1e-4, 1e4)),
    )
    runs, seed, tiles = settings["runs"], settings["seed"], settings["tiles"]
    synthetic = tiled_images(
        settings["synthetic_images"], stats.covariance, stats.channels, stats.k, tiles, seed
    )
    average = average_patches(synthetic, stats.k, stride=stats.k)
    print(f"synthetic: {len(average)} images of {tiles}x{tiles} independent patches")
    basis, lambdas = stats.eigenvectors, stats.lambdas
    studies = [
        seed_study(
            average,
            basis,
            lambdas,
            tiles * tiles,
            random_sign_labels(runs, len(average), seed + 1),
            True,
            name="synthetic, random labels",
            **common,
        )
    ]
    average, labels = features["average_patches"], features["labels"]
    classes = len(features["class_names"])
    print(f"{dataset}: {len(average)} images")
    per_class = max(1, runs // classes)
    one_vs_rest = np.repeat(
        [one_vs_rest_labels(labels, c) for c in range(classes)], per_class, axis=0
    )
    for name, draws, random in (
        ("random", random_sign_labels(runs, len(average), seed + 2), True),
        ("one-vs-rest", one_vs_rest, False),
    ):
        studies.append(
            seed_study(
                average,
                basis,
                lambdas,
                features["patches_per_image"],
                draws,
                random,
                name=f"{dataset}, {name} labels",
                **common,
            )
        )
    curves = pd.concat([c for c, _ in studies], ignore_index=True)
    summary = pd.concat([s for _, s in studies], ignore_index=True)
    summary.insert(0, "dataset", dataset)
    print(summary.to_string(index=False))
    return curves, summary
