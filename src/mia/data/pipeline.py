"""Everything a run needs from a dataset directory: records, parsed captions, vocabulary,
image store and token ids, built the same way for training, evaluation and indexing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mia.config import DataConfig
from mia.data.images import drop_unreadable
from mia.data.loading import CaptionCorpus, ImageStore
from mia.data.reader import open_dataset
from mia.data.records import PedestrianDataset
from mia.text.cache import load_or_parse
from mia.text.phrases import ParsedCaption
from mia.text.vocab import Vocabulary
from mia.utils.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass
class RunData:
    dataset: PedestrianDataset
    parsed: dict[str, ParsedCaption]
    vocab: Vocabulary
    store: ImageStore
    corpus: CaptionCorpus


def load_run_data(data_cfg: DataConfig, data_dir: str | Path, format: str | None = None,
                  skip_bad: bool = False, vocab: Vocabulary | None = None,
                  progress: bool = True, wordpieces: bool = False,
                  require_splits: tuple[str, ...] = ()) -> RunData:
    """Read and parse a dataset; build the vocabulary from its training split unless given.
    Each of ``require_splits`` must be present: checked before the images are read."""
    dataset = open_dataset(data_dir, format, skip_bad=skip_bad)
    for name in require_splits:
        dataset.split(name)  # a one-line error naming the file and the splits present
    if data_cfg.subset:
        _keep_subset(dataset, data_cfg.subset)
    drop_unreadable(dataset, skip_bad, progress)
    for warning in dataset.warnings:
        log.warning("%s: %s", dataset.annotation_file, warning)
    for reason, count in dataset.skipped.items():
        log.warning("skipped %d entries: %s", count, reason)
    parsed = load_or_parse(dataset.annotation_file, dataset.captions(), data_cfg.phrase_mode,
                           workers=data_cfg.text_workers, progress=progress)
    _check_wordless(dataset, parsed, skip_bad)
    if vocab is None:
        train = dataset.split("train")
        vocab = Vocabulary.build((parsed[c].tokens for r in train for c in r.captions),
                                 min_count=data_cfg.min_word_count)
        log.info("vocabulary: %d words from %d training images", len(vocab), len(train))
    store = ImageStore(dataset.image_root, (data_cfg.height, data_cfg.width),
                       cache=data_cfg.cache_images)
    return RunData(dataset, parsed, vocab, store,
                   CaptionCorpus(parsed, vocab, data_cfg.max_phrases, wordpieces))


def _keep_subset(dataset: PedestrianDataset, subset: str) -> None:
    """Only the images of one CUHK-PEDES sub-dataset, in every split (Table IX)."""
    from mia.data.subsets import subset_of

    kept = [r for r in dataset.records if subset_of(r.file_path) == subset]
    if not kept:
        raise DatasetError(f"{dataset.annotation_file}: data.subset={subset}: no image of that "
                           "sub-dataset (recognised from the first folder of file_path)")
    dataset.records = kept


def _check_wordless(dataset: PedestrianDataset, parsed: dict[str, ParsedCaption],
                    skip_bad: bool) -> None:
    """A caption without any word cannot be encoded: an error naming the entry."""
    bad = [r for r in dataset.records if any(not parsed[c].tokens for c in r.captions)]
    if not bad:
        return
    if not skip_bad:
        r = bad[0]
        raise DatasetError(f"{dataset.annotation_file}: entry {r.entry} (id {r.person_id}): "
                           "field 'captions': a caption has no words "
                           "(use --skip-bad to drop such entries)")
    dropped = {id(r) for r in bad}
    dataset.records = [r for r in dataset.records if id(r) not in dropped]
    dataset.skipped["caption without words"] = len(bad)
