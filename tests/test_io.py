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


def test_temporaries_of_a_killed_write_are_removed_and_a_failed_cache_save_is_survived(
        tmp_path, caplog):
    """A process killed mid-write leaves its temporary file (GBs for a feature cache); the
    next run removes it. A cache that cannot be written (disk full) warns once and training
    goes on: it only saves time."""
    from mia.training.feature_cache import FeatureCacheKeeper
    from mia.utils.io import remove_stale_temporaries

    (tmp_path / "cache").mkdir()
    target = tmp_path / "cache/frozen-stages-0.pt"
    stale = tmp_path / "cache/.frozen-stages-0.pt.k3j2h1.tmp"
    other = tmp_path / "cache/.notes.txt.k3j2h1.tmp"  # another file's: not this one's
    stale.write_bytes(b"half")
    other.write_bytes(b"half")

    class FullDisk:
        entries: dict = {}
        saves = 0

        def save(self, path, fingerprint):
            self.saves += 1
            raise OSError(28, "No space left on device")

    cache = FullDisk()
    keeper = FeatureCacheKeeper(cache, target, "fingerprint")
    assert not stale.exists() and other.exists()
    cache.entries = {(0, 0): None}
    with caplog.at_level("WARNING", logger="mia.training.hooks"):
        keeper.after_epoch(None, {})
    assert "could not be saved" in caplog.text and "No space left" in caplog.text
    cache.entries[(1, 0)] = None
    keeper.after_epoch(None, {})
    assert cache.saves == 1 and not target.exists()
    assert remove_stale_temporaries(tmp_path / "cache/*") == 1 and not other.exists()
