"""What the configured workflow builds: the training grid and every list of target files, from
the validated config alone. Torch-free (the workflow plans with it); `rules/common.smk` only
forwards to it."""

from __future__ import annotations

import itertools

from firstlayer.common.architectures import first_layer
from firstlayer.common.cost import (
    REFERENCE,
    REFERENCE_KEY,
    Request,
    Throughput,
    dataset_facts,
    network_key,
    throughput,
    training_request,
)
from firstlayer.common.facts import TORCHVISION_DATASETS
from firstlayer.common.grid import LATER_DEFAULTS, RunSpec, build_grid
from firstlayer.common.settings import UNCHANGED, learned_unmanipulated, parse_deciles

FIGURE_FORMATS = ("pdf", "png")
CLOCK_TABLES = ("clock", "clock_collapse", "clock_fits", "clock_twins")


def expand(pattern: str, **values) -> list[str]:
    """Every combination of the listed values formatted into `pattern` (Snakemake's expand)."""
    keys = list(values)
    lists = [v if isinstance(v, (list, tuple)) else [v] for v in values.values()]
    return [pattern.format(**dict(zip(keys, combo))) for combo in itertools.product(*lists)]


def figures(stem: str) -> list[str]:
    """A figure's PDF and PNG."""
    return [f"{stem}.{ext}" for ext in FIGURE_FORMATS]


