import pytest

from fvtrust.cpus import use_threads
from fvtrust.empirical.nets.registry import load_model


@pytest.fixture(scope="session")
def lite0():
    use_threads()  # the CPUs this process may use (FVTRUST_THREADS overrides)
    return load_model("efficientnet_lite0")
