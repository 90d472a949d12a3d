"""First layers of pretrained networks and user weight files (`rules/pretrained.smk`)."""
