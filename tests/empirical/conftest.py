import pytest
import torch

from fvtrust.empirical.nets.registry import load_model


@pytest.fixture(scope="session")
def lite0():
    torch.set_num_threads(2)
    return load_model("efficientnet_lite0")
