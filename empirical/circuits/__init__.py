"""Manipulated networks and what guards them: the image gates E(x) and the renders they learn
from, the fooling circuit, silent units, and natural behaviour measured with counts."""
