"""Rule `image_features`: per-image average patches and patch energies of the patch sample."""

from firstlayer.logs import job
from firstlayer.patches.features import build_image_features

with job(snakemake.log[0]):
    build_image_features(
        snakemake.input.dataset,
        snakemake.input.stats,
        snakemake.output[0],
        progress=lambda done, total: print(f"  {done}/{total} images", flush=True),
    )
    print(f"wrote {snakemake.output[0]}")
