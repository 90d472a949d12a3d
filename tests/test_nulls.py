"""The theory put to tests it can fail: null families, the paper's search range, intervals and
the held-out prediction of a rescaled component."""

import numpy as np
import pandas as pd
import pytest

from firstlayer.intervals import interval, with_interval
from firstlayer.patches.features import average_patches
from firstlayer.theory.formula import formula_profile
from firstlayer.theory.linear_cnn import (
    Moments,
    exact_change,
    random_sign_labels,
    stable_eta,
    tiled_images,
)
from firstlayer.theory.manipulations import (
    energy_ratio,
    heldout_markdown,
    heldout_summary,
    predict_rescaled,
    scored,
)
from firstlayer.theory.nulls import (
    FAMILIES,
    compare_fits,
    log_rmse,
    paper_tau_range,
    summarise,
    verdict,
)

ETA = 1e-7
# a spectrum that is neither a power nor an exponential of the index, so the families differ
INDEX = np.arange(1, 28)
LAMBDAS = 4 * np.exp(-INDEX / 3) + 0.3 / np.sqrt(INDEX)


@pytest.mark.parametrize("tau", [0.5, 3.0])
def test_a_formula_profile_is_won_by_the_formula_against_every_null(tau):
    row = compare_fits(formula_profile(LAMBDAS, ETA, tau / ETA), LAMBDAS, ETA, (1e-4, 1e4))
    assert row["formula_correlation"] > 1 - 1e-9
    assert row["formula_tau"] == pytest.approx(tau, rel=1e-4)
    assert row["formula_log_rmse"] < 1e-6
    for family in FAMILIES:
        assert row["formula_correlation"] - row[f"{family.key}_correlation"] > 0.01
        assert row[f"{family.key}_log_rmse"] > 0.05
    assert row["delta_r"] > 0.01 and row["delta_log_rmse"] > 0.05


@pytest.mark.parametrize(
    "key, value", [("lambda_power", 2.0), ("index_exp", 4.0), ("index_power", 0.5)]
)
def test_a_null_profile_is_won_by_its_own_family(key, value):
    family = next(f for f in FAMILIES if f.key == key)
    row = compare_fits(family.curve(LAMBDAS, value), LAMBDAS, ETA, (1e-4, 1e4))
    assert row["best_null"] == key
    assert row[f"{key}_parameter"] == pytest.approx(value, rel=1e-3)
    assert row["best_null_correlation"] > 1 - 1e-9
    assert row["delta_r"] < 0 and row["delta_log_rmse"] < 0


def test_log_rmse_sees_scale_free_shape_differences_only():
    profile = LAMBDAS**0.7
    assert log_rmse(profile, 5 * profile) == pytest.approx(0, abs=1e-12)
    # a 2x error on half the components: log 2 / 2 RMS after the best scale
    doubled = profile * np.where(INDEX % 2 == 0, 2.0, 1.0)
    assert log_rmse(profile, doubled) == pytest.approx(np.log(2) / 2 * np.sqrt(1 - 1 / 27**2))
    assert np.isnan(log_rmse(profile, -profile))


def test_paper_range_is_the_authors_search_in_tau_units():
    """The authors' formula, written in their units, equals ours at tau = eta' P t / 2."""
    assert paper_tau_range(900) == pytest.approx((0.45, 224.98875))
    n, positions, steps = 100, 900, np.array([10_000, 400_000, 4_999_750])
    singular_squared = n * positions * LAMBDAS**2  # their lambda^2: patch-matrix singular values
    rate = 1e-7 * singular_squared / (2 * n)
    theirs = (1 - (1 - rate[None]) ** steps[:, None]) / rate[None] * np.sqrt(singular_squared)
    low, high = paper_tau_range(positions)
    taus = steps * 1e-7 * positions / 2
    assert taus[0] == pytest.approx(low) and taus[-1] == pytest.approx(high)
    ours = formula_profile(LAMBDAS, ETA, taus / ETA)
    ratio = theirs / ours
    assert np.allclose(ratio / ratio[:, :1], 1, rtol=1e-3)


