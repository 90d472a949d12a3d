rule first_layer:
    """The first-layer weights of one model: torchvision `weights=` download or a user file."""
    output:
        "results/pretrained/weights/{model}.h5",
    log:
        "logs/first_layer/{model}.log",
    conda:
        ENV
    resources:
        mem_mb=3000,
    params:
        code=code("first_layer.py"),
        spec=weight_file_spec,
        groups=lambda wc: (
            sorted(PLAN.pretrained_groups()) if wc.model in PRETRAINED["weight_files"] else None
        ),
    script:
        "../scripts/first_layer.py"


rule pretrained_profiles:
    """Energy profiles of a group of first layers on the dataset's patch PCA, and correlations."""
    input:
        stats="results/patches/{dataset}/k{k}.h5",
        dataset="resources/datasets/{dataset}.h5",
        layers=group_layers,
    output:
        profiles="results/tables/pretrained/{dataset}/k{k}_profiles.csv",
        correlations="results/tables/pretrained/{dataset}/k{k}_correlations.csv",
    log:
        "logs/pretrained_profiles/{dataset}_k{k}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("pretrained_profiles.py"),
        input_space=PRETRAINED["input_space"],
    script:
        "../scripts/pretrained_profiles.py"


rule pretrained_fits:
    """Table 3's pretrained rows: the formula (free tau and the paper's range) and the null
    families fitted to every first layer of a group, in the layer's own input space."""
    input:
        stats="results/patches/{dataset}/k{k}.h5",
        dataset="resources/datasets/{dataset}.h5",
        layers=group_layers,
    output:
        fits="results/tables/pretrained/{dataset}/k{k}_fits.csv",
        table="results/tables/pretrained/{dataset}/k{k}_table3.csv",
    log:
        "logs/pretrained_fits/{dataset}_k{k}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("pretrained_fits.py"),
        input_space=PRETRAINED["input_space"],
        eta=THEORY["eta"],
        tau_range=THEORY["tau_range"],
        trained_on={n: f["trained_on"] for n, f in PRETRAINED["weight_files"].items()},
    script:
        "../scripts/pretrained_fits.py"


rule plot_pretrained_profiles:
    input:
        profiles="results/tables/pretrained/{dataset}/k{k}_profiles.csv",
        stats="results/patches/{dataset}/k{k}.h5",
    output:
        pdf="results/figures/pretrained/{dataset}/k{k}_profiles.pdf",
        png=report(
            "results/figures/pretrained/{dataset}/k{k}_profiles.png",
            caption="../report/pretrained_profiles.rst",
            category="Pretrained models",
            labels={"figure": "profiles", "dataset": "{dataset}", "k": "{k}"},
        ),
    log:
        "logs/plots/pretrained_{dataset}_k{k}_profiles.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("plot_pretrained.py"),
        kind="profiles",
    script:
        "../scripts/plot_pretrained.py"


rule plot_pretrained_heatmap:
    input:
        correlations="results/tables/pretrained/{dataset}/k{k}_correlations.csv",
    output:
        pdf="results/figures/pretrained/{dataset}/k{k}_heatmap.pdf",
        png=report(
            "results/figures/pretrained/{dataset}/k{k}_heatmap.png",
            caption="../report/pretrained_heatmap.rst",
            category="Pretrained models",
            labels={"figure": "heatmap", "dataset": "{dataset}", "k": "{k}"},
        ),
    log:
        "logs/plots/pretrained_{dataset}_k{k}_heatmap.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("plot_pretrained.py"),
        kind="heatmap",
    script:
        "../scripts/plot_pretrained.py"


rule fig_pretrained_profiles:
    """Named target: profiles of every pretrained group on one plot per group."""
    input:
        PLAN.pretrained_outputs("results/figures/pretrained/{dataset}/k{k}_profiles.{ext}"),


rule fig_pretrained_heatmap:
    """Named target: correlation heatmaps of the pretrained profiles."""
    input:
        PLAN.pretrained_outputs("results/figures/pretrained/{dataset}/k{k}_heatmap.{ext}"),


rule pretrained:
    """The pretrained-model study: tables and figures (downloads the ImageNet weights)."""
    input:
        PLAN.pretrained_weights(),
        PLAN.pretrained_outputs("results/tables/pretrained/{dataset}/k{k}_profiles.csv"),
        PLAN.pretrained_outputs("results/tables/pretrained/{dataset}/k{k}_correlations.csv"),
        PLAN.pretrained_outputs("results/tables/pretrained/{dataset}/k{k}_table3.csv"),
        rules.fig_pretrained_profiles.input,
        rules.fig_pretrained_heatmap.input,
