"""Hypothesis profiles: ``ci`` (default; derandomized, bounded) and ``thorough``.

Select with ``FVTRUST_HYPOTHESIS_PROFILE=thorough pytest``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=15, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("FVTRUST_HYPOTHESIS_PROFILE", "ci"))
