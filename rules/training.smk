rule train:
    """One network: first-layer weights along training and per-epoch metrics. Resumes from
    checkpoints/{run}.pt (outside the declared outputs, so a failed job keeps it)."""
    input:
        run_dataset,
    output:
        "results/runs/{run}.h5",
    log:
        "logs/train/{run}.log",
    benchmark:
        "benchmarks/train/{run}.tsv"
    # short runs form the group `train`, which a cluster profile batches (docs/cluster.md);
    # groups are ignored in local runs
    group:
        training_group
    conda:
        ENV
    # one thread: on a CPU, runs side by side train 1.28x faster than one at a time on both
    # cores (bench/cpu_threads.py); the cluster profile sets 2 (one GPU per batch, in turn)
    threads: 1
    resources:
        mem_mb=training_mem_mb,
        runtime=training_minutes,
    params:
        code=code("train.py"),
        spec=lambda wc: GRID[wc.run]["spec"].as_dict(),
        checkpoint=lambda wc: f"checkpoints/{wc.run}.pt",
    script:
        "../scripts/train.py"


rule training_profiles:
    """Energy profiles of every run at every recorded step, and every run's metrics."""
    input:
        runs=PLAN.runs(),
        stats=PLAN.training_patch_stats(),
    output:
        profiles="results/tables/training/profiles.csv",
        metrics="results/tables/training/metrics.csv",
    log:
        "logs/training_profiles.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("training_profiles.py"),
    script:
        "../scripts/training_profiles.py"


rule consistency_tables:
    """Tables 1 and 2: profile correlations across seeds, widths, architectures, labels, init."""
    input:
        "results/tables/training/profiles.csv",
    output:
        tables="results/tables/training/tables.csv",
        correlations="results/tables/training/run_correlations.csv",
        pdf="results/figures/training/tables.pdf",
        png=report(
            "results/figures/training/tables.png",
            caption="../report/training_tables.rst",
            category="Training",
            labels={"figure": "Tables 1 and 2"},
        ),
    log:
        "logs/consistency_tables.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("consistency_tables.py"),
    script:
        "../scripts/consistency_tables.py"


# One rule per figure: each has its own caption in the report (captions cannot use wildcards).
for figure in ["true_vs_random", "consistency", "frozen", "heatmap"]:

    rule:
        name:
            f"plot_{figure}"
        input:
            profiles="results/tables/training/profiles.csv",
            metrics="results/tables/training/metrics.csv",
            correlations="results/tables/training/run_correlations.csv",
        output:
            pdf=f"results/figures/training/{figure}.pdf",
            png=report(
                f"results/figures/training/{figure}.png",
                caption=f"../report/training_{figure}.rst",
                category="Training",
                labels={"figure": figure},
            ),
        log:
            f"logs/plots/training_{figure}.log",
        conda:
            ENV
        resources:
            mem_mb=2000,
        params:
            code=code("plot_training.py"),
            figure=figure,
        script:
            "../scripts/plot_training.py"


rule fig_true_vs_random:
    input:
        PLAN.training_figure("true_vs_random"),


rule fig_consistency:
    input:
        PLAN.training_figure("consistency"),


rule fig_frozen:
    input:
        PLAN.training_figure("frozen"),


rule fig_heatmap:
    input:
        PLAN.training_figure("heatmap"),


rule fig_tables:
    input:
        figures("results/figures/training/tables"),


checkpoint gpu_grant:
    """First job of a cluster run that trains on GPUs: asks for the GPUs a train job asks for,
    records what torch sees (count, names, compute capability) and stops the run's training
    with one line if that differs from the request (firstlayer.training.grant)."""
    output:
        "results/cluster/gpu_grant/{stamp}.json",
    log:
        "logs/gpu_grant/{stamp}.log",
    conda:
        ENV
    threads: 1
    resources:
        **GRANT_RESOURCES,
        mem_mb=4000,
        runtime=10,
    params:
        code=code("gpu_grant.py"),
        request=GRANT_RESOURCES,
    script:
        "../scripts/gpu_grant.py"


rule calibrate:
    """Images per second of every network the grid trains, on the device the job runs on, with
    the real trainer: the throughput the cluster requests assume (firstlayer.training.calibrate,
    firstlayer.common.cost)."""
    output:
        CALIBRATION,
    log:
        "logs/calibrate.log",
    benchmark:
        "benchmarks/calibrate.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        code=code("calibrate.py"),
        networks=PLAN.networks(),
    script:
        "../scripts/calibrate.py"
