"""The linear-CNN theory and its checks against trained first layers (`rules/theory.smk`)."""