def test_one_value_gets_no_spread_and_no_verdict():
    mean, low, high, n = interval([0.9])
    assert (mean, n) == (0.9, 1) and np.isnan(low) and np.isnan(high)
    assert with_interval(mean, low, high, n) == "0.900"
    assert verdict(low, high, n) == "one value: no verdict"
    mean, low, high, n = interval([0.1, 0.2, 0.3, 0.4])
    assert low < mean < high and n == 4
    assert with_interval(mean, low, high, n) == f"0.250 [{low:.3f}, {high:.3f}]"
    assert verdict(0.01, 0.2, 4) == "formula better"
    assert verdict(-0.2, 0.1, 4) == "indistinguishable"
    assert verdict(-0.2, -0.1, 4) == "null better"


def test_intervals_are_student_t_and_wider_than_the_range_of_two_values():
    mean, low, high, n = interval([0.1, 0.2, 0.3, 0.4])
    half = 3.182446305284263 * np.std([0.1, 0.2, 0.3, 0.4], ddof=1) / 2  # t(0.975, 3 dof)
    assert (mean, n) == (pytest.approx(0.25), 4)
    assert (low, high) == (pytest.approx(0.25 - half), pytest.approx(0.25 + half))
    # two values: t(0.975, 1) = 12.706, far wider than their range (a bootstrap gives the range)
    mean, low, high, _ = interval([0.96, 0.98])
    assert (low, high) == (pytest.approx(0.97 - 0.1270620474), pytest.approx(0.97 + 0.1270620474))
    assert interval([0.96, 0.98], bounds=(-1, 1))[2] == 1


def test_each_measure_compares_every_curve_at_its_own_best():
    rng = np.random.default_rng(0)
    profile = np.exp(-INDEX / 5) * np.exp(rng.normal(scale=0.2, size=INDEX.size))
    row = compare_fits(profile, LAMBDAS, ETA, (1e-4, 1e4))
    keys = [f.key for f in FAMILIES]
    assert row["best_null_log_rmse"] == min(row[f"{k}_log_rmse"] for k in keys)
    assert row["best_null_log"] == min(keys, key=lambda k: row[f"{k}_log_rmse"])
    for family in FAMILIES:  # the log-RMSE fit is no worse than the curve the r fit chose
        at_r = log_rmse(profile, family.curve(LAMBDAS, row[f"{family.key}_parameter"]))
        assert row[f"{family.key}_log_rmse"] <= at_r + 1e-9
    at_r = log_rmse(profile, formula_profile(LAMBDAS, ETA, row["formula_tau"] / ETA))
    assert row["formula_log_rmse"] <= at_r + 1e-9


def test_table_row_from_one_pair_prints_no_spread():
    rows = [compare_fits(formula_profile(LAMBDAS, ETA, 1 / ETA), LAMBDAS, ETA, (1e-4, 1e4))]
    row = summarise(pd.DataFrame(rows), network="vgg11")
    assert row["n"] == 1 and np.isnan(row["formula_low"]) and np.isnan(row["delta_r_high"])
    assert row["verdict_r"] == "one value: no verdict"
    held = pd.DataFrame(
        [
            {
                "kind": "scaled component",
                "manipulation": "scale5x4",
                "labels": "true",
                "learned_ratio": 2.0,
                "formula_ratio": 3.0,
                "null_ratio": 1.0,
                "formula_corr_scaled": 0.9,
                "null_corr_scaled": 0.8,
                "corr_vs_unscaled": 0.95,
            }
        ]
    )
    text = heldout_markdown(heldout_summary(held))
    assert "| scale5x4 | true | 1 | 2.000 | 3.000 | 1.000 | 0.900 |" in text
    assert "[" not in text and "±" not in text


def rescale(average, vector, factor):
    """Average patches of tiles whose coefficient along `vector` is scaled by `factor`."""
    return average + (factor - 1) * np.outer(average @ vector, vector)


