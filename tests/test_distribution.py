import json

import pytest

from grok_tf.distribution import DistributionError
from grok_tf.distribution import cluster_workers
from grok_tf.distribution import training_strategy
from tests.harness import two_replica_strategy


def test_one_machine_gets_mirrored_replicas(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert training_strategy(2) is two_replica_strategy()
    assert training_strategy(2).num_replicas_in_sync == 2
    assert training_strategy(1).num_replicas_in_sync == 1


def test_a_cluster_is_refused_clearly_not_ignored(monkeypatch):
    workers = ["10.0.0.1:2222", "10.0.0.2:2222"]
    config = {"cluster": {"worker": workers}, "task": {"index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert cluster_workers() == workers
    with pytest.raises(DistributionError, match="keras-team/keras#20585"):
        training_strategy(1)
