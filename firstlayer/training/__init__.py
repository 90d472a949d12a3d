"""Training runs and their analysis: models, devices, manipulations, Tables 1 and 2
(`rules/training.smk`)."""
