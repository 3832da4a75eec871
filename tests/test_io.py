"""Crash-safe writes: an interrupted write never replaces or corrupts the existing file."""

import os

import pytest
import torch

from mia.utils.io import atomic_open, atomic_torch_save


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "last.pt"
    atomic_torch_save({"w": torch.ones(3)}, target)
    before = target.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target, "wb") as handle:
            handle.write(b"half a checkpoint")
            raise KeyboardInterrupt  # the process is killed mid-write
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]
    assert torch.load(target, weights_only=True)["w"].sum() == 3


def test_written_files_get_the_usual_permissions(tmp_path):
    atomic_torch_save({"w": torch.ones(1)}, tmp_path / "x.pt")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o666 & ~umask
