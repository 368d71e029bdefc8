"""What a person reads: one writer per result (JSON beside PNG/PDF figures), tables and LaTeX,
all drawn from saved results."""