@pytest.mark.parametrize("component, factor", [(3, 4.0), (3, 0.25)])
def test_heldout_prediction_matches_a_synthetic_linear_cnn(component, factor):
    """Independent patches (the theorem's assumption): tau fitted on the unscaled linear CNN
    predicts, with no refit, how its profile changes when one component is scaled. The linear
    CNN's gradient descent is taken in closed form (`exact_change`, which test_linear_cnn pins
    to autograd training), averaged over random-label draws."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((27, 27)))
    images = tiled_images(1000, (basis * LAMBDAS**2) @ basis.T, 3, 3, 8, 1)
    average = average_patches(images, 3, stride=3)
    filters, steps = 8, 200
    eta = stable_eta(Moments.of(rescale(average, basis[:, component - 1], 4.0)), filters)
    labels = random_sign_labels(256, len(average), 2)

    def mean_profile(data):
        # every draw at once: b is (d, draws), so is the change
        changes = exact_change(Moments.of(data, labels.T), eta, steps, filters).T
        return np.sqrt(np.mean((changes @ basis) ** 2, axis=0))

    reference = mean_profile(average)
    scaled = mean_profile(rescale(average, basis[:, component - 1], factor))
    prediction = predict_rescaled(reference, LAMBDAS, component, factor, ETA)
    row = scored(prediction, scaled, reference)
    measured = energy_ratio(scaled, reference, component)
    assert row["learned_ratio"] == pytest.approx(measured)
    assert abs(np.log(measured)) > np.log(1.5)  # a real change to predict
    assert row["formula_ratio"] == pytest.approx(measured, rel=0.15)
    assert row["formula_corr_scaled"] > 0.98
    # the best null cannot follow: its predicted change misses by more than the formula's
    error = abs(np.log(row["formula_ratio"] / measured))
    assert abs(np.log(row["null_ratio"] / measured)) > error


def synthetic_profiles(lambdas, runs, steps=(0, 40, 400)):
    """A profiles table like `training_profiles` writes: each run's learned profile follows the
    formula (its lambdas and tau) times a little noise; its init is flat noise."""
    from firstlayer.training.analysis import SPEC_COLUMNS

    frames = []
    for number, (spec, tau, run_lambdas) in enumerate(runs):
        rng = np.random.default_rng(number)
        for step in steps:
            learned = formula_profile(run_lambdas, ETA, tau * step / steps[-1] / ETA + 1)
            learned = learned * np.exp(rng.normal(0, 0.03, len(lambdas)))
            raw = np.abs(rng.normal(1, 0.2, len(lambdas)))
            frames.append(
                pd.DataFrame(
                    {
                        "run": f"run{number}",
                        **{column: spec[column] for column in SPEC_COLUMNS},
                        "step": step,
                        "epoch": step / 40,
                        "component": np.arange(1, len(lambdas) + 1),
                        "energy": learned,
                        "energy_normalised": learned / learned.max(),
                        "energy_raw": raw,
                        "energy_raw_normalised": raw / raw.max(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def spec(**changes):
    from dataclasses import asdict

    from firstlayer.common.grid import RunSpec

    return asdict(RunSpec(**{"dataset": "toy", **changes}))


def test_table3_and_heldout_tables_on_synthetic_runs():
    from types import SimpleNamespace

    from firstlayer.theory.fits import fit_profiles, table3
    from firstlayer.theory.manipulations import manipulation_table

    stats = {("toy", 3): SimpleNamespace(lambdas=LAMBDAS)}
    scaled = LAMBDAS.copy()
    scaled[4] *= 4
    runs = [(spec(seed=s), 2.0, LAMBDAS) for s in range(3)]
    runs += [(spec(seed=s, inputs="scale5x4"), 2.0, scaled) for s in range(3)]
    profiles = synthetic_profiles(LAMBDAS, runs)
    fits = fit_profiles(profiles, stats, paper_ranges={("toy", 3): paper_tau_range(900)})
    assert (fits["kind"] == "random init").sum() == 6  # distinct inits, one row each
    table = table3(fits).set_index(["network", "inputs"])
    learned = table.loc[("vgg11", "none")]
    assert learned["n"] == 3 and learned["formula_mean"] > 0.99
    assert learned["formula_low"] <= learned["formula_mean"] <= learned["formula_high"]
    assert learned["verdict_r"] == "formula better"
    init = table.loc[("random init", "-")]
    assert init["n"] == 6 and init["formula_mean"] < 0.6
    rows = manipulation_table(profiles, stats)
    rows = rows[rows["kind"] == "scaled component"]
    assert len(rows) == 3 and set(rows["reference_run"]) == {"run0", "run1", "run2"}
    assert np.allclose(rows["formula_ratio"], rows["learned_ratio"], rtol=0.15)
    assert (rows["null_ratio"] - rows["learned_ratio"]).abs().min() > 0.5
    summary = heldout_summary(rows).iloc[0]
    assert summary["n"] == 3 and summary["verdict_ratio"] == "formula better"


def layer_with_profile(name, target, eigenvectors, mean, std, filters=32, seed=0):
    """A first layer (filters >= d) whose energy profile on `eigenvectors` is exactly `target`:
    W = sqrt(K) Q diag(target) U^T with Q (K x d) orthonormal columns."""
    from firstlayer.pretrained.layers import FirstLayer

    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((filters, len(target))))
    weight = np.sqrt(filters) * (q * target) @ eigenvectors.T
    return FirstLayer(name, weight.reshape(filters, 3, 3, 3), mean, std, f"file:{name}.npy")


def test_pretrained_fits_in_the_layers_own_input_space(tmp_path):
    from conftest import smooth_images

    from firstlayer.patches.stats import patch_statistics
    from firstlayer.pretrained.layers import write_first_layer
    from firstlayer.theory.fits import pretrained_fits

    stats = patch_statistics(smooth_images(40, 16, 16, 3), 3, [0.5] * 3, [0.25] * 3)
    mean, std = np.array([0.45, 0.5, 0.55]), np.array([0.2, 0.3, 0.25])
    space = stats.in_input_space(mean, std)
    lam = space.lambdas
    layers = {
        "formula": formula_profile(lam, ETA, 1.0 / ETA / lam[0] ** 2),
        "power": lam**2.5,
    }
    paths = []
    for name, target in layers.items():
        paths.append(tmp_path / f"{name}.h5")
        write_first_layer(
            paths[-1], layer_with_profile(name, target, space.eigenvectors, mean, std)
        )
    rows, table = pretrained_fits(paths, stats, "model", None, 196, ETA, (1e-4, 1e4))
    rows = rows.set_index("name")
    assert rows.loc["formula", "formula_correlation"] > 1 - 1e-6
    assert rows.loc["formula", "delta_r"] > 0
    assert rows.loc["power", "best_null"] == "lambda_power"
    assert rows.loc["power", "lambda_power_parameter"] == pytest.approx(2.5, rel=1e-3)
    overall = table.set_index("network").loc["weight files"]
    assert overall["n"] == 2 and overall["layers"] == "formula, power"
    # what a file was trained on gives it a row of its own; a file that does not say joins none
    _, table = pretrained_fits(
        paths, stats, "model", None, 196, ETA, (1e-4, 1e4), {"formula": "ImageNet-1k"}
    )
    table = table.set_index("network")
    assert table.loc["trained on ImageNet-1k", "layers"] == "formula"
    assert table.loc["trained on ImageNet-1k", "n"] == 1
    assert list(table.index) == ["weight files", "trained on ImageNet-1k", "all first layers"]


def test_imagenet_stems_fitted_on_real_cifar_patches(shared_data, cifar_lossless, tmp_path):
    """The real EfficientNet-Lite stems (ImageNet-trained, input (x - 127) / 128): the fit uses
    the patch PCA in the stem's own input space, the same as computing the patches there."""
    import json

    from firstlayer.datasets.sources import channel_stats
    from firstlayer.patches.profiles import energy_profile
    from firstlayer.patches.stats import patch_statistics
    from firstlayer.pretrained.layers import FirstLayer, load_weight_file, write_first_layer
    from firstlayer.theory.fits import pretrained_fits
    from firstlayer.theory.formula import fit_formula

    images = cifar_lossless[0][:1000]
    stats = patch_statistics(images, 3, *channel_stats(images))
    mean, std = np.full(3, 127 / 255), np.full(3, 128 / 255)
    direct = patch_statistics(images, 3, mean, std)  # patches computed in the stem's input space
    folder = shared_data / "pretrained"
    paths, expected = [], {}
    for name in json.loads((folder / "metadata.json").read_text()):
        weight = load_weight_file(folder / f"{name}.npy")
        paths.append(tmp_path / f"{name}.h5")
        write_first_layer(paths[-1], FirstLayer(name, weight, mean, std, f"file:{name}.npy"))
        profile = energy_profile(weight, direct.eigenvectors)
        expected[name] = fit_formula(profile, direct.lambdas, ETA).correlation
    rows, table = pretrained_fits(paths, stats, "model", None, 900, ETA, (1e-4, 1e4))
    rows = rows.set_index("name")
    for name, correlation in expected.items():
        assert rows.loc[name, "formula_correlation"] == pytest.approx(correlation, abs=1e-6)
    assert table.set_index("network").loc["all first layers", "n"] == 2


