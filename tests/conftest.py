import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite runs the models on PyTorch; the ONNX Runtime backend has its own tests
# (tests/integration/test_onnx_backend.py) that ask for it explicitly.
os.environ.setdefault("SEGLENS_BACKEND", "torch")

import pytest


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """One directory of locally built tiny models shared by the whole session."""
    return tmp_path_factory.mktemp("seglens-models")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory, models_dir):
    """A data dir whose models/ is the shared tiny-model directory (built once)."""
    root = tmp_path_factory.mktemp("seglens-data")
    (root / "models").symlink_to(models_dir, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def photos():
    """Real photos shipped with scikit-image: name -> (H, W, 3) uint8."""
    import skimage.data

    return {
        "chelsea": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "astronaut": skimage.data.astronaut(),
    }
