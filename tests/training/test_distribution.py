import json
import os

import pytest

from grok_tf.training.distribution import DistributionError
from grok_tf.training.distribution import cluster_workers
from grok_tf.training.distribution import join_cluster
from grok_tf.training.distribution import training_strategy
from tests.harness import two_replica_strategy


def test_one_machine_gets_mirrored_replicas(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert training_strategy(2) is two_replica_strategy()
    assert training_strategy(2).num_replicas_in_sync == 2
    assert training_strategy(1).num_replicas_in_sync == 1


def test_cluster_settings(monkeypatch):
    workers = ["10.0.0.1:2222", "10.0.0.2:2222"]
    # Registered with monkeypatch so the test leaves TF_CONFIG as it was.
    monkeypatch.setenv("TF_CONFIG", "{}")
    join_cluster(workers, 1)
    assert cluster_workers() == workers
    assert json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1
    with pytest.raises(DistributionError, match="is not in 0..1"):
        join_cluster(workers, 2)
    with pytest.raises(DistributionError, match="--replicas is for one"):
        training_strategy(2)