class Plan:
    def __init__(self, config: dict, rate: Throughput | float | None = None):
        self.config = config
        self.grid = build_grid(config["experiments"], config["training"])
        # the training throughput the requests assume (common.cost): the environment, else the
        # calibration file, else the measured default
        self.rate = rate or throughput()
        self._requests: dict[tuple[str, int], Request] = {}

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

    def whitening_runs(self, dataset: str) -> list[str]:
        """The runs whose trained first layers join the whitening figure of `dataset`: learned,
        unmanipulated, true labels, and a stride-1 first layer (a strided stem's responses exist
        only every `stride` pixels, so their autocorrelation at smaller distances does not)."""
        return [
            name
            for name in self.learned_runs(dataset, "true")
            if first_layer(self.spec(name).arch).stride == 1
        ]

    def first_layer_stats(self) -> list[tuple[str, int]]:
        """(dataset, k) of every dataset the grid trains on and each first-layer kernel size
        its runs there have: the patch statistics the training analyses read."""
        return sorted({(spec.dataset, first_layer(spec.arch).k) for spec in self.specs})

    def strided_geometries(self) -> list[tuple[str, int, int]]:
        """(dataset, k, stride) of every strided first layer of the grid (a patchify stem)."""
        found = {(spec.dataset, first_layer(spec.arch)) for spec in self.specs}
        return sorted((d, g.k, g.stride) for d, g in found if g.stride > 1)

    def stride_tables(self) -> list[str]:
        return [
            f"results/tables/patches/{d}/k{k}_stride{s}.csv"
            for d, k, s in self.strided_geometries()
        ]

    def strided_stats(self) -> list[str]:
        """The stride-grid patch statistics of every strided first layer of the grid."""
        return [f"results/patches/{d}/k{k}_stride{s}.h5" for d, k, s in self.strided_geometries()]

    def strided_runs(self) -> list[str]:
        """Files of the learned runs whose first layer is strided."""
        names = [n for n in self.learned_runs() if first_layer(self.spec(n).arch).stride > 1]
        return expand("results/runs/{run}.h5", run=names)

    def training_dataset_files(self) -> list[str]:
        return expand("resources/datasets/{dataset}.h5", dataset=self.training_datasets)

    def recipe_outputs(self) -> list[str]:
        """The recipe table and figure, where the grid goes beyond the paper's recipe."""
        if not self.beyond_the_paper():
            return []
        return ["results/tables/theory/recipes.csv"] + figures("results/figures/theory/recipes")

    def beyond_the_paper(self) -> bool:
        """Whether the grid has runs off the paper's recipe or first layer (another optimiser or
        augmentation, a first layer other than 3x3 stride 1): then the recipe table compares
        them cell by cell with the paper's recipe."""
        return any(
            spec.optimizer != LATER_DEFAULTS["optimizer"]
            or spec.augment != LATER_DEFAULTS["augment"]
            or first_layer(spec.arch) != first_layer("vgg11")
            for spec in self.specs
        )

    def filter_runs(self) -> list[str]:
        """One run per (dataset, arch, widths, labels, optimiser, augmentation): the lowest
        seed."""
        chosen: dict[tuple, str] = {}
        for name in self.learned_runs():
            spec = self.spec(name)
            key = (spec.dataset, spec.arch, spec.first_width, spec.width, spec.labels)
            key += (spec.optimizer, spec.augment)
            if key not in chosen or spec.seed < self.spec(chosen[key]).seed:
                chosen[key] = name
        return sorted(chosen.values())

    def scaled_runs(self) -> list[str]:
        """Files of the runs whose inputs are transformed (their held-out prediction)."""
        names = [name for name, spec in zip(self.grid, self.specs) if spec.inputs != UNCHANGED]
        return expand("results/runs/{run}.h5", run=names)

    def scaled_run_datasets(self) -> list[str]:
        datasets = sorted({spec.dataset for spec in self.specs if spec.inputs != UNCHANGED})
        return expand("resources/datasets/{dataset}.h5", dataset=datasets)

    def clock_runs(self) -> list[str]:
        """Files of the learned runs recorded at values of lr x step (the clock test's runs)."""
        names = [
            name
            for name, spec in zip(self.grid, self.specs)
            if spec.record_lr_steps and not spec.frozen
        ]
        return expand("results/runs/{run}.h5", run=names)

    def manipulated_runs(self) -> list[str]:
        return [
            name
            for name, spec in zip(self.grid, self.specs)
            if parse_deciles(spec.labels) is not None or spec.inputs != UNCHANGED
        ]

    def training_request(self, run: str, attempt: int = 1) -> Request:
        """What the run's `train` job asks a cluster for (common.cost). A dataset whose size is
        known only once built (ImageFolder, .npz) is costed as CIFAR-10."""
        if (run, attempt) not in self._requests:  # asked for thrice per job while planning
            spec = self.spec(run)
            self._requests[run, attempt] = training_request(
                spec, self.facts(spec.dataset), self.rate, attempt
            )
        return self._requests[run, attempt]

    def facts(self, dataset: str):
        """A dataset's sizes; one whose size is known only once built (ImageFolder, .npz) is
        costed as CIFAR-10."""
        return dataset_facts(dataset, self.config["datasets"]) or TORCHVISION_DATASETS["CIFAR10"]

    def networks(self) -> dict[str, dict]:
        """{network_key: what `training.calibrate` builds to measure it} for every network of
        the grid and the reference network."""
        found = {
            REFERENCE_KEY: dict(
                zip(("arch", "first_width", "width"), REFERENCE),
                channels=3, side=32, classes=10, batch_size=256, precision="float32",
            )
        }  # fmt: skip
        for spec in self.specs:
            facts = self.facts(spec.dataset)
            found.setdefault(
                network_key(spec, facts),
                {
                    "arch": spec.arch,
                    "first_width": spec.first_width,
                    "width": spec.width,
                    "channels": facts.channels,
                    "side": facts.side,
                    "classes": facts.classes,
                    "batch_size": spec.batch_size,
                    "precision": spec.precision,
                },
            )
        return dict(sorted(found.items()))

    def manipulations_mem_mb(self) -> int:
        """The `manipulations` job holds a scaled run's training images twice (transformed and
        not), as its training job holds them once with the network: ask for the largest such
        request plus a margin."""
        names = [name for name, spec in zip(self.grid, self.specs) if spec.inputs != UNCHANGED]
        return max([2000, *(self.training_request(name).mem_mb + 1000 for name in names)])

    def training_group(self, run: str) -> str | None:
        """Short runs join the group `train` (a cluster profile bundles several of them into
        one job, run one after another); a long run is a job of its own."""
        return "train" if self.training_request(run).batched else None

    # ---------------------------------------------------------------- inputs shared by rules
    def training_patch_stats(self) -> list[str]:
        """The patch statistics of every dataset the grid trains on, at each first-layer kernel
        size its runs have there."""
        return [f"results/patches/{d}/k{k}.h5" for d, k in self.first_layer_stats()]

    def training_image_features(self) -> list[str]:
        return [f"results/theory/{d}/k{k}_images.h5" for d, k in self.first_layer_stats()]

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

    def clock_figures(self) -> list[str]:
        return figures("results/figures/theory/clock") if self.clock_runs() else []

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
            targets += self.fit_figures() + self.filter_figures() + self.clock_figures()
            targets += self.recipe_outputs()
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
        stats |= set(self.first_layer_stats())
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
            features |= set(self.first_layer_stats())
            files += self.runs() + [
                f"results/tables/training/{name}.csv"
                for name in ("profiles", "metrics", "tables", "run_correlations")
            ]
            files += [f"results/tables/theory/{n}.csv" for n in ("fits", "table3", "fit_curves")]
            files += self.stride_tables() + self.strided_stats()
            files += [path for path in self.recipe_outputs() if path.endswith(".csv")]
        if self.clock_runs():
            files += [f"results/tables/theory/{n}.csv" for n in CLOCK_TABLES]
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

    def published(self) -> dict[str, str]:
        """{result file: its name under docs/results/<publish>/} for what this config builds."""
        config = self.config
        files = {}
        patches = config["patches"]
        # the patch figures of the first run's first layer (of the first patch size without runs)
        k = first_layer(self.specs[0].arch).k if self.grid else patches["k"][0]
        if k in patches["k"]:
            for kind in ("spectrum", "components"):
                source = f"results/figures/patches/{patches['datasets'][0]}/k{k}_{kind}.png"
                files[source] = f"patch_{kind}.png"
        theory = config["theory"]
        dataset, k = theory["datasets"][0], theory["k"]
        for name in ("formula", "label_stats", "linear_cnn"):
            files[f"results/figures/theory/{dataset}/k{k}_{name}.png"] = f"{name}.png"
        for name in ("label_stats", "linear_cnn"):
            files[f"results/tables/theory/{dataset}/k{k}_{name}.csv"] = f"{name}.csv"
        files[f"results/figures/theory/{dataset}/whitening.png"] = "whitening.png"
        files[f"results/tables/theory/{dataset}/whitening.csv"] = "whitening.csv"
        if self.grid:
            for name in ("tables", "run_correlations", "metrics"):
                files[f"results/tables/training/{name}.csv"] = f"{name}.csv"
            for name in self.supported_training_figures():
                if name != "tables":
                    files[f"results/figures/training/{name}.png"] = f"{name}.png"
            for name in ("fits", "table3"):
                files[f"results/tables/theory/{name}.csv"] = f"{name}.csv"
            for name in ("fits", "fitted_t"):
                files[f"results/figures/theory/{name}.png"] = f"{name}.png"
            if self.filter_runs():
                files[f"results/figures/theory/filters/{self.filter_runs()[0]}.png"] = "filters.png"
            if self.clock_runs():
                for name in CLOCK_TABLES:
                    files[f"results/tables/theory/{name}.csv"] = f"{name}.csv"
                files["results/figures/theory/clock.png"] = "clock.png"
            for path in self.stride_tables():
                files[path] = f"{path.split('/')[-2]}_{path.split('/')[-1]}"
            for dataset, k, _ in self.strided_geometries():  # the basis their profiles are on
                if k in patches["k"] and dataset == patches["datasets"][0]:
                    source = f"results/figures/patches/{dataset}/k{k}_components.png"
                    files[source] = f"patch_components_k{k}.png"
            if self.beyond_the_paper():
                files["results/tables/theory/recipes.csv"] = "recipes.csv"
                files["results/figures/theory/recipes.png"] = "recipes.png"
                # the filters of each network and optimiser (true labels, no augmentation)
                for name in self.filter_runs():
                    spec = self.spec(name)
                    if spec.labels == "true" and spec.augment == LATER_DEFAULTS["augment"]:
                        stem = f"filters_{spec.arch}_{spec.optimizer}.png"
                        files[f"results/figures/theory/filters/{name}.png"] = stem
            if len({spec.dataset for spec in self.specs}) > 1:  # else nothing to predict
                for name in ("cross_dataset", "cross_dataset_summary"):
                    files[f"results/tables/theory/{name}.csv"] = f"{name}.csv"
        if self.manipulated_runs():
            for name in ("manipulations", "manipulations_summary", "heldout_rescaling"):
                files[f"results/tables/theory/{name}.csv"] = f"{name}.csv"
            files["results/figures/theory/manipulations.png"] = "manipulations.png"
        return files

    def published_pretrained(self) -> dict[str, str]:
        """{result file: its name under docs/results/pretrained/} for the pretrained study
        (`snakemake pretrained`, then `snakemake publish_pretrained`)."""
        dataset = self.config["pretrained"]["dataset"]
        files = {}
        for k in sorted(self.pretrained_groups()):
            for name in ("table3.csv", "fits.csv", "profiles.csv"):
                files[f"results/tables/pretrained/{dataset}/k{k}_{name}"] = f"k{k}_{name}"
            files[f"results/figures/pretrained/{dataset}/k{k}_profiles.png"] = f"k{k}_profiles.png"
        return files
