"""Memory guard: footprint estimate, RAM reading, recommendation, auto-cap and strict raise."""

import os

import pytest
from ray import tune

from nwave_lightning.hpo.memory_guard import (
    MemoryGuard,
    MemoryGuardError,
    available_ram_bytes,
    estimate_dataset_bytes,
    recommend_concurrency,
    resolve_concurrency,
)

MIB = 2**20


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "train.pt").write_bytes(b"x" * 3000)
    (tmp_path / "train_big.pt").write_bytes(b"x" * 7000)
    (tmp_path / "val.pt").write_bytes(b"x" * 1000)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "blob.bin").write_bytes(b"x" * 500)
    return tmp_path


def test_footprint_from_data_hints(dataset):
    assert estimate_dataset_bytes(dataset, {"train_file": "train.pt", "val_file": "val.pt"}) == 4000
    # a tuned file hint counts its largest choice
    assert estimate_dataset_bytes(dataset, {"train_file": tune.choice(["train.pt", "train_big.pt"])}) == 7000
    # absolute paths and folders work too
    assert estimate_dataset_bytes(None, {"cache_dir": str(dataset / "other")}) == 500
    # without hints: the whole dataset path
    assert estimate_dataset_bytes(dataset, {"batch_size": 8}) == 11500
    assert estimate_dataset_bytes(dataset / "missing") == 0


def test_available_ram_matches_proc_meminfo():
    with open("/proc/meminfo") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    expected = int(fields["MemAvailable"].split()[0]) * 1024
    assert abs(available_ram_bytes() - expected) < 0.2 * expected  # the machine keeps running meanwhile


def test_recommendation_arithmetic():
    guard = MemoryGuard(safety_fraction=0.5, dataset_memory_multiplier=2.0, trial_overhead_bytes=100 * MIB)
    rec = recommend_concurrency(
        guard, dataset_bytes=200 * MIB, num_samples=50, resources={"cpu": 1, "gpu": 0.25},
        cluster={"CPU": 16, "GPU": 1}, available_bytes=10_000 * MIB,
    )
    # per trial: 200 * 2 + 100 = 500 MiB; budget 5000 MiB -> 10; GPUs 1 / 0.25 = 4; CPUs 16
    assert rec.per_trial_bytes == 500 * MIB and rec.budget_bytes == 5000 * MIB
    assert rec.limits == {"memory": 10, "num_samples": 50, "cpu": 16, "gpu": 4}
    assert (rec.value, rec.limited_by) == (4, "gpu")


def _resolve(guard, requested, available=4096 * MIB, num_samples=8, cpu=1):
    return resolve_concurrency(
        guard, requested, dataset_path=None, data_cfg={}, num_samples=num_samples,
        resources={"cpu": cpu, "gpu": 0}, cluster={"CPU": 8}, available_bytes=available,
    )


def test_auto_cap_when_unset():
    guard = MemoryGuard(trial_overhead_bytes=1024 * MIB)
    value, rec = _resolve(guard, None)
    assert value == rec.value == 3  # floor(0.8 * 4096 / 1024)
    assert rec.limited_by == "memory"


def test_strict_raises_with_actionable_message():
    guard = MemoryGuard(strict=True, trial_overhead_bytes=1024 * MIB)
    with pytest.raises(MemoryGuardError, match=r"set_max_concurrent_trials\(3\)"):
        _resolve(guard, 6)
    assert _resolve(guard, 2)[0] == 2  # at or below the recommendation passes unchanged


def test_non_strict_caps_to_what_fits_and_prints_the_estimate(capsys):
    guard = MemoryGuard(strict=False, trial_overhead_bytes=1024 * MIB)
    value, _ = _resolve(guard, 6)
    out = capsys.readouterr().out
    assert value == 3 and "does not fit in memory" in out and "~1.000 GiB per trial" in out and "Capped to 3" in out


def test_model_memory_counts_per_trial():
    """The dry run's model bytes join the per-trial need: 0.8 * 4096 MiB / (512 + 512) MiB -> 3 trials, not 6."""
    guard = MemoryGuard(trial_overhead_bytes=512 * MIB)
    assert _resolve(guard, None)[0] == 6
    value, rec = resolve_concurrency(
        guard, None, dataset_path=None, data_cfg={}, num_samples=8, resources={"cpu": 1, "gpu": 0},
        cluster={"CPU": 8}, available_bytes=4096 * MIB, model_bytes=512 * MIB,
    )
    assert value == 3 and rec.per_trial_bytes == 1024 * MIB


def test_only_memory_raises():
    """Asking for more trials at once than CPUs or samples allow is Ray's to queue, not a memory error."""
    guard = MemoryGuard(strict=True, trial_overhead_bytes=1 * MIB)
    assert _resolve(guard, 6, num_samples=2)[0] == 6
    assert _resolve(guard, 6, cpu=4)[0] == 6


def test_one_trial_too_big_raises_when_strict():
    guard = MemoryGuard(strict=True, trial_overhead_bytes=8192 * MIB)
    with pytest.raises(MemoryGuardError, match="one trial needs"):
        _resolve(guard, None)


def test_disabled_guard_passes_through():
    assert _resolve(MemoryGuard(enabled=False), 7) == (7, None)


@pytest.mark.parametrize("kwargs", [{"safety_fraction": 0.0}, {"safety_fraction": 1.5}, {"dataset_memory_multiplier": 0}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MemoryGuard(**kwargs)


def test_available_ram_without_meminfo_nor_free_pages(monkeypatch):
    """Where the system tells no free RAM (macOS: no /proc/meminfo, no SC_AVPHYS_PAGES), the guard budgets all RAM."""
    import builtins
    import os

    real_open, real_sysconf = builtins.open, os.sysconf

    def no_meminfo(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    def no_free_pages(name):
        if name == "SC_AVPHYS_PAGES":
            raise ValueError("unrecognized configuration name")
        return real_sysconf(name)

    monkeypatch.setattr(builtins, "open", no_meminfo)
    monkeypatch.setattr(os, "sysconf", no_free_pages)
    assert available_ram_bytes() == real_sysconf("SC_PHYS_PAGES") * real_sysconf("SC_PAGE_SIZE")


def test_available_ram_on_a_kernel_without_memavailable(monkeypatch):
    """An old kernel's /proc/meminfo has no MemAvailable line: the free pages count instead."""
    import builtins
    import io
    import os

    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: io.StringIO("MemTotal: 1000 kB\nMemFree: 500 kB\n")
                        if str(path) == "/proc/meminfo" else real_open(path, *a, **k))
    monkeypatch.setattr(os, "sysconf", {"SC_AVPHYS_PAGES": 300, "SC_PAGE_SIZE": 4096}.__getitem__)
    assert available_ram_bytes() == 300 * 4096
