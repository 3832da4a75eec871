"""Distributed training: 2 CPU processes (gloo) reach the same weights as one process on
the same global batches, log and checkpoint once, and resume a run across world sizes."""

import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch

from mia.artifacts.checkpoint import load_checkpoint
from mia.training.launch import train
from tests.conftest import tiny

# step 1 and step 3 as in the paper; step 2 with every loss but a frozen CNN, because CPU
# processes cannot synchronise BatchNorm statistics (GPUs use SyncBatchNorm); in fp32,
# since on a CPU with native bf16 `precision: auto` trains in bf16, whose rounding differs
# between one process's batch and two halves all-reduced (1% of global_fc's weights off
# by more than the tolerance, seen on a 2-core Intel Xeon with AMX)
DDP_SET = ["steps.step2.train=[global_fc,part_branch,text,classifier,rga]",
           "steps.step2.epochs=1", "train.batch_size=12", "train.precision=fp32"]


@contextlib.contextmanager
def one_thread():
    """Train on one intra-op thread (as each torchrun process does, OMP_NUM_THREADS=1), then
    give the process back the thread count it had, whatever that was."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def module_leaves_thread_count_as_found():
    before = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == before, (
        f"tests/test_distributed.py changed torch's thread count {before} -> "
        f"{torch.get_num_threads()}")


@pytest.fixture(autouse=True)
def each_test_leaves_thread_count_as_found():
    before = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == before, (
        f"the test changed torch's thread count {before} -> {torch.get_num_threads()}")


def torchrun(args: list[str], nproc: int = 2, timeout: int = 600) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--standalone", "-m", "mia", "-q", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


def weights(run) -> dict:
    return load_checkpoint(run / "checkpoints/last.pt")["model"]


def assert_close(a: dict, b: dict) -> None:
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), atol=2e-4, rtol=1e-3,
                                   msg=lambda m, k=key: f"{k}: {m}")


@pytest.fixture(scope="module")
def single(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    with one_thread():
        train(tiny(*DDP_SET), synth_dir, out, progress=False)
    return out


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_equal_one_process_on_the_global_batch(single, synth_dir, tmp_path):
    out = tmp_path / "ddp"
    args = ["train", "--config", "demo/mia", "--data", str(synth_dir), "--out", str(out),
            "--device", "cpu", "--no-progress"]
    for item in _overrides():
        args += ["--set", item]
    torchrun(args)
    assert_close(weights(single), weights(out))
    epochs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()
              if '"type": "epoch"' in line]
    assert [(e["step"], e["epoch"]) for e in epochs] == [("step1", 1), ("step2", 1),
                                                         ("step3", 1)]  # rank 0 only
    assert json.loads((out / "meta.json").read_text())["world_size"] == 2


@pytest.mark.slow
@pytest.mark.multiprocess
def test_resume_on_another_world_size(single, synth_dir, tmp_path, monkeypatch):
    from mia.training import hooks

    original = hooks.Checkpointer.after_epoch

    def crash_after_first_epoch(self, trainer, record):
        original(self, trainer, record)
        raise KeyboardInterrupt

    monkeypatch.setattr(hooks.Checkpointer, "after_epoch", crash_after_first_epoch)
    out = tmp_path / "resumed"
    with one_thread(), pytest.raises(KeyboardInterrupt):
        train(tiny(*DDP_SET), synth_dir, out, progress=False)
    torchrun(["train", "--data", str(synth_dir), "--out", str(out), "--resume", "--device",
              "cpu", "--no-progress"])
    assert_close(weights(single), weights(out))


def _overrides() -> list[str]:
    from tests.conftest import TINY

    return TINY + DDP_SET


def test_more_processes_than_devices_is_an_error_at_start(monkeypatch):
    from mia.training.distributed import from_environment
    from mia.utils.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "64")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.raises(ConfigError, match="64 processes but only 2 CPU cores"):
        from_environment("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    with pytest.raises(ConfigError, match="64 processes but only 1 CUDA devices"):
        from_environment("cuda")


def test_one_thread_restores_any_previous_thread_count():
    original = torch.get_num_threads()
    odd = original + 1  # a count no hard-coded restore would land on
    torch.set_num_threads(odd)
    try:
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == odd
        with pytest.raises(RuntimeError), one_thread():
            raise RuntimeError("training failed")
        assert torch.get_num_threads() == odd
    finally:
        torch.set_num_threads(original)