def test_tau_fitted_on_one_dataset_predicts_another_from_its_own_lambdas():
    from types import SimpleNamespace

    from firstlayer.theory.fits import cross_dataset, cross_dataset_summary, fit_profiles

    other = 3 * np.exp(-INDEX / 6) + 0.1  # another spectrum
    stats = {
        ("toy", 3): SimpleNamespace(lambdas=LAMBDAS),
        ("toy2", 3): SimpleNamespace(lambdas=other),
    }
    runs = [(spec(seed=s), 1.5, LAMBDAS) for s in range(2)]
    runs += [(spec(dataset="toy2", seed=s), 1.5, other) for s in range(3)]
    profiles = synthetic_profiles(LAMBDAS, runs)
    rows = cross_dataset(profiles, fit_profiles(profiles, stats), stats)
    onto = rows[rows["target"] == "toy2"]
    assert len(onto) == 3 and (onto["source_runs"] == 2).all()
    assert np.allclose(onto["source_tau"], 1.5, rtol=0.1)
    assert (onto["predicted_correlation"] > 0.99).all()
    assert (onto["predicted_correlation"] <= onto["in_sample_correlation"] + 1e-9).all()
    summary = cross_dataset_summary(rows).set_index("target")
    assert summary.loc["toy2", "n"] == 3 and summary.loc["toy", "n"] == 2
    # the formula sees the new lambdas; no null family fitted on toy does as well on toy2
    assert summary.loc["toy2", "verdict"] == "formula better"


