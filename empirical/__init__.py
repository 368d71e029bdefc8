"""Experiments on real networks: feature-visualization rendering, fooling circuits, silent
units, the sanity check and machine-observer psychophysics (see the issues for status)."""
