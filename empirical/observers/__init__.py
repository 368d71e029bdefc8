"""The machine observer: its embedding network, the 2-AFC decision rules, occlusions,
similarities, the hierarchical bootstrap and the papers' human data."""
