"""Package discovery that pyproject.toml cannot express declaratively.

The Triton kernels live in the top-level ``kernels/`` folder of the repository
(the layout the design card fixes) but ship as ``nwave_lightning.kernels``: a
bare ``kernels`` import name belongs to an unrelated package on the index.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["nwave_lightning", "nwave_lightning.*"]) + ["nwave_lightning.kernels"],
    package_dir={"nwave_lightning.kernels": "kernels"},
)
