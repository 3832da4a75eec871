"""``train.precision: auto``: bf16 only where it is native (CPU flags, CUDA support), fp32
elsewhere; explicit precisions unchanged; the run logs and records what it chose."""

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

from mia.cli.main import build_parser
from mia.config import TrainConfig, load_config
from mia.training.launch import train
from mia.utils import device as dev_mod
from mia.utils.device import (
    bf16_native,
    check_precision,
    cpu_bf16_native,
    cpu_flags,
    resolve_precision,
)
from mia.utils.errors import ConfigError
from tests.conftest import tiny

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a cuda device object needs no GPU
EPYC_AVX2 = {"fpu", "sse2", "avx", "avx2", "fma", "f16c"}  # no native bf16
NO_BF16 = "CPU without native bf16: no avx512_bf16/amx_bf16 flag"


def fake_cpu_flags(monkeypatch, flags) -> None:
    """This machine's /proc/cpuinfo flags, as the run reads them, replaced by ``flags``."""
    monkeypatch.setattr(dev_mod, "cpu_flags", lambda path="/proc/cpuinfo": flags)


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_on_a_cpu_with_native_bf16_is_bf16(flag):
    resolved, reason = resolve_precision("auto", CPU, EPYC_AVX2 | {"avx512f", flag})
    assert resolved == "bf16" and flag in reason


@pytest.mark.parametrize("flags", [EPYC_AVX2, EPYC_AVX2 | {"avx512f", "avx512bw"}, set()])
def test_auto_on_a_cpu_without_native_bf16_is_fp32(flags):
    # AVX-512 alone is not native bf16 (torch's own mkldnn check would say yes there)
    assert resolve_precision("auto", CPU, flags) == ("fp32", NO_BF16)


def test_cpu_flags_come_from_proc_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 amx_bf16\n"
                    "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) is None
    # unreadable flags (not Linux): never bf16 by guess
    fake_cpu_flags(monkeypatch, None)
    native, reason = cpu_bf16_native()
    assert not native and "unreadable" in reason
    assert resolve_precision("auto", CPU)[0] == "fp32"


def test_auto_reads_this_machines_flags():
    flags = cpu_flags() or set()
    native = bool({"avx512_bf16", "amx_bf16"} & set(flags))
    assert resolve_precision("auto", CPU)[0] == ("bf16" if native else "fp32")


@pytest.mark.parametrize("supported, want", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_follows_the_gpus_bf16_support(monkeypatch, supported, want):
    calls = []

    def is_bf16_supported(including_emulation=True):
        calls.append(including_emulation)
        return supported

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    resolved, reason = resolve_precision("auto", CUDA, flags=set())  # CPU flags don't matter
    assert resolved == want and "CUDA" in reason
    assert calls == [False]  # emulated bf16 does not count
    assert resolve_precision("auto", torch.device("cuda", 1), flags=set())[0] == want


def test_cuda_check_works_with_a_torch_without_the_emulation_argument(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert bf16_native(CUDA) == (True, "CUDA GPU with bf16 support")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", CUDA)[0] == "fp32"


@pytest.mark.parametrize("flags", [EPYC_AVX2, EPYC_AVX2 | {"amx_bf16"}])
def test_explicit_precisions_are_kept(flags, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **_: False)
    assert resolve_precision("fp32", CPU, flags)[0] == "fp32"
    assert resolve_precision("bf16", CPU, flags)[0] == "bf16"
    assert resolve_precision("fp32", CUDA, flags)[0] == "fp32"
    assert resolve_precision("fp16", CUDA, flags) == ("fp16", "set explicitly")
    assert resolve_precision("bf16", CUDA, flags)[0] == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", CPU, flags)


def test_explicit_bf16_on_a_cpu_without_native_bf16_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="mia.utils.device"):
        resolved, reason = resolve_precision("bf16", CPU, EPYC_AVX2)
    assert resolved == "bf16" and "emulated" in reason
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "emulated" in record.getMessage() and "very slow" in record.getMessage()
    assert "--precision auto or fp32" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mia.utils.device"):
        assert resolve_precision("bf16", CPU, {"avx512_bf16"}) == ("bf16", "set explicitly")
        resolve_precision("auto", CPU, EPYC_AVX2)  # auto never warns: it picks fp32
    assert not caplog.records


def test_invalid_precision_names_the_field_and_the_value():
    with pytest.raises(ConfigError, match=r"train.precision: 'fp8' is not one of auto, fp32"):
        load_config("demo/mia", ["train.precision=fp8"])
    with pytest.raises(ConfigError, match=r"train.precision: unknown precision 'fp8'.*auto"):
        resolve_precision("fp8", CPU, set())
    with pytest.raises(ConfigError, match="unknown precision 'auto'"):
        check_precision("auto", CPU)  # auto must be resolved, never used as a dtype


def test_auto_is_the_default_and_no_shipped_config_pins_bf16():
    assert TrainConfig().precision == "auto"
    assert load_config("demo/mia").train.precision == "auto"
    assert load_config("recipes/cuhk_small_cpu").train.precision == "auto"
    configs = Path(dev_mod.__file__).resolve().parents[1] / "configs"
    files = sorted(configs.rglob("*.yaml"))
    assert len(files) > 5
    for path in files:
        raw = yaml.safe_load(path.read_text()) or {}
        train_section = raw.get("train") or {}
        assert train_section.get("precision", "auto") != "bf16", path


def test_cli_precision_accepts_auto_and_says_what_it_does(capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "--data", "d", "--out", "r", "--precision", "auto"])
    assert args.precision == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{auto,fp32,bf16,fp16}" in text and "avx512_bf16/amx_bf16" in text


