"""Building the dataset files every later stage reads (`rules/datasets.smk`)."""
