"""Tests of the pretrained-weights providers: trunks never import converters.

`weights="imagenet"` of a trunk is whatever file the registered provider
returns; without a provider the build fails with one clear line.
"""

import numpy as np
import pytest

from grok_tf.model.trunks import build_trunk
from grok_tf.model.trunks import pretrained_weights
from grok_tf.model.trunks.efficientnet_lite import efficientnet_lite0_classifier
from grok_tf.model.trunks.pretrained_weights import pretrained_weights_path
from grok_tf.model.trunks.pretrained_weights import register_pretrained_weights
from grok_tf.model.trunks.pretrained_weights import (
    registered_pretrained_weights,
)

KEY = ("efficientnet_lite0", "imagenet")


@pytest.fixture
def providers(monkeypatch):
    """The provider table, restored after the test."""
    table = dict(pretrained_weights._PROVIDERS)
    monkeypatch.setattr(pretrained_weights, "_PROVIDERS", table)
    return table


def test_trunk_loads_the_file_of_the_registered_provider(providers, tmp_path):
    # Random weights saved from one classifier, served as "imagenet".
    source = efficientnet_lite0_classifier((32, 32, 3))
    path = tmp_path / "lite0.weights.h5"
    source.save_weights(path)
    calls = []

    def loader():
        calls.append(1)
        return str(path)

    register_pretrained_weights(*KEY, loader)
    assert pretrained_weights_path(*KEY) == path
    trunk = build_trunk("efficientnet_lite0", (40, 48, 3), "imagenet")
    assert len(calls) == 2  # our lookup, then the trunk's
    weighted = [layer for layer in trunk.layers if layer.weights]
    # Every weighted layer of the classifier but its `predictions`.
    assert len(weighted) == sum(bool(la.weights) for la in source.layers) - 1
    for layer in weighted:
        expected = source.get_layer(layer.name).get_weights()
        for got, want in zip(layer.get_weights(), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_no_provider_is_one_clear_line(providers):
    providers.clear()
    with pytest.raises(ValueError) as info:
        build_trunk("efficientnet_lite0", (32, 32, 3), "imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "No pretrained weights 'imagenet'" in message
    assert "trunk 'efficientnet_lite0'" in message
    assert "registered: none" in message and "weights: null" in message
    register_pretrained_weights("other", "imagenet", lambda: "x.h5")
    with pytest.raises(ValueError, match=r"registered: other/imagenet;"):
        pretrained_weights_path("efficientnet_lite0", "imagenet")


def test_registration_checks_the_loader_and_the_last_one_wins(providers):
    with pytest.raises(TypeError, match="callable"):
        register_pretrained_weights("t", "w", "not a function")
    register_pretrained_weights("t", "w", lambda: "first.h5")
    register_pretrained_weights("t", "w", lambda: "second.h5")
    assert pretrained_weights_path("t", "w").name == "second.h5"
    assert ("t", "w") in registered_pretrained_weights()


def test_the_converter_registered_its_provider():
    # `import grok_tf.model` (run by any grok_tf.model.* import) imports
    # the converters, which register themselves.
    from grok_tf.model.pretrained import efficientnet_lite0 as converter

    assert KEY in registered_pretrained_weights()
    loader = pretrained_weights._PROVIDERS[KEY]
    assert loader is converter.convert_efficientnet_lite0
