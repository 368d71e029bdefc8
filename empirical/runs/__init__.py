"""Long runs over many experiments: the appendix and the sweep on Ray."""
