"""The clock test (firstlayer.theory.clock) on inputs whose answer is known: the theory's linear
CNN on independent patches, whose fitted tau is eta K t / P; profiles generated at
tau ∝ t^0.5 lr; the normalised clock a run records against the same sum over its weights."""

import numpy as np
import pytest
from conftest import write_toy_dataset

from firstlayer.common.grid import RunSpec
from firstlayer.patches.features import average_patches
from firstlayer.theory.clock import (
    TWIN_COLUMNS,
    Trajectory,
    collapse,
    energy,
    fit_records,
    from_run,
    linear_trajectories,
    on_grid,
    slopes,
    twins,
)
from firstlayer.theory.formula import formula_profile
from firstlayer.theory.linear_cnn import tiled_images
from firstlayer.training.run import read_run, record_steps, train

TAU_RANGE = (1e-4, 1e4)


def spectrum(d=27, seed=0):
    """A random orthonormal basis and a decaying spectrum of patch variances."""
    basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return basis, np.exp(-np.arange(d) / 4.0)


def pooled(table, clock="lr_steps", fit="formula_tau"):
    rows = table[
        (table["clock"] == clock) & (table["tau_fit"] == fit) & (table["scope"] == "pooled")
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_linear_cnn_on_independent_patches_keeps_the_clock():
    """Two step sizes (ten times apart), five seeds: tau_hat = c + a log t + b log lr with
    a = b = 1, the profiles collapse at equal eta t (far above equal step), and tau_hat is
    eta K t / P, the formula's own clock."""
    basis, variance = spectrum()
    images = tiled_images(2000, (basis * variance) @ basis.T, 3, 3, 4, 0)
    settings = dict(
        filters=4, runs=1024, seeds=5, fractions=[0.01, 0.1], x=[3, 10, 30, 100, 300], init_std=1e-4
    )
    paths = linear_trajectories(average_patches(images, 3, stride=3), settings, "synthetic", "toy")
    key = ("toy", "linear")
    records = fit_records(paths, {key: np.sqrt(variance)}, {key: basis}, 1e-7, TAU_RANGE)
    row = pooled(slopes(records))
    assert row["n"] == 5 and row["records"] == 50 and row["at_bound"] == 0
    assert abs(row["a_mean"] - 1) < 0.03 and abs(row["b_mean"] - 1) < 0.03
    assert row["a_low"] < 1 < row["a_high"] or abs(row["a_mean"] - 1) < 0.01
    # tau_hat against the formula's clock: eta' t = eta K t / P with P = 16 patches per image
    ratio = records["formula_tau"] / (records["clock_lr_steps"] * 4 / 16)
    assert ratio.between(0.9, 1.1).all()
    table = collapse(paths, {key: basis}).set_index("comparison")
    equal = table.loc["equal clock, lr_a vs lr_b", "mean"]
    assert equal > 0.9999
    assert equal > table.loc["equal step, lr_a vs lr_b", "mean"] + 0.5
    assert equal > table.loc["equal lr (lr_a), clock × ratio", "mean"] + 0.5


def profile_series(tau_of, lrs, seeds, steps, noise=0.0):
    """Trajectories whose change profile is the formula's at tau_of(step, lr): d filters whose
    coefficients along the basis are diag(profile) (energy ∝ profile), plus optional noise."""
    basis, variance = spectrum()
    lambdas = np.sqrt(variance)
    paths = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for lr in lrs:
            changes = [np.zeros((27, 27))]
            for step in steps:
                profile = formula_profile(lambdas, 1e-7, tau_of(step, lr) / 1e-7)
                profile = profile * np.exp(noise * rng.normal(size=27))
                changes.append(np.diag(profile) @ basis.T)
            paths.append(
                Trajectory(
                    f"s{seed}_lr{lr}",
                    {"system": "generated", "dataset": "toy", "arch": "vgg11"},
                    seed,
                    lr,
                    np.array([0, *steps]),
                    np.stack(changes),
                    np.zeros((27, 27)),
                    {"lr_steps": lr * np.array([0, *steps], np.float64)},
                    tuple(lr * s for s in steps),
                )
            )
    return paths, lambdas, basis


def test_slopes_recover_a_clock_that_is_not_lr_times_steps():
    """tau ∝ t^0.5 lr: the joint fit finds a = 0.5 and b = 1 (so lr x step is not the clock),
    per seed and per learning rate; the energy of a generated change is its profile."""
    steps = [10, 20, 40, 80, 160]
    paths, lambdas, basis = profile_series(
        lambda t, lr: 0.05 * np.sqrt(t) * lr / 0.01, [0.01, 0.03], [0, 1, 2], steps, noise=0.01
    )
    profile = energy(paths[0].change(1), basis)
    assert np.corrcoef(profile, formula_profile(lambdas, 1e-7, 0.05 * np.sqrt(10) / 1e-7))[
        0, 1
    ] == pytest.approx(1, abs=1e-3)
    key = ("toy", "vgg11")
    table = slopes(fit_records(paths, {key: lambdas}, {key: basis}, 1e-7, TAU_RANGE))
    # both lrs record at their own steps; they share the lr x step span 0.3 .. 1.6
    row = pooled(table)
    assert row["n"] == 3 and abs(row["a_mean"] - 0.5) < 0.05 and abs(row["b_mean"] - 1) < 0.1
    for lr in (0.01, 0.03):
        one = table[(table["scope"] == f"lr {lr:g}") & (table["tau_fit"] == "formula_tau")]
        assert abs(one["a_mean"].iloc[0] - 0.5) < 0.05 and np.isnan(one["b_mean"].iloc[0])


def test_interpolation_between_records_is_linear_in_log_clock():
    paths, _, _ = profile_series(lambda t, lr: 0.01 * t, [0.1], [0], [10, 40])
    path = paths[0]
    assert np.array_equal(path.at("lr_steps", 1.0), path.change(1))
    assert np.array_equal(path.at("lr_steps", 4.0), path.change(2))
    middle = path.at("lr_steps", 2.0)  # halfway between 1 and 4 in log clock
    assert np.allclose(middle, 0.5 * (path.change(1) + path.change(2)))
    with pytest.raises(ValueError, match="outside its records"):
        path.at("lr_steps", 5.0)


def test_record_steps_at_lr_times_step():
    # 10 steps per epoch, 3 epochs, lr 0.03: lr x step 0.3 -> step 10, 0.45 -> 15, 0.6 -> 20;
    # 3.0 -> 100 is past the run's 30 steps
    assert sorted(record_steps(10, 3, 0.03, (0.3, 0.45, 0.6, 3.0))) == [
        0,
        1,
        2,
        4,
        8,
        10,
        15,
        20,
        30,
    ]
    assert record_steps(10, 3) == record_steps(10, 3, 0.03, ())


def test_run_records_the_normalised_clock(tmp_path):
    """With every step recorded, the run's normalised clock equals sum_{s<t} lr / |w_k(s)|^2
    computed from its recorded first layers, per filter."""
    import torch

    torch.set_num_threads(1)
    data = write_toy_dataset(tmp_path / "toy.h5", 48, 10, 16)
    lr = 0.05
    spec = RunSpec(
        "toy", first_width=8, width=0.0625, epochs=2, n_train=48, n_test=10, batch_size=16, lr=lr,
        record_lr_steps=[lr * step for step in range(1, 7)],
    )  # fmt: skip
    assert "record_lr_steps" in spec.as_dict() and "record_lr_steps" not in RunSpec("toy").as_dict()
    train(spec, data, tmp_path / "run.h5", tmp_path / "run.pt", device="cpu", log=lambda m: None)
    run = read_run(tmp_path / "run.h5")
    assert list(run.steps) == list(range(7))
    norms2 = (run.weights.astype(np.float64) ** 2).sum(axis=(2, 3, 4))
    expected = np.vstack([np.zeros(8), np.cumsum(lr / norms2[:-1], axis=0)])
    assert np.allclose(run.normalised_clock, expected, rtol=1e-6)


def test_record_values_beyond_the_run_are_said_and_a_tiny_lr_is_no_step(tmp_path):
    """Values of lr x step past a run's end are not recorded, and the job's log says which (a
    config's shared values may lie past some runs); lr 1e-320 gives no infinite step; a grid of
    one learning rate has no twins, and its twins table keeps its header."""
    import pandas as pd
    import torch

    assert record_steps(3, 2, 1e-320, (0.3,)) == record_steps(3, 2)  # was an OverflowError
    torch.set_num_threads(1)
    data = write_toy_dataset(tmp_path / "toy.h5", 48, 10, 16)
    spec = RunSpec(
        "toy", first_width=4, width=0.0625, epochs=1, n_train=48, n_test=10, batch_size=16,
        lr=0.05, record_lr_steps=[0.05, 5.0, 9.0],
    )  # fmt: skip
    lines = []
    train(spec, data, tmp_path / "run.h5", tmp_path / "run.pt", device="cpu", log=lines.append)
    assert (
        "record_lr_steps 5, 9: beyond this run's lr x steps 0.15 (3 steps at lr 0.05), not recorded"
        in lines
    )
    path = from_run("run", read_run(tmp_path / "run.h5"))
    assert path.steps.tolist() == [0, 1, 2, 3] and on_grid(path).tolist() == [0, 1, 0, 0]
    path.grid = (5.0, 9.0)  # every value past the end: no record on the grid
    assert not on_grid(path).any()
    path.lr, path.grid = 1e-320, (0.3,)
    assert not on_grid(path).any()  # was an OverflowError
    one_lr = from_run("run", read_run(tmp_path / "run.h5"))
    key = ("toy", "vgg11")
    lambdas, basis = {key: np.linspace(1.0, 0.1, 27)}, {key: np.eye(27)}
    records = fit_records([one_lr], lambdas, basis, 1e-7, TAU_RANGE)
    assert records["on_grid"].sum() == 1
    empty = twins([one_lr], records, basis)
    assert list(empty.columns) == TWIN_COLUMNS and empty.empty
    empty.to_csv(tmp_path / "twins.csv", index=False)
    assert list(pd.read_csv(tmp_path / "twins.csv").columns) == TWIN_COLUMNS
