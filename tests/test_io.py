"""atomic_write: the whole file or nothing, never a stray temporary file."""

from __future__ import annotations

import os

import pytest

from nwave_lightning.io import atomic_write


def _text_writer(text: str):
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    return write


def test_writes_the_file_creating_missing_folders(tmp_path):
    target = tmp_path / "a" / "b" / "report.csv"
    assert atomic_write(target, _text_writer("x,y\n")) == str(target)
    assert target.read_text() == "x,y\n"
    assert os.listdir(target.parent) == ["report.csv"]


def test_the_temporary_file_sits_beside_the_target_and_keeps_its_suffix(tmp_path):
    seen = []
    atomic_write(tmp_path / "model.npz", lambda tmp: (seen.append(tmp), open(tmp, "wb").close()))
    (tmp,) = seen
    assert os.path.dirname(tmp) == str(tmp_path)  # same folder: the rename is atomic
    name = os.path.basename(tmp)
    assert name.startswith(".model.tmp-") and name.endswith(".npz")


def test_a_failed_write_removes_the_temporary_file_and_keeps_the_old_content(tmp_path):
    target = tmp_path / "best_model.pt"
    target.write_text("previous")

    def broken(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, broken)
    assert target.read_text() == "previous"
    assert os.listdir(tmp_path) == ["best_model.pt"]


def test_a_failed_rename_removes_the_temporary_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(f"read-only: {dst}")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write(tmp_path / "x.json", _text_writer("{}"))
    assert os.listdir(tmp_path) == []


def test_the_file_gets_the_permissions_of_any_new_file(tmp_path):
    atomic_write(tmp_path / "a.txt", _text_writer("a"))
    with open(tmp_path / "b.txt", "w", encoding="utf-8") as handle:
        handle.write("b")
    assert os.stat(tmp_path / "a.txt").st_mode == os.stat(tmp_path / "b.txt").st_mode


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"write_fn='text' must be a callable"):
        atomic_write(tmp_path / "x", "text")
    with pytest.raises(ValueError, match=r"names a folder"):
        atomic_write(str(tmp_path) + os.sep, _text_writer(""))
