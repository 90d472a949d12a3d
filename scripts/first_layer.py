"""Rule `first_layer`: one model's first-layer weights, from torchvision or a user file."""

from firstlayer.logs import job
from firstlayer.pretrained.layers import (
    configured_first_layer,
    user_first_layer,
    write_first_layer,
)

with job(snakemake.log[0]):
    model, spec = snakemake.wildcards.model, snakemake.params.spec
    if spec:
        layer = user_first_layer(model, spec, snakemake.params.groups)
    else:
        layer = configured_first_layer(model, None)
    write_first_layer(snakemake.output[0], layer, provenance={"model": model, "spec": spec})
