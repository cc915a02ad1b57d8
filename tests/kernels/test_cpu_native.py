"""The C library cache: planted or damaged files are never loaded blindly."""

import os
import subprocess
import sys
import warnings

import pytest

from nwave_lightning.kernels import _cpu_native

pytestmark = pytest.mark.skipif(
    _cpu_native.shutil.which("gcc") is None, reason="needs gcc to build the library and a planted one"
)


@pytest.fixture
def fresh_native_state(monkeypatch):
    monkeypatch.setattr(_cpu_native, "_state", {})
    yield


def _library_name(tmp_path, monkeypatch):
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    monkeypatch.setenv("NWAVE_CACHE_DIR", str(own))
    assert _cpu_native.library() is not None
    (name,) = [p.name for p in own.glob("nwave_lif_cpu_*.so")]
    monkeypatch.setattr(_cpu_native, "_state", {})
    return name


def _plant(folder, name, marker):
    source = folder / "planted.c"
    source.write_text(
        "#include <stdio.h>\n__attribute__((constructor)) static void run(void) "
        f'{{ FILE* f = fopen("{marker}", "w"); fputs("ran", f); fclose(f); }}\n'
    )
    subprocess.run(["gcc", "-shared", "-fPIC", str(source), "-o", str(folder / name)], check=True)
    source.unlink()


@pytest.mark.parametrize("weak", ["folder", "file"])
def test_a_library_planted_where_others_can_write_is_not_loaded(tmp_path, monkeypatch, fresh_native_state, weak):
    name = _library_name(tmp_path, monkeypatch)
    shared = tmp_path / "shared"
    shared.mkdir()
    marker = tmp_path / "constructor_ran"
    _plant(shared, name, marker)
    os.chmod(shared, 0o777 if weak == "folder" else 0o700)
    os.chmod(shared / name, 0o755 if weak == "folder" else 0o777)
    monkeypatch.setenv("NWAVE_CACHE_DIR", str(shared))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib = _cpu_native.library()
    assert not marker.exists(), "the planted library's constructor ran"
    assert lib is not None and hasattr(lib, "lif_forward_f32")  # built privately instead
    assert any("private temporary folder" in str(w.message) for w in caught)


def test_an_empty_cached_file_is_rebuilt_with_a_warning(tmp_path, monkeypatch, fresh_native_state):
    name = _library_name(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / name).write_bytes(b"")
    os.chmod(cache / name, 0o644)
    monkeypatch.setenv("NWAVE_CACHE_DIR", str(cache))
    with pytest.warns(RuntimeWarning, match="is empty"):
        assert _cpu_native.library() is not None
    assert (cache / name).stat().st_size > 0


def test_a_garbled_cached_file_is_rebuilt_in_a_fresh_process(tmp_path, monkeypatch, fresh_native_state):
    name = _library_name(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / name).write_bytes(b"\x7fELF garbled" * 64)
    os.chmod(cache / name, 0o644)
    # A fresh process: this one already has a library of that name mapped.
    code = (
        "import importlib.util, warnings; warnings.simplefilter('always')\n"
        f"spec = importlib.util.spec_from_file_location('cpu_native', {_cpu_native.__file__!r})\n"
        "native = importlib.util.module_from_spec(spec); spec.loader.exec_module(native)\n"
        "print('loaded', native.library() is not None)\n"
    )
    env = {**os.environ, "NWAVE_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "loaded True" in proc.stdout, proc.stderr
    assert "failed to load" in proc.stderr and "rebuilding it" in proc.stderr
    assert (cache / name).stat().st_size > 1000
