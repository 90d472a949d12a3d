"""Patch statistics, energy profiles and per-image patch features (`rules/patches.smk`)."""
