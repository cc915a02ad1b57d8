"""Every public module's ``>>>`` examples run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest

import nwave_lightning


def _modules():
    names = ["nwave_lightning.kernels"]
    for info in pkgutil.walk_packages(nwave_lightning.__path__, prefix="nwave_lightning."):
        names.append(info.name)
    return sorted(set(names))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"
