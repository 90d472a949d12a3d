rule patch_stats:
    """Exact covariance and PCA of all k x k patches of a sample of one split."""
    input:
        "resources/datasets/{dataset}.h5",
    output:
        "results/patches/{dataset}/k{k}.h5",
    log:
        "logs/patch_stats/{dataset}_k{k}.log",
    benchmark:
        "benchmarks/patch_stats/{dataset}_k{k}.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=2000,
    params:
        code=code("patch_stats.py"),
        settings=lambda wc: {
            key: PATCHES[key]
            for key in ("split", "n_images", "seed", "normalization", "chunk_images", "strategy")
        },
    script:
        "../scripts/patch_stats.py"


rule plot_patch_spectrum:
    input:
        "results/patches/{dataset}/k{k}.h5",
    output:
        pdf="results/figures/patches/{dataset}/k{k}_spectrum.pdf",
        png=report(
            "results/figures/patches/{dataset}/k{k}_spectrum.png",
            caption="../report/patch_spectrum.rst",
            category="Patch statistics",
            labels={"figure": "spectrum", "dataset": "{dataset}", "k": "{k}"},
        ),
    log:
        "logs/plots/{dataset}_k{k}_spectrum.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("plot_patches.py"),
        kind="spectrum",
    script:
        "../scripts/plot_patches.py"


rule plot_patch_components:
    input:
        "results/patches/{dataset}/k{k}.h5",
    output:
        pdf="results/figures/patches/{dataset}/k{k}_components.pdf",
        png=report(
            "results/figures/patches/{dataset}/k{k}_components.png",
            caption="../report/patch_components.rst",
            category="Patch statistics",
            labels={"figure": "components", "dataset": "{dataset}", "k": "{k}"},
        ),
    log:
        "logs/plots/{dataset}_k{k}_components.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("plot_patches.py"),
        kind="components",
    script:
        "../scripts/plot_patches.py"


rule fig_patch_spectrum:
    """Named target: the eigenvalue spectra of every configured dataset and k."""
    input:
        PLAN.patch_figures("spectrum"),


rule fig_patch_components:
    """Named target: the principal components as images, every configured dataset and k."""
    input:
        PLAN.patch_figures("components"),


rule strided_stats:
    """The patch statistics of a stride-s grid of k x k positions (what a patchify stem sees),
    on the images of the all-position statistics, and how they differ component by component."""
    input:
        dataset="resources/datasets/{dataset}.h5",
        stats="results/patches/{dataset}/k{k}.h5",
    output:
        stats="results/patches/{dataset}/k{k}_stride{stride}.h5",
        table="results/tables/patches/{dataset}/k{k}_stride{stride}.csv",
    log:
        "logs/strided_stats/{dataset}_k{k}_stride{stride}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("strided_stats.py"),
    script:
        "../scripts/strided_stats.py"
