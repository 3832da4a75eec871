"""The Python API: mia.load(run) encodes images and texts and scores them exactly as
mia evaluate / mia search do, with clear errors for bad input."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import mia
from mia.api import MiaWarning
from mia.data.reader import open_dataset
from mia.evaluation.metrics import rank_metrics
from mia.text.queries import QueryError
from mia.utils.errors import MiaError


@pytest.fixture(scope="module")
def model(trained_run):
    return mia.load(trained_run[0], device="cpu")


@pytest.fixture(scope="module")
def test_split(synth_dir):
    ds = open_dataset(synth_dir)
    records = ds.split("test")
    return ds, records, [c for r in records for c in r.captions]


def test_api_scores_equal_mia_evaluate(model, trained_run, synth_dir, test_split):
    from mia.evaluation.run_eval import evaluate_run

    ds, records, captions = test_split
    img = model.encode_images([ds.image_path(r) for r in records])
    txt = model.encode_texts(captions)
    scores = model.score(img, txt)
    assert set(scores) == {"sG", "sR", "sL", "sF"}
    assert scores["sF"].shape == (len(captions), len(records))
    result = evaluate_run(trained_run[0], synth_dir, "test", device="cpu", progress=False,
                          save=False)
    q_pids = [r.person_id for r in records for _ in r.captions]
    g_pids = [r.person_id for r in records]
    for name in ("sG", "sR", "sL", "sF"):
        ours = rank_metrics(scores[name], q_pids, g_pids)
        for key in ("R1", "R5", "R10", "mAP"):
            assert ours[key] == pytest.approx(result[name][key], abs=1e-4), (name, key)


def test_every_image_form_gives_the_same_embedding(model, test_split):
    ds, records, _ = test_split
    path = ds.image_path(records[0])
    pil = Image.open(path).convert("RGB")
    array = np.array(pil)
    uint8 = torch.from_numpy(array).permute(2, 0, 1)
    forms = [str(path), path, pil, array, uint8, uint8.float() / 255]
    embs = [model.encode_images(f) for f in forms]
    for emb in embs[1:]:
        torch.testing.assert_close(emb.global_, embs[0].global_, atol=1e-4, rtol=1e-4)
    batch = model.encode_images(torch.stack([uint8, uint8]))
    assert len(batch) == 2


def test_embeddings_can_be_saved_and_reused(model, test_split, tmp_path):
    ds, records, captions = test_split
    img = model.encode_images([ds.image_path(r) for r in records[:3]])
    torch.save(img.state(), tmp_path / "gallery.pt")
    again = mia.ImageEmbeddings(**torch.load(tmp_path / "gallery.pt", weights_only=True))
    txt = model.encode_texts(captions[:2])
    torch.testing.assert_close(model.score(again, txt)["sF"], model.score(img, txt)["sF"])


def test_bad_images_name_the_item(model, test_split, tmp_path):
    ds, records, _ = test_split
    good = ds.image_path(records[0])
    with pytest.raises(MiaError, match=r"image 1: .*nope\.jpg: image file not found"):
        model.encode_images([good, tmp_path / "nope.jpg"])
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MiaError, match=r"image 0: .*broken\.jpg: unreadable image"):
        model.encode_images([tmp_path / "broken.jpg"])
    with pytest.raises(MiaError, match="no images given"):
        model.encode_images([])
    with pytest.raises(MiaError, match=r"float tensor image must hold values in \[0, 1\]"):
        model.encode_images(torch.full((3, 8, 8), 2.0))
    with pytest.raises(MiaError, match="not an image: int"):
        model.encode_images([3])


def test_texts_errors_and_warnings(model):
    with pytest.raises(QueryError, match="text 1 .*the query is empty"):
        model.encode_texts(["a man in a red jacket", "   "])
    with pytest.raises(QueryError, match="no texts given"):
        model.encode_texts([])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = model.encode_texts(["zzyzx qwxlp"])
    assert len(emb) == 1
    assert any(issubclass(w.category, MiaWarning) and "text 0: none of the query's words"
               in str(w.message) for w in caught)


def test_embeddings_of_another_model_are_refused(model, test_split):
    ds, records, captions = test_split
    img = model.encode_images([ds.image_path(records[0])])
    txt = model.encode_texts(captions[:1])
    img.source = "/elsewhere/run::best.pt"
    with pytest.raises(MiaError, match="image embeddings come from another model"):
        model.score(img, txt)
    wide = mia.TextEmbeddings(*(torch.cat([t, t], -1) if t.is_floating_point() else t
                                for t in txt.state().values()))
    with pytest.raises(MiaError, match="text embeddings have dimension 64, this model 32"):
        model.score(model.encode_images([ds.image_path(records[0])]), wide)


def test_explain_and_search_give_the_numbers_of_the_search_page(model, test_split, tmp_path):
    ds, records, _ = test_split
    index = model.build_index([r.file_path for r in records], tmp_path / "index",
                              root=ds.image_root, dtype="float32")
    query = "A woman in a red t-shirt with a black backpack."
    answer = model.search(index, query, k=3)
    for result in answer["results"]:
        why = model.explain(ds.image_root / result["image"], query)
        assert why["phrases"] == answer["phrases"]
        for ours, theirs in (("sF", "score"), ("sG", "sG"), ("sR", "sR"), ("sL", "sL")):
            assert why[ours] == pytest.approx(result[theirs], abs=1e-4)
        assert why["stripes"] == pytest.approx(result["stripes"], abs=1e-4)
        assert why["phrase_to_stripe"] == result["phrase_to_stripe"]
        assert sum(why["stripes"]) == pytest.approx(1.0, abs=1e-5)


def test_load_takes_a_checkpoint_file(trained_run):
    run = trained_run[0]
    by_file = mia.load(run / "checkpoints" / "last.pt", device="cpu")
    assert by_file.trained.checkpoint.name == "last.pt"


def test_mia_evaluate_takes_exactly_the_options_of_mia_evaluate_the_command():
    """mia.evaluate spells out EvalOptions' fields as keywords (for help() and IDEs): the
    two lists, and their defaults, cannot drift apart (the API does not show progress bars
    by default; the command does)."""
    import dataclasses
    import inspect

    import mia
    from mia.evaluation.run_eval import EvalOptions

    params = {name: p.default for name, p in inspect.signature(mia.evaluate).parameters.items()
              if p.kind is p.KEYWORD_ONLY}
    fields = {f.name: f.default for f in dataclasses.fields(EvalOptions)}
    assert params.keys() == fields.keys()
    assert {k: v for k, v in params.items() if k != "progress"} == {
        k: v for k, v in fields.items() if k != "progress"}
    assert (params["progress"], fields["progress"]) == (False, True)


def test_mia_train_takes_exactly_the_options_of_mia_train_the_command():
    """mia.train spells out TrainOptions' fields as keywords: the two lists and their
    defaults cannot drift apart."""
    import dataclasses
    import inspect

    import mia
    from mia.training.launch import TrainOptions

    params = {name: p.default for name, p in inspect.signature(mia.train).parameters.items()
              if p.kind is p.KEYWORD_ONLY}
    assert params == {f.name: f.default for f in dataclasses.fields(TrainOptions)}
