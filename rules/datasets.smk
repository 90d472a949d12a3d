rule dataset:
    """One dataset as uint8 NHWC images + labels (torchvision download, ImageFolder, npz, or
    some classes of another dataset)."""
    input:
        unpack(parent_dataset),
    output:
        "resources/datasets/{dataset}.h5",
    log:
        "logs/dataset/{dataset}.log",
    benchmark:
        "benchmarks/dataset/{dataset}.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
    params:
        code=code("build_dataset.py"),
        spec=dataset_spec,
        download_root=lambda wc: f"resources/downloads/{wc.dataset}",
    script:
        "../scripts/build_dataset.py"
