import pytest

from fvtrust.cpus import use_threads
from fvtrust.empirical.nets.registry import load_model


@pytest.fixture(scope="session")
def lite0():
    use_threads()  # the CPUs this process may use (FVTRUST_THREADS overrides)
    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def shared_stages(tmp_path_factory):
    """One stage folder for the session: the small gate (and its render bank) is saved here by
    the first test that needs it and reused, by key, by every later one."""
    return tmp_path_factory.mktemp("shared_stages")
