import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real CIFAR-10 copies beside the checkout (FIRSTLAYER_SHARED_DATA). Tests skip without
    them; with FIRSTLAYER_REQUIRE_SHARED_DATA=1 (set in CI) a missing copy is a failure."""
    location = os.environ.get("FIRSTLAYER_SHARED_DATA")
    path = Path(location) if location else None
    if path is None or not (path / "cifar10-jpeg.zip").is_file():
        message = f"real CIFAR-10 copy not found (FIRSTLAYER_SHARED_DATA={location!r})"
        if os.environ.get("FIRSTLAYER_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def cifar_lossless(shared_data):
    with np.load(shared_data / "cifar10-train4000-lossless.npz") as archive:
        return archive["x"], archive["y"]


def smooth_images(n, height, width, channels, seed=0):
    """uint8 images with spatial correlation (blurred noise), like natural images in miniature."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, height + 2, width + 2, channels))
    x = (x[:, :-2, :-2] + x[:, 1:-1, 1:-1] + x[:, 2:, 2:] + x[:, 1:-1, :-2] + x[:, :-2, 1:-1]) / 5
    x = 128 + 60 * x + rng.normal(scale=10, size=(1, 1, 1, channels))
    return np.clip(x, 0, 255).astype(np.uint8)
