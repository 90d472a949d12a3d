"""Rule `dataset`: build resources/datasets/{dataset}.h5 from the configured source."""

from firstlayer.datasets.sources import build_dataset
from firstlayer.logs import job

with job(snakemake.log[0]):
    name = snakemake.wildcards.dataset
    spec = {key: value for key, value in snakemake.params.spec.items() if value is not None}
    print(f"building dataset {name!r} from {spec}")
    build_dataset(
        name,
        dict(snakemake.params.spec),
        snakemake.output[0],
        snakemake.params.download_root,
        progress=lambda n: print(f"  read {n} images", flush=True),
        parent_path=snakemake.input.get("parent"),
        synthetic=snakemake.input.get("synthetic"),
    )
    print(f"wrote {snakemake.output[0]}")
