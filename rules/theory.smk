# The linear-CNN theory: formula, fits to trained runs, the linear CNN itself, label statistics,
# whitening and filters. Figures are named targets (fig_*); the cheap ones are in `all`.


rule image_features:
    """Each sampled image's average patch and its patch energy along every component."""
    input:
        dataset="resources/datasets/{dataset}.h5",
        stats="results/patches/{dataset}/k{k}.h5",
    output:
        "results/theory/{dataset}/k{k}_images.h5",
    log:
        "logs/theory/{dataset}_k{k}_images.log",
    conda:
        ENV
    resources:
        mem_mb=3000,
    params:
        code=code("image_features.py"),
    script:
        "../scripts/image_features.py"


rule label_stats:
    """Fig. 5: class indicators against per-image patch energy along each component."""
    input:
        "results/theory/{dataset}/k{k}_images.h5",
    output:
        table="results/tables/theory/{dataset}/k{k}_label_stats.csv",
        pdf="results/figures/theory/{dataset}/k{k}_label_stats.pdf",
        png=report(
            "results/figures/theory/{dataset}/k{k}_label_stats.png",
            caption="../report/label_stats.rst",
            category="Theory",
            labels={"figure": "label statistics", "dataset": "{dataset}", "k": "{k}"},
        ),
    log:
        "logs/theory/{dataset}_k{k}_label_stats.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("label_stats.py"),
    script:
        "../scripts/label_stats.py"


rule linear_cnn:
    """The theory's linear CNN over many label draws, on synthetic independent patches and on
    the real images, against the exact prediction and the paper's formula."""
    input:
        features="results/theory/{dataset}/k{k}_images.h5",
        stats="results/patches/{dataset}/k{k}.h5",
    output:
        summary="results/tables/theory/{dataset}/k{k}_linear_cnn.csv",
        curves="results/tables/theory/{dataset}/k{k}_linear_cnn_curves.csv",
        pdf="results/figures/theory/{dataset}/k{k}_linear_cnn.pdf",
        png=report(
            "results/figures/theory/{dataset}/k{k}_linear_cnn.png",
            caption="../report/linear_cnn.rst",
            category="Theory",
            labels={"figure": "linear CNN", "dataset": "{dataset}", "k": "{k}"},
        ),
    log:
        "logs/theory/{dataset}_k{k}_linear_cnn.log",
    benchmark:
        "benchmarks/theory/{dataset}_k{k}_linear_cnn.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3000,
    params:
        code=code("linear_cnn.py"),
        # the best-t fit searches the configured tau range, like every other fit
        settings=canonical({**THEORY["linear_cnn"], "tau_range": THEORY["tau_range"]}),
    script:
        "../scripts/linear_cnn.py"


rule formula_figure:
    """Fig. 4: the formula's profile at several t for the dataset's patch spectrum."""
    input:
        "results/patches/{dataset}/k{k}.h5",
    output:
        pdf="results/figures/theory/{dataset}/k{k}_formula.pdf",
        png=report(
            "results/figures/theory/{dataset}/k{k}_formula.png",
            caption="../report/formula.rst",
            category="Theory",
            labels={"figure": "formula vs t", "dataset": "{dataset}", "k": "{k}"},
        ),
    log:
        "logs/theory/{dataset}_k{k}_formula.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("formula_figure.py"),
    script:
        "../scripts/formula_figure.py"


rule formula_fits:
    """Table 3 and Figs. 7, 14-16: the formula (free and in the paper's tau range), the null
    families and the exact linear prediction fitted to every run at every recorded step; the
    random-init baseline; fitted t against the SGD step; tau fitted on one dataset predicting
    the profiles trained on another."""
    input:
        profiles="results/tables/training/profiles.csv",
        stats=PLAN.training_patch_stats(),
        features=PLAN.training_image_features(),
    output:
        fits="results/tables/theory/fits.csv",
        table="results/tables/theory/table3.csv",
        curves="results/tables/theory/fit_curves.csv",
        cross_dataset="results/tables/theory/cross_dataset.csv",
        cross_dataset_summary="results/tables/theory/cross_dataset_summary.csv",
        pdf="results/figures/theory/fits.pdf",
        png=report(
            "results/figures/theory/fits.png",
            caption="../report/fits.rst",
            category="Theory",
            labels={"figure": "Table 3 fits"},
        ),
        t_pdf="results/figures/theory/fitted_t.pdf",
        t_png=report(
            "results/figures/theory/fitted_t.png",
            caption="../report/fitted_t.rst",
            category="Theory",
            labels={"figure": "fitted t vs SGD step"},
        ),
    log:
        "logs/theory/formula_fits.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("formula_fits.py"),
        eta=THEORY["eta"],
        tau_range=THEORY["tau_range"],
    script:
        "../scripts/formula_fits.py"


