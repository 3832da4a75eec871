"""Text path (paper Sec. III-A, Eq. 1-3 and 5): embedding, one Bi-GRU shared by the
sentence and its noun phrases, then separate FC layers."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


class TextEncoder(nn.Module):
    """Captions -> sentence feature T [B, D] and phrase features N [B, m, D]."""

    def __init__(self, *, vocab_size: int, word_dim: int, hidden: int, embed_dim: int,
                 vectors_dim: int = 0):
        super().__init__()
        # W_e, Eq. 1. With pre-trained vectors of another size, the table has their size and
        # a linear map projects them to word_dim.
        table_dim = vectors_dim or word_dim
        self.embedding = nn.Embedding(vocab_size, table_dim, padding_idx=0)
        self.word_proj = nn.Linear(table_dim, word_dim) if vectors_dim else nn.Identity()
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)  # Eq. 2
        self.sentence_fc = nn.Linear(2 * hidden, embed_dim)  # W_g, b_g, Eq. 3
        self.phrase_fc = nn.Linear(2 * hidden, embed_dim)  # W_l, b_l, Eq. 5

    def encode_sequences(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """[h_F forward ; h_F' backward] of each sequence: tokens [N, L], lengths [N] -> [N, 2H].

        Sequences are packed, so padding never changes the result.
        """
        packed = pack_padded_sequence(self.word_proj(self.embedding(tokens)),
                                      lengths.clamp_min(1).cpu(),
                                      batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)  # [2, N, H]: final forward state, final backward state
        return torch.cat([h_n[0], h_n[1]], dim=-1)

    def forward(self, tokens: Tensor, lengths: Tensor, phrase_tokens: Tensor | None = None,
                phrase_lengths: Tensor | None = None,
                phrase_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """tokens [B, L], lengths [B]; phrase_tokens [B, m, Lp], phrase_lengths/mask [B, m].

        Returns (T [B, D], N [B, m, D] with zeros at masked phrases, or None). Sentences and
        phrases go through the GRU in one packed call.
        """
        if phrase_tokens is None:
            return self.sentence_fc(self.encode_sequences(tokens, lengths)), None
        B, m, Lp = phrase_tokens.shape
        flat_mask = phrase_mask.reshape(-1)
        phrases = phrase_tokens.reshape(B * m, Lp)[flat_mask]
        width = max(tokens.shape[1], Lp)
        seqs = torch.cat([nn.functional.pad(tokens, (0, width - tokens.shape[1])),
                          nn.functional.pad(phrases, (0, width - Lp))])
        lens = torch.cat([lengths, phrase_lengths.reshape(-1)[flat_mask]])
        states = self.encode_sequences(seqs, lens)
        sentence = self.sentence_fc(states[:B])
        phrase_feats = self.phrase_fc(states[B:])
        out = phrase_feats.new_zeros(B * m, phrase_feats.shape[-1])
        out[flat_mask] = phrase_feats
        return sentence, out.view(B, m, -1)