def test_a_grid_of_one_dataset_writes_header_only_cross_dataset_tables(tmp_path):
    from types import SimpleNamespace

    from firstlayer.theory.fits import cross_dataset, cross_dataset_summary, fit_profiles

    stats = {("toy", 3): SimpleNamespace(lambdas=LAMBDAS)}
    profiles = synthetic_profiles(LAMBDAS, [(spec(seed=s), 1.5, LAMBDAS) for s in range(2)])
    rows = cross_dataset(profiles, fit_profiles(profiles, stats), stats)
    summary = cross_dataset_summary(rows)
    for table, column in ((rows, "predicted_correlation"), (summary, "verdict")):
        table.to_csv(tmp_path / "t.csv", index=False)
        back = pd.read_csv(tmp_path / "t.csv")  # an empty file would raise here
        assert back.empty and column in back.columns


def test_a_tau_at_the_end_of_its_range_is_flagged():
    # e ∝ lambda is the formula's tau -> 0 limit: the fit runs to the lower bound, where
    # lambda^1 reproduces it and no comparison can favour the formula
    row = compare_fits(LAMBDAS, LAMBDAS, ETA, (1e-4, 1e4))
    assert row["formula_tau_at_bound"]
    row = compare_fits(formula_profile(LAMBDAS, ETA, 1.0 / ETA), LAMBDAS, ETA, (1e-4, 1e4))
    assert not row["formula_tau_at_bound"]
    table = summarise(pd.DataFrame([row, row]), network="vgg11")
    assert table["formula_tau_at_bound"] == 0
