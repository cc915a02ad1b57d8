"""Joining an existing Ray cluster (``address=``): a local 2-node cluster, one CPU per node."""

import os

import pytest
from ray import tune

from nwave_lightning.hpo import HPOWrapper

from . import _toys


@pytest.mark.slow
def test_trials_spread_over_a_two_node_cluster(tmp_path):
    import ray
    import ray.cloudpickle
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # leave the shared local instance; the next test restarts it
        ray.shutdown()
    ray.cloudpickle.register_pickle_by_value(_toys)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        runs = tmp_path / "runs"
        runs.mkdir()
        hpo = HPOWrapper(
            model_builder=_toys.build_toy_model, dataset_builder=_toys.build_toy_data, train_fn=_toys.quick_train_fn,
            loss_builders={"main": _toys.build_toy_loss}, metric_builders={"acc": _toys.build_toy_acc},
            metric="val_acc", mode="max", experiment_name="cluster", storage_path=str(tmp_path / "results"),
            address=cluster.address, verbose=0,
        )
        hpo.bind_model_param("run_marker", str(runs))
        hpo.bind_model_param("hold", 1.0)  # seconds per epoch, so that the two trials overlap
        hpo.bind_optimizer_param("lr", tune.grid_search([1e-2, 3e-2]))
        hpo.bind_trainer_param("epochs", 3)
        hpo.set_resources(cpu=1, gpu=0)
        hpo.set_max_concurrent_trials(2)
        results = hpo.run()
        assert ray.get_runtime_context().gcs_address == cluster.address
        assert ray.cluster_resources()["CPU"] == 2 and len(ray.nodes()) == 2
        assert len(results) == 2 and not results.errors
        nodes = {open(runs / name).read() for name in os.listdir(runs)}
        assert nodes == {cluster.head_node.node_id, worker.node_id}  # one trial per 1-CPU node
        with pytest.raises(ValueError, match="already connected"):
            HPOWrapper(_toys.build_toy_model, _toys.build_toy_data, address="10.0.0.1:6379").run()
    finally:
        ray.shutdown()
        cluster.shutdown()
