"""The READMEs' Python examples run as printed (the training one shortened to two batches) and do what they say."""

import os
import re
import warnings

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
TUTORIALS_README = os.path.join(ROOT, "tutorials", "README.md")


def _python_blocks(path: str = README) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return re.findall(r"```python\n(.*?)```", handle.read(), flags=re.S)


def _check_layers(ns, tmp_path):
    # "whole sequence at once", then "one step": the step is the sequence's first step.
    assert ns["spikes"].shape == ns["membranes"].shape == (4, 100, 16)
    assert ns["spk_t"].shape == ns["mem_t"].shape == (4, 16)
    assert ns["spikes"].sum() > 0, "the example's layer never fires"
    assert torch.equal(ns["spk_t"], ns["spikes"][:, 0])
    torch.testing.assert_close(ns["mem_t"], ns["membranes"][:, 0])


def _check_training(ns, tmp_path):
    module, before = ns["module"], ns["__before__"]
    assert module.trainer.global_step == 2  # the two shortened batches
    # Weights trained: a sign-parametrised matrix keeps its Parameter (holding |W|, the sign moves to
    # logits made in setup), so each pre-fit parameter is compared with what it holds untrained.
    changed = []
    for name, p in module.named_parameters():
        if id(p) in before:
            untrained = before[id(p)].abs() if name.endswith(".original") else before[id(p)]
            changed.append(not torch.equal(p.detach(), untrained))
    assert len(changed) >= 3 and all(changed), "fit ran but the weights did not move"
    assert module.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01)
    for key in ("train_loss", "val_loss", "val_acc"):
        assert torch.isfinite(module.trainer.callback_metrics[key]), key


def _check_deploy(ns, tmp_path):
    # The example asserts the round trip itself; here: the files it says it writes.
    for name in ("model.json", "model.npz", "model.nir"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert ns["check_chip"](ns["net"]), "the fresh net should have chip violations for check_chip to list"


def _check_arrays(ns, tmp_path):
    # "stratified, standardised, padded + mask"; "signed values -> 6 rate channels"; "class count read from net".
    dm, x, y, module = ns["dm"], ns["x"], ns["y"], ns["module"]
    sizes = {name: len(split.y) for name, split in dm.splits.items()}
    assert sizes == {"train": 120, "val": 40, "test": 40}, sizes
    for name, split in dm.splits.items():  # stratified: each split keeps the class balance within one sample
        share = float(split.y.float().mean())
        assert abs(share - y.mean()) * sizes[name] <= 1.0, (name, share, y.mean())
    lengths = {len(sample) for sample in x}
    assert dm.variable_length and dm.max_length == max(lengths)
    real = torch.cat([split.x[split.mask] for split in [dm.splits["train"]]])
    torch.testing.assert_close(real.mean(0), torch.zeros(3), atol=1e-5, rtol=0)  # standardised on real steps
    xb, yb, meta = next(iter(dm.train_dataloader()))
    assert meta["mask"].shape == xb.shape[:2] and not bool(meta["mask"].all())  # padded, and the mask says where
    assert module.net.encoder(xb).shape[-1] == 6
    assert dm.num_classes == 2 and module.net.num_classes == 2
    # "Train it as above, for 30 epochs": it learns (chance is 0.5; the default lr 1e-3 stays there).
    import lightning.pytorch as pl

    trainer = pl.Trainer(max_epochs=30, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, deterministic=True)
    trainer.fit(module, dm)
    assert float(trainer.callback_metrics["val_acc"]) >= 0.65, float(trainer.callback_metrics["val_acc"])


# A fragment that identifies each README example -> what it must have done.
CHECKS = {
    "H1v2Frontend(8)": _check_layers,
    "pl.Trainer(max_epochs=5)": _check_training,
    "export_chip(": _check_deploy,
    "ArrayDataModule(x, y": _check_arrays,
}


def _snapshot(module):
    return {id(p): p.detach().clone() for p in module.parameters()}


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything the example writes (lightning_logs/) stays in tmp
    original = _python_blocks()[index]
    checks = [check for fragment, check in CHECKS.items() if fragment in original]
    assert len(checks) == 1, f"README python block {index} has no check here (or several): add one to CHECKS"
    # Same call, fewer batches: the example's point is the API, not five epochs of digits.
    code = original.replace(
        "pl.Trainer(max_epochs=5)",
        "__before__ = __snapshot__(module); pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, "
        "logger=False, enable_checkpointing=False, enable_progress_bar=False)",
    )
    assert "pl.Trainer(max_epochs=5)" not in code and ("Trainer(" not in code or "limit_train_batches=2" in code), (
        "README's training example changed: update the shortening above"
    )
    namespace = {"__name__": "__readme__", "__snapshot__": _snapshot}
    torch.manual_seed(0)
    exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    checks[0](namespace, tmp_path)


def test_tutorials_readme_python_example_runs(tmp_path, monkeypatch):
    # The example prints (as a comment) the warning fluct_init gives for a one-channel input: it must give it.
    monkeypatch.chdir(tmp_path)
    (code,) = _python_blocks(TUTORIALS_README)
    printed = re.search(r"# UserWarning: (.*?)\n(?!#)", code + "\n", flags=re.S).group(1)
    printed = " ".join(line.lstrip("# ").strip() for line in printed.splitlines())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace = {"__name__": "__readme__"}
        exec(compile(code, "tutorials/README.md python block 0", "exec"), namespace)
    messages = [" ".join(str(w.message).split()) for w in caught if issubclass(w.category, UserWarning)]
    assert printed in messages, (printed, messages)
    layer = namespace["net"].lif
    assert float(layer.recurrent_weights.detach().abs().max()) <= 1.66  # the init stayed in the H1v2 range
