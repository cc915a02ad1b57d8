"""The READMEs' Python examples run as printed (the training one shortened to two batches)."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
TUTORIALS_README = os.path.join(ROOT, "tutorials", "README.md")


def _python_blocks(path: str = README) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return re.findall(r"```python\n(.*?)```", handle.read(), flags=re.S)


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything the example writes (lightning_logs/) stays in tmp
    code = _python_blocks()[index]
    # Same call, fewer batches: the example's point is the API, not five epochs of digits.
    code = code.replace(
        "pl.Trainer(max_epochs=5)",
        "pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, "
        "enable_checkpointing=False, enable_progress_bar=False)",
    )
    assert "pl.Trainer(max_epochs=5)" not in code and ("Trainer(" not in code or "limit_train_batches=2" in code), (
        "README's training example changed: update the shortening above"
    )
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("index", range(len(_python_blocks(TUTORIALS_README))))
def test_tutorials_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _python_blocks(TUTORIALS_README)[index]
    exec(compile(code, f"tutorials/README.md python block {index}", "exec"), {"__name__": "__readme__"})
