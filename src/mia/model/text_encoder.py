"""Text path (paper Sec. III-A, Eq. 1-3 and 5): word features, one Bi-GRU shared by the
sentence and its noun phrases, then separate FC layers."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

WORD_ENCODERS = ("embedding", "minilm")


class TextEncoder(nn.Module):
    """Captions -> sentence feature T [B, D] and phrase features N [B, m, D].

    ``word_encoder="embedding"`` is the paper's Eq. 1 (a word table learned from scratch,
    optionally initialised from word vectors of size ``vectors_dim``); ``"minilm"`` reads
    contextual word features from a pretrained MiniLM (:mod:`mia.model.minilm`, beyond the
    paper). Either way the Bi-GRU reads ``word_dim``-d word features, and a phrase is read
    from its words' features in the caption.
    """

    def __init__(self, *, vocab_size: int, word_dim: int, hidden: int, embed_dim: int,
                 vectors_dim: int = 0, word_encoder: str = "embedding",
                 minilm_trainable_layers: int = 0):
        super().__init__()
        self.word_encoder, self.vocab_size = word_encoder, vocab_size
        if word_encoder == "minilm":
            from mia.model.minilm import MiniLM

            self.minilm = MiniLM(minilm_trainable_layers)
            table_dim = self.minilm.dim
            self.word_proj = nn.Linear(table_dim, word_dim) if table_dim != word_dim else nn.Identity()
        else:
            # W_e, Eq. 1. With pre-trained vectors of another size, the table has their size
            # and a linear map projects them to word_dim.
            table_dim = vectors_dim or word_dim
            self.embedding = nn.Embedding(vocab_size, table_dim, padding_idx=0)
            self.word_proj = nn.Linear(table_dim, word_dim) if vectors_dim else nn.Identity()
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)  # Eq. 2
        self.sentence_fc = nn.Linear(2 * hidden, embed_dim)  # W_g, b_g, Eq. 3
        self.phrase_fc = nn.Linear(2 * hidden, embed_dim)  # W_l, b_l, Eq. 5

    def word_features(self, tokens: Tensor, pieces: Tensor | None = None,
                      piece_words: Tensor | None = None) -> Tensor:
        """x_1..x_L of Eq. 1: tokens [B, L] -> [B, L, word_dim]."""
        if self.word_encoder == "minilm":
            if pieces is None:
                raise ValueError("a MiniLM text encoder needs the batch's WordPiece ids "
                                 "(CaptionCorpus(..., wordpieces=True))")
            x = self.minilm(pieces, piece_words, tokens.shape[1])
        else:
            x = self.embedding(tokens)
        return self.word_proj(x)

    def encode_sequences(self, x: Tensor, lengths: Tensor) -> Tensor:
        """[h_F forward ; h_F' backward] of each sequence: x [N, L, E], lengths [N] -> [N, 2H].

        Sequences are packed, so padding never changes the result.
        """
        packed = pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h_n = self.gru(packed)  # [2, N, H]: final forward state, final backward state
        return torch.cat([h_n[0], h_n[1]], dim=-1)

    def forward(self, tokens: Tensor, lengths: Tensor, phrase_starts: Tensor | None = None,
                phrase_lengths: Tensor | None = None, phrase_mask: Tensor | None = None,
                pieces: Tensor | None = None,
                piece_words: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """tokens [B, L], lengths [B]; phrase_starts/lengths/mask [B, m] (each phrase is the
        words ``start .. start + length - 1`` of its caption); pieces, piece_words [B, Lp]
        for the MiniLM word encoder.

        Returns (T [B, D], N [B, m, D] with zeros at masked phrases, or None). Sentences and
        phrases go through the GRU in one packed call.
        """
        x = self.word_features(tokens, pieces, piece_words)  # [B, L, E]
        if phrase_starts is None:
            return self.sentence_fc(self.encode_sequences(x, lengths)), None
        B, m = phrase_starts.shape
        flat_mask = phrase_mask.reshape(-1)
        starts = phrase_starts.reshape(-1)[flat_mask]
        lens = phrase_lengths.reshape(-1)[flat_mask]
        owner = torch.arange(B, device=x.device).repeat_interleave(m)[flat_mask]
        Lp = max(int(lens.max()) if len(lens) else 1, 1)
        offsets = torch.arange(Lp, device=x.device)
        position = (starts[:, None] + offsets).clamp_max(x.shape[1] - 1)
        phrases = x[owner[:, None], position] * (offsets < lens[:, None])[..., None]
        width = max(x.shape[1], Lp)
        seqs = torch.cat([nn.functional.pad(x, (0, 0, 0, width - x.shape[1])),
                          nn.functional.pad(phrases, (0, 0, 0, width - Lp))])
        states = self.encode_sequences(seqs, torch.cat([lengths, lens]))
        sentence = self.sentence_fc(states[:B])
        phrase_feats = self.phrase_fc(states[B:])
        out = phrase_feats.new_zeros(B * m, phrase_feats.shape[-1])
        out[flat_mask] = phrase_feats
        return sentence, out.view(B, m, -1)
