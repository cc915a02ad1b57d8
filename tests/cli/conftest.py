"""A clean argv for the CLI tests: main(args) parses `args`, never pytest's own."""

import sys

import pytest


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    # pytest's argv would only trigger LightningCLI's mixed-input warning.
    monkeypatch.setattr(sys, "argv", ["nwave"])
