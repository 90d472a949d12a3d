"""What the configured workflow builds: the training grid and every list of target files, from
the validated config alone. Torch-free (the workflow plans with it); `rules/common.smk` only
forwards to it."""

from __future__ import annotations

import itertools

from firstlayer.common.facts import FIRST_LAYER_K, TORCHVISION_DATASETS
from firstlayer.common.grid import RunSpec, build_grid
from firstlayer.common.settings import UNCHANGED, learned_unmanipulated, parse_deciles

FIGURE_FORMATS = ("pdf", "png")
# CPU training throughput the default runtime request assumes (images per second, VGG11 at the
# default scale); a cluster profile overrides the request.
CPU_IMAGES_PER_SECOND = 300


def expand(pattern: str, **values) -> list[str]:
    """Every combination of the listed values formatted into `pattern` (Snakemake's expand)."""
    keys = list(values)
    lists = [v if isinstance(v, (list, tuple)) else [v] for v in values.values()]
    return [pattern.format(**dict(zip(keys, combo))) for combo in itertools.product(*lists)]


def figures(stem: str) -> list[str]:
    """A figure's PDF and PNG."""
    return [f"{stem}.{ext}" for ext in FIGURE_FORMATS]


class Plan:
    def __init__(self, config: dict):
        self.config = config
        self.grid = build_grid(config["experiments"], config["training"])

    # ---------------------------------------------------------------- the grid
    def spec(self, run: str) -> RunSpec:
        return self.grid[run]["spec"]

    @property
    def specs(self) -> list[RunSpec]:
        return [entry["spec"] for entry in self.grid.values()]

    @property
    def training_datasets(self) -> list[str]:
        return sorted({spec.dataset for spec in self.specs})

    def runs(self) -> list[str]:
        return expand("results/runs/{run}.h5", run=list(self.grid))

    def learned_runs(self, dataset: str | None = None, labels: str | None = None) -> list[str]:
        """Learned, unmanipulated runs (optionally of one dataset / label setting)."""
        return [
            name
            for name, entry in self.grid.items()
            if learned_unmanipulated(entry["spec"])
            and dataset in (None, entry["spec"].dataset)
            and labels in (None, entry["spec"].labels)
        ]

    def filter_runs(self) -> list[str]:
        """One run per (dataset, arch, widths, labels): the lowest seed."""
        chosen: dict[tuple, str] = {}
        for name in self.learned_runs():
            spec = self.spec(name)
            key = (spec.dataset, spec.arch, spec.first_width, spec.width, spec.labels)
            if key not in chosen or spec.seed < self.spec(chosen[key]).seed:
                chosen[key] = name
        return sorted(chosen.values())

    def manipulated_runs(self) -> list[str]:
        return [
            name
            for name, spec in zip(self.grid, self.specs)
            if parse_deciles(spec.labels) is not None or spec.inputs != UNCHANGED
        ]

    def training_minutes(self, run: str) -> int:
        """A generous CPU runtime request for one run: a cluster profile may override it."""
        spec = self.spec(run)
        source = self.config["datasets"].get(spec.dataset, {})
        facts = TORCHVISION_DATASETS.get(source.get("name"), TORCHVISION_DATASETS["CIFAR10"])
        images = spec.n_train or facts.train_images
        return max(10, int(spec.epochs * images / CPU_IMAGES_PER_SECOND / 60) + 5)

    # ---------------------------------------------------------------- inputs shared by rules
    def training_patch_stats(self) -> list[str]:
        """The first layer's patch statistics of every dataset the grid trains on."""
        return expand(
            "results/patches/{dataset}/k{k}.h5", dataset=self.training_datasets, k=FIRST_LAYER_K
        )

    def training_image_features(self) -> list[str]:
        return expand(
            "results/theory/{dataset}/k{k}_images.h5",
            dataset=self.training_datasets,
            k=FIRST_LAYER_K,
        )

    def pretrained_groups(self) -> dict[int, list[str]]:
        """{k: [torchvision model names]} from the config groups kN (a group may list no models
        and hold only user weight files of its size)."""
        models = self.config["pretrained"]["models"]
        return {int(group[1:]): names for group, names in models.items()}

    def pretrained_layers(self, k: int) -> list[str]:
        """First-layer files of group k: its torchvision models and every user weight file (the
        profile step keeps those whose kernel size is k)."""
        weight_files = list(self.config["pretrained"]["weight_files"])
        models = self.pretrained_groups().get(int(k), []) + weight_files
        return expand("results/pretrained/weights/{model}.h5", model=models)

    def pretrained_weights(self) -> list[str]:
        """Every first-layer file of the pretrained study (the `pretrained` target lists them,
        so that a deleted one is rebuilt)."""
        groups = sorted(self.pretrained_groups())
        return list(dict.fromkeys(f for k in groups for f in self.pretrained_layers(k)))

    # ---------------------------------------------------------------- figures and targets
    def patch_figures(self, kind: str) -> list[str]:
        """Every patch figure of one kind ("spectrum" or "components")."""
        patches = self.config["patches"]
        return expand(
            "results/figures/patches/{dataset}/k{k}_{kind}.{ext}",
            dataset=patches["datasets"],
            k=patches["k"],
            kind=kind,
            ext=FIGURE_FORMATS,
        )

    def pretrained_outputs(self, pattern: str) -> list[str]:
        """One path per (pretrained dataset, group size) for a pattern with {dataset}, {k}."""
        return expand(
            pattern,
            dataset=self.config["pretrained"]["dataset"],
            k=sorted(self.pretrained_groups()),
            ext=FIGURE_FORMATS,
        )

    @staticmethod
    def training_figure(name: str) -> list[str]:
        return figures(f"results/figures/training/{name}")

    def supported_training_figures(self) -> list[str]:
        """The training figures the configured grid has runs for."""
        specs = self.specs
        learned = [spec for spec in specs if not spec.frozen]
        names = []
        if specs:
            names += ["tables", "heatmap"]

        def model(spec):
            return (spec.dataset, spec.arch, spec.first_width, spec.width, spec.inputs)

        unmanipulated = [spec for spec in specs if learned_unmanipulated(spec)]
        true = {model(spec) for spec in unmanipulated if spec.labels == "true"}
        if true & {model(spec) for spec in unmanipulated if spec.labels == "random"}:
            names.append("true_vs_random")
        if true:
            names.append("consistency")
        trained = {model(spec) for spec in learned if spec.labels == "true"}
        if trained & {model(spec) for spec in specs if spec.frozen and spec.labels == "true"}:
            names.append("frozen")
        return names

    def theory_figure(self, name: str, k: int | None = None) -> list[str]:
        """results/figures/theory/{dataset}/k{k}_{name}.{ext} for every theory dataset."""
        theory = self.config["theory"]
        return expand(
            "results/figures/theory/{dataset}/k{k}_{name}.{ext}",
            dataset=theory["datasets"],
            k=k or theory["k"],
            name=name,
            ext=FIGURE_FORMATS,
        )

    def whitening_figures(self) -> list[str]:
        return expand(
            "results/figures/theory/{dataset}/whitening.{ext}",
            dataset=self.config["theory"]["datasets"],
            ext=FIGURE_FORMATS,
        )

    def fit_figures(self) -> list[str]:
        return figures("results/figures/theory/fits") + figures("results/figures/theory/fitted_t")

    def filter_figures(self) -> list[str]:
        return expand(
            "results/figures/theory/filters/{run}.{ext}", run=self.filter_runs(), ext=FIGURE_FORMATS
        )

    def manipulation_figures(self) -> list[str]:
        return figures("results/figures/theory/manipulations")

    def theory_targets(self) -> list[str]:
        targets = (
            self.theory_figure("formula")
            + self.theory_figure("label_stats")
            + self.theory_figure("linear_cnn")
            + self.whitening_figures()
        )
        if self.grid:
            targets += self.fit_figures() + self.filter_figures()
        if self.manipulated_runs():
            targets += self.manipulation_figures()
        return targets

    def used_datasets(self) -> list[str]:
        """Every dataset a default target reads, with the parents of subsets."""
        names = set(self.config["patches"]["datasets"]) | set(self.training_datasets)
        names |= set(self.config["theory"]["datasets"])
        specs = self.config["datasets"]
        names |= {specs[n]["of"] for n in names if specs[n]["source"] == "subset"}
        return sorted(names)

    def intermediates(self) -> list[str]:
        """Every file the default target builds on its way to the figures: listed in `all` so
        that deleting one (a run, patch statistics, a dataset) rebuilds it and what depends on
        it (Snakemake does not rebuild a missing intermediate whose consumers are up to date)."""
        patches, theory = self.config["patches"], self.config["theory"]
        stats = {(d, k) for d in patches["datasets"] for k in patches["k"]}
        stats |= {(d, FIRST_LAYER_K) for d in self.training_datasets}
        theory_k = (theory["k"], theory["whitening"]["k"])
        stats |= {(d, k) for d in theory["datasets"] for k in theory_k}
        features = {(d, theory["k"]) for d in theory["datasets"]}
        files = expand("resources/datasets/{dataset}.h5", dataset=self.used_datasets())
        files += [f"results/patches/{d}/k{k}.h5" for d, k in sorted(stats)]
        files += expand(
            "results/tables/theory/{dataset}/k{k}_{name}.csv",
            dataset=theory["datasets"],
            k=theory["k"],
            name=["label_stats", "linear_cnn", "linear_cnn_curves"],
        )
        files += expand("results/tables/theory/{dataset}/whitening.csv", dataset=theory["datasets"])
        if self.grid:
            features |= {(d, FIRST_LAYER_K) for d in self.training_datasets}
            files += self.runs() + [
                f"results/tables/training/{name}.csv"
                for name in ("profiles", "metrics", "tables", "run_correlations")
            ]
            files += [f"results/tables/theory/{n}.csv" for n in ("fits", "table3", "fit_curves")]
        if self.manipulated_runs():
            files += [
                f"results/tables/theory/{n}.csv" for n in ("manipulations", "manipulations_summary")
            ]
        files += [f"results/theory/{d}/k{k}_images.h5" for d, k in sorted(features)]
        return files

    def default_targets(self) -> list[str]:
        """The default target `all`: figures and tables, and every intermediate they need."""
        targets = (
            self.intermediates()
            + self.patch_figures("spectrum")
            + self.patch_figures("components")
            + [p for name in self.supported_training_figures() for p in self.training_figure(name)]
            + self.theory_targets()
        )
        return list(dict.fromkeys(targets))
