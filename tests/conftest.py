import os

import pytest

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def pytest_configure(config):
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    if not os.path.exists(os.path.join(FASHION_MNIST, "train-labels-idx1-ubyte.gz")):
        pytest.skip("Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)")
    return FASHION_MNIST