def test_a_run_logs_and_records_the_resolved_precision(synth_dir, tmp_path, monkeypatch,
                                                       caplog):
    fake_cpu_flags(monkeypatch, frozenset(EPYC_AVX2))
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="mia.training.launch"):
        train(tiny("steps.step2=null", "steps.step3=null"), synth_dir, out, progress=False,
              device="cpu")
    line = f"precision: auto -> fp32 ({NO_BF16})"
    assert line in caplog.messages
    meta = json.loads((out / "meta.json").read_text())
    assert meta["precision"] == {"requested": "auto", "resolved": "fp32", "reason": NO_BF16}
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["precision"] == "auto"
    # resumed on a machine with native bf16: resolved again there, said so, config kept
    fake_cpu_flags(monkeypatch, frozenset({"amx_bf16"}))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mia.training.launch"):
        train(None, synth_dir, out, resume=True, progress=False, device="cpu")
    assert "precision: auto -> bf16 (CPU with native bf16 (amx_bf16))" in caplog.messages
    assert any("started in fp32" in m and "continues in bf16" in m for m in caplog.messages)
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["precision"] == "auto"
    assert json.loads((out / "meta.json").read_text())["precision"]["resolved"] == "fp32"


def test_training_and_validation_use_the_resolved_precision(synth_dir, tmp_path, monkeypatch):
    """auto -> bf16 (faked native CPU): the trainer autocasts and validation encodes in
    bf16, without training a step (bf16 is emulated on many test machines)."""
    from mia.training import launch
    from mia.training.hooks import Validator
    from mia.training.trainer import Trainer

    fake_cpu_flags(monkeypatch, frozenset({"amx_bf16"}))
    seen = {}

    class Stop(Exception):
        pass

    def fake_encode(*args, autocast_dtype=None, **kwargs):
        seen["validation"] = autocast_dtype
        raise Stop

    def fake_fit(self):
        seen["training"], seen["scaler"] = self.autocast_dtype, self.scaler.is_enabled()
        [validator] = [h for h in self.hooks if isinstance(h, Validator)]
        with pytest.raises(Stop):
            validator.evaluate_fn(self.model)
        return []

    monkeypatch.setattr(launch, "encode_gallery", fake_encode)
    monkeypatch.setattr(Trainer, "fit", fake_fit)
    train(tiny(), synth_dir, tmp_path / "run", progress=False, device="cpu")
    assert seen == {"training": torch.bfloat16, "validation": torch.bfloat16, "scaler": False}
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["precision"]["resolved"] == "bf16"
