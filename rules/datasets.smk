rule dataset:
    """One dataset as uint8 NHWC images + labels (torchvision download, ImageFolder, npz, or
    some classes of another dataset; in a rehearsal, a torchvision dataset's synthetic copy)."""
    input:
        unpack(dataset_inputs),
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


rule synthetic_dataset:
    """Rehearsal: a small synthetic copy of a torchvision dataset in torchvision's own file
    formats, with the md5 of every file torchvision checks (firstlayer.datasets.synthetic)."""
    output:
        directory("resources/synthetic/{dataset}"),
    log:
        "logs/synthetic_dataset/{dataset}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        code=code("synthetic_dataset.py"),
        name=lambda wc: config["datasets"][wc.dataset]["name"],
    script:
        "../scripts/synthetic_dataset.py"
