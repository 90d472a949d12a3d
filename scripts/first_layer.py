"""Rule `first_layer`: one model's first-layer weights, from torchvision or a user file."""

from firstlayer.logs import job
from firstlayer.pretrained.layers import (
    torchvision_first_layer,
    user_first_layer,
    write_first_layer,
)

with job(snakemake.log[0]):
    model, spec = snakemake.wildcards.model, snakemake.params.spec
    if spec:
        layer = user_first_layer(model, spec, snakemake.params.groups)
    else:
        print(f"loading {model} through torchvision's weights= API (torch hub cache)")
        layer = torchvision_first_layer(model)
    print(
        f"{model}: first layer {layer.weight.shape} from {layer.source}; input mean "
        f"{layer.input_mean}, std {layer.input_std}"
    )
    write_first_layer(snakemake.output[0], layer, provenance={"model": model, "spec": spec})
