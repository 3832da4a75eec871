"""The frozen-feature caches live in one module, training/feature_cache.py: it alone defines
them and reads or writes RUN/cache/; the run-wide cache's life there (opened, read back on
--resume, kept by its hook, removed when the run finishes) is RunFeatureCache's."""

import ast
from pathlib import Path
from types import SimpleNamespace

import torch

from mia.model.mia import MIA
from mia.training.feature_cache import (
    FeatureCacheKeeper,
    FrozenFeatureCache,
    RunFeatureCache,
    frozen_features,
    run_wide_cache,
    step_cache,
)
from mia.training.trainer import set_trainable
from tests.test_model_options import STEP2, fake_batch, options

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mia"
CACHE_NAMES = {"FrozenFeatureCache", "FeatureCacheKeeper", "RunFeatureCache",
               "stages_fingerprint"}


def test_only_the_cache_module_defines_the_caches_or_names_their_files():
    """No other module defines a cache class or names RUN/cache/ or its files (outside
    training/, 'cache' is also text/'s module of the phrase cache)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "training" / "feature_cache.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree)
                   if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        assert not defined & CACHE_NAMES, path
        strings = [n.value for n in ast.walk(tree)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert not [s for s in strings if "frozen-stages" in s], path
        if path.parent.name == "training":
            assert "cache" not in strings, path


def test_a_step_gets_no_cache_of_its_own_without_stages_beyond_the_run_wide_ones():
    assert run_wide_cache(0, 64) is None and run_wide_cache(2, 0) is None
    shared = run_wide_cache(2, 64)
    assert step_cache(2, 64, shared) is None and shared.pool == ()
    own = step_cache(5, 64, shared)
    assert (own.start, own.depth, own.pool) == (2, 5, (shared,)) and shared.pool == (own,)
    assert step_cache(5, 0, None) is None and step_cache(5, 64, None).start == 0


def test_features_through_the_caches_are_the_stages_themselves():
    torch.manual_seed(0)
    model = MIA(options(frozen_stages=2), vocab_size=20, num_classes=3)
    set_trainable(model, STEP2)
    batch = fake_batch()
    shared = run_wide_cache(2, 64)
    own = step_cache(4, 64, shared)
    want = model.image_encoder.backbone_stages(batch["images"], 0, 4)
    for _ in range(2):  # computed, then read
        got, start = frozen_features(model, batch, (shared, own))
        assert start == 4
        torch.testing.assert_close(got, want)
    assert frozen_features(model, batch, (None, None)) == (batch["images"], 0)


def test_the_run_wide_cache_file_is_read_back_on_resume_and_removed_at_the_end(tmp_path):
    torch.manual_seed(0)
    model = MIA(options(frozen_stages=2), vocab_size=20, num_classes=3)
    set_trainable(model, STEP2)
    cfg = SimpleNamespace(data=SimpleNamespace(height=96, width=32),
                          train=SimpleNamespace(channels_last=False),
                          model=SimpleNamespace(backbone="small"))
    context = {"train_data": "sha", "precision": "fp32", "device": "cpu", "rank": 1}

    def session(resume: bool) -> RunFeatureCache:
        trainer = SimpleNamespace(shared_cache=run_wide_cache(2, 64), model=model)
        return RunFeatureCache.open(trainer, tmp_path, cfg, resume=resume, **context)

    assert RunFeatureCache.open(SimpleNamespace(shared_cache=None, model=model), tmp_path,
                                cfg, resume=True, **context) is None
    first = session(resume=False)
    assert first.path == tmp_path / "cache/frozen-stages-1.pt" and first.read == 0
    keeper = first.keeper()
    assert isinstance(keeper, FeatureCacheKeeper) and keeper.cache is first.cache
    batch = fake_batch()
    first.cache.features(model, batch["images"], batch["image_index"], batch["flips"])
    keeper.after_epoch(None, {})
    assert first.path.is_file()
    assert session(resume=False).read == 0  # a new run reads nothing back
    again = session(resume=True)
    assert again.read == 6 and again.fingerprint == first.fingerprint
    assert isinstance(again.cache, FrozenFeatureCache)
    again.finish()
    assert not first.path.exists()
    again.finish()  # already gone: nothing to do
