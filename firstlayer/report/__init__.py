"""Figures and the generated blocks of the documentation."""
