"""Configs: every paper config loads; errors name the key and list the valid ones."""

import pytest

from mia.config import CONFIG_DIR, load_config
from mia.utils.errors import ConfigError

ALL = sorted(str(p.relative_to(CONFIG_DIR))[:-5] for p in CONFIG_DIR.rglob("*.yaml"))


@pytest.mark.parametrize("name", ALL)
def test_every_shipped_config_is_valid(name):
    cfg = load_config(name)
    assert cfg.steps and all(s.epochs > 0 for s in cfg.steps.values())


def test_paper_step_training_is_described_as_data():
    cfg = load_config("mia")
    s1, s2, s3 = cfg.steps.values()
    assert (s1.epochs, s1.lr, s1.losses) == (10, 1e-3, {"id": 1.0})
    assert "backbone" not in s1.train and "global_fc" in s1.train
    assert (s2.epochs, s2.lr, s2.lr_step, s2.lr_gamma) == (20, 2e-4, 10, 0.1)
    assert set(s2.losses) == {"id", "gc", "rga_it", "rga_ti"} and "bfm" not in s2.train
    assert (s3.epochs, s3.train, set(s3.losses)) == (5, ["bfm"], {"bfm_pn", "bfm_np"})
    assert cfg.train.batch_size == 96 and cfg.train.margin == 0.2


def test_weak_recipe_rows_share_step2_at_twice_the_papers_rate():
    # measured on cuhk-dev val (docs/EXPERIMENTS.md); GC and GC + RGA inherit it, so that
    # their runs can start from the MIA run's checkpoints (--start-from)
    for row in ("", "_gc", "_gc_rga"):
        cfg = load_config(f"recipes/cuhk_weak_cpu{row}")
        s1, s2 = cfg.steps["step1"], cfg.steps["step2"]
        assert (s1.lr, s2.epochs, s2.lr, s2.lr_step) == (1e-3, 3, 4e-4, 2)
    assert load_config("recipes/cuhk_small_cpu").steps["step2"].lr == 2e-4


def test_ablations_differ_where_the_paper_says():
    assert list(load_config("ablations/gc").steps) == ["step1", "step2"]
    assert list(load_config("ablations/steps12_merged").steps) == ["step2"]
    assert load_config("ablations/all_words").data.phrase_mode == "words"
    assert load_config("ablations/obj_mat_idmat").steps["step1"].losses == {"gc": 1.0}
    together = load_config("ablations/gc_rga_bfm").steps["step2"]
    assert {"rga", "bfm"} <= set(together.train) and len(together.losses) == 6


def test_overrides_reach_nested_keys():
    cfg = load_config("mia", ["steps.step1.epochs=2", "train.batch_size=8", "eval.lambda1=1.5"])
    assert cfg.steps["step1"].epochs == 2 and cfg.train.batch_size == 8
    assert cfg.eval.lambda1 == 1.5


@pytest.mark.parametrize("override, message", [
    ("train.batchsize=3", "unknown key\\(s\\) 'batchsize'; valid keys: batch_size, margin"),
    ("steps.step1.losses={idd: 1}", "unknown loss\\(es\\) \\['idd'\\]; valid: id, gc"),
    ("steps.step2.train=[cnn]", "unknown group\\(s\\) \\['cnn'\\]; valid: backbone"),
    ("model.backbone=alexnet", "'alexnet' is not one of small, vgg16, resnet50"),
    ("train.batch_size=abc", "train.batch_size: expected int"),
    ("train.batch_size", "expected key=value"),
    ("train.erasing=1.5", "train.erasing: must be in \\[0, 1\\], got 1.5"),
    ("train.label_smoothing=1", "train.label_smoothing: must be in \\[0, 1\\), got 1"),
    ("data.phrase_dropout=1.0", "data.phrase_dropout: must be in \\[0, 1\\), got 1.0"),
    ("train.drop_hardest_warmup=-1", "train.drop_hardest_warmup: must be a whole number of "
     "epochs >= 0, got -1"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("mia", [override])


def test_unknown_config_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="not found .*ablations/gc.*mia"):
        load_config("nonexistent")


def test_unknown_top_level_key_in_a_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: mia\nmodle: {}\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) 'modle'; valid keys: name, "):
        load_config(path)


def test_no_two_shipped_configs_are_the_same_config_under_two_names():
    seen = {}
    for name in ALL:
        resolved = load_config(name).to_dict()
        key = repr({k: v for k, v in resolved.items() if k not in ("name", "description")})
        assert key not in seen, f"{name} is {seen.get(key)} under another name"
        seen[key] = name


def test_the_override_examples_the_config_module_documents_work():
    import re

    import mia.config as module

    examples = re.findall(r"--set ([a-z_]+\.[\w.]+=[^`\s]+)", module.__doc__)
    assert len(examples) >= 2
    for example in examples:
        load_config("mia", [example])


def test_the_schemas_sub_dataset_names_are_those_the_data_layer_recognises():
    from mia.config import SUBSET_NAMES
    from mia.data.subsets import SUBSETS

    assert set(SUBSET_NAMES) == set(SUBSETS.values())


def test_val1k_recipes_are_the_weak_rows_validated_on_val_plus_distractors():
    import dataclasses

    from mia.training.branch import first_difference

    for row in ("", "_gc", "_gc_rga"):
        old, new = load_config(f"recipes/cuhk_weak_cpu{row}"), load_config(
            f"recipes/cuhk_weak1k_cpu{row}")
        assert (new.eval.distractors, new.eval.choose_lambdas) == ("distractors", True)
        same = dataclasses.replace(new, name=old.name, description=old.description,
                                   eval=dataclasses.replace(new.eval, distractors=None,
                                                            choose_lambdas=False))
        assert same.to_dict() == old.to_dict()
    mia = load_config("recipes/cuhk_weak1k_cpu")
    for row, steps in (("_gc", 1), ("_gc_rga", 2)):  # they start from MIA's step checkpoints
        assert first_difference(mia, load_config(f"recipes/cuhk_weak1k_cpu{row}"),
                                steps_done=steps) is None
