"""Planning the workflow, torch-free: config validation, facts, run settings, the grid and
every target list (what `rules/common.smk` calls)."""
