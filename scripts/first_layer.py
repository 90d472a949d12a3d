"""Rule `first_layer`: one model's first-layer weights, from torchvision or a user file."""

import numpy as np

from firstlayer.logs import job
from firstlayer.pretrained.layers import (
    FirstLayer,
    load_weight_file,
    torchvision_first_layer,
    write_first_layer,
)

with job(snakemake.log[0]):
    model = snakemake.wildcards.model
    spec = snakemake.params.spec
    if spec:
        weight = load_weight_file(spec["path"], spec.get("tensor"))
        # An empty normalisation means "the dataset's own": resolved where the dataset is known.
        mean = np.asarray(spec.get("input_mean") or [], np.float64)
        std = np.asarray(spec.get("input_std") or [], np.float64)
        layer = FirstLayer(model, weight, mean, std, source=f"file:{spec['path']}")
    else:
        print(f"loading {model} through torchvision's weights= API (torch hub cache)")
        layer = torchvision_first_layer(model)
    print(
        f"{model}: first layer {layer.weight.shape} from {layer.source}; input mean "
        f"{layer.input_mean}, std {layer.input_std}"
    )
    write_first_layer(snakemake.output[0], layer, provenance={"model": model, "spec": spec})