rule clock:
    """The theory's clock: tau fitted to runs of several learning rates recorded at equal
    lr x step, its slopes on log step and log lr (and on the normalised clock sum lr/|w|^2),
    and whether either clock collapses the profiles; the linear CNN as the reference."""
    input:
        runs=PLAN.clock_runs(),
        stats=PLAN.training_patch_stats(),
        features=PLAN.training_image_features(),
    output:
        records="results/tables/theory/clock_fits.csv",
        slopes="results/tables/theory/clock.csv",
        collapse="results/tables/theory/clock_collapse.csv",
        twins="results/tables/theory/clock_twins.csv",
        pdf="results/figures/theory/clock.pdf",
        png=report(
            "results/figures/theory/clock.png",
            caption="../report/clock.rst",
            category="Theory",
            labels={"figure": "the theory's clock"},
        ),
    log:
        "logs/theory/clock.log",
    conda:
        ENV
    resources:
        mem_mb=3000,
    params:
        code=code("clock.py"),
        eta=THEORY["eta"],
        tau_range=THEORY["tau_range"],
        settings=canonical({**THEORY["linear_cnn"], **THEORY["clock"]}),
    script:
        "../scripts/clock.py"


rule whitening:
    """Fig. 6: autocorrelation of responses against distance for RGB, random init, the trained
    first layers of the dataset's true-label runs and the ideal whitening bank."""
    input:
        dataset="resources/datasets/{dataset}.h5",
        stats=lambda wc: f"results/patches/{wc.dataset}/k{THEORY['whitening']['k']}.h5",
        runs=lambda wc: expand("results/runs/{run}.h5", run=PLAN.whitening_runs(wc.dataset)),
    output:
        table="results/tables/theory/{dataset}/whitening.csv",
        pdf="results/figures/theory/{dataset}/whitening.pdf",
        png=report(
            "results/figures/theory/{dataset}/whitening.png",
            caption="../report/whitening.rst",
            category="Theory",
            labels={"figure": "whitening", "dataset": "{dataset}"},
        ),
    log:
        "logs/theory/{dataset}_whitening.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3000,
    params:
        code=code("whitening.py"),
        settings=canonical(THEORY["whitening"]),
    script:
        "../scripts/whitening.py"


rule filters_figure:
    """Fig. 19: a run's first-layer filters at the end of training."""
    input:
        "results/runs/{run}.h5",
    output:
        pdf="results/figures/theory/filters/{run}.pdf",
        png=report(
            "results/figures/theory/filters/{run}.png",
            caption="../report/filters.rst",
            category="Filters",
            labels={"figure": "filters", "run": "{run}"},
        ),
    log:
        "logs/theory/filters_{run}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("filters_figure.py"),
    script:
        "../scripts/filters_figure.py"


rule fig_formula:
    input:
        PLAN.theory_figure("formula"),


rule fig_label_stats:
    input:
        PLAN.theory_figure("label_stats"),


rule fig_linear_cnn:
    input:
        PLAN.theory_figure("linear_cnn"),


rule fig_whitening:
    input:
        PLAN.whitening_figures(),


rule fig_fits:
    input:
        PLAN.fit_figures(),


rule fig_clock:
    input:
        PLAN.clock_figures(),


rule fig_filters:
    input:
        PLAN.filter_figures(),


rule theory:
    """Every theory figure and table of the configured datasets and grid."""
    input:
        PLAN.theory_targets(),


rule manipulations:
    """Figs. 8, 17, 18: energy-decile labels and scaled components against unmanipulated runs."""
    input:
        profiles="results/tables/training/profiles.csv",
        stats=PLAN.training_patch_stats(),
        # the scaled runs and their data: the lambdas their transformed images really have
        runs=PLAN.scaled_runs(),
        datasets=PLAN.scaled_run_datasets(),
    output:
        runs="results/tables/theory/manipulations.csv",
        summary="results/tables/theory/manipulations_summary.csv",
        heldout="results/tables/theory/heldout_rescaling.csv",
        pdf="results/figures/theory/manipulations.pdf",
        png=report(
            "results/figures/theory/manipulations.png",
            caption="../report/manipulations.rst",
            category="Theory",
            labels={"figure": "manipulations"},
        ),
    log:
        "logs/theory/manipulations.log",
    conda:
        ENV
    resources:
        mem_mb=PLAN.manipulations_mem_mb(),
    params:
        code=code("manipulations.py"),
        eta=THEORY["eta"],
        tau_range=THEORY["tau_range"],
    script:
        "../scripts/manipulations.py"


rule fig_manipulations:
    input:
        PLAN.manipulation_figures(),


rule recipes:
    """Beyond the paper's recipe: every cell (architecture, optimiser, augmentation, labels)
    against the paper's recipe of the same architecture: accuracy, how far the first layer
    moved, profile correlations, the formula against the best null and the fitted exponent."""
    input:
        profiles="results/tables/training/profiles.csv",
        metrics="results/tables/training/metrics.csv",
        fits="results/tables/theory/fits.csv",
        datasets=PLAN.training_dataset_files(),
        runs=PLAN.strided_runs(),
        strided=PLAN.strided_stats(),
        stats=PLAN.training_patch_stats(),
    output:
        table="results/tables/theory/recipes.csv",
        pdf="results/figures/theory/recipes.pdf",
        png=report(
            "results/figures/theory/recipes.png",
            caption="../report/recipes.rst",
            category="Theory",
            labels={"figure": "recipes"},
        ),
    log:
        "logs/theory/recipes.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("recipes.py"),
    script:
        "../scripts/recipes.py"


rule fig_recipes:
    input:
        PLAN.recipe_outputs(),
