"""Ray for the HPO tests: one small local instance (2 CPUs, no dashboard) shared by the tests.

Tests that need another cluster (``test_cluster.py``) shut it down; the next test
using ``ray_local`` starts it again.
"""

import os

import pytest

# The test helpers live outside any package Ray workers can import: ship them by value.
os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def _start_local_ray():
    import ray
    import ray.cloudpickle

    from . import _toys, sdk_template

    ray.cloudpickle.register_pickle_by_value(_toys)
    ray.cloudpickle.register_pickle_by_value(sdk_template)
    if not ray.is_initialized():
        # address="local": a new instance of its own, even where another Ray cluster runs on this machine
        # (ray.init() would join that one, whose CPUs are not the 2 these tests count on)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


@pytest.fixture(scope="session")
def _ray_session():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_local(_ray_session):
    return _start_local_ray()
