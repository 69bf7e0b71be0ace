"""SASRec: a causal transformer over listening histories; pure torch, no Lightning.

Beyond the item id, each past event can carry how much of it was listened (a skip is not a like), the
time gap since the previous event and the position inside its listening session.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqrec import PAD
from seqrec.config import ModelConfig

N_FRAC = 7  # PAD, unknown, quarters 0..4
N_GAP = 12  # PAD, first event, 10 log-spaced gap buckets
N_SESSION_POS = 18  # PAD, positions 0..16 (the last bucket collects the rest)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)  # 3 x (B, T, D)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.mlp(self.ln2(x)))


class SASRec(nn.Module):
    """Encodes (B, T) right-aligned histories into (B, T, D) states; scores are states . item embeddings."""

    def __init__(self, cfg: ModelConfig, n_items: int):
        super().__init__()
        self.cfg, self.n_items = cfg, n_items
        d = cfg.d_model
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=PAD)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.frac_emb = nn.Embedding(N_FRAC, d, padding_idx=0) if cfg.use_frac else None
        self.gap_emb = nn.Embedding(N_GAP, d, padding_idx=0) if cfg.use_gap else None
        self.session_emb = nn.Embedding(N_SESSION_POS, d, padding_idx=0) if cfg.use_session else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_blocks))
        self.ln_f = nn.LayerNorm(d)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
            if m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()

    def forward(self, item: torch.Tensor, frac: torch.Tensor | None = None, gap: torch.Tensor | None = None,
                session: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, D) causal states; PAD items are left padding."""
        B, T = item.shape
        x = self.item_emb(item) * self.cfg.d_model**0.5 + self.pos_emb.weight[-T:]  # (B, T, D)
        for emb, ids in ((self.frac_emb, frac), (self.gap_emb, gap), (self.session_emb, session)):
            if emb is not None and ids is not None:
                x = x + emb(ids)
        x = self.drop(x)
        mask = self.attention_mask(item)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    @staticmethod
    def attention_mask(item: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, T) bool: attend to earlier non-PAD events and always to oneself (no empty rows)."""
        T = item.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=item.device).tril()  # (T, T)
        keys = (item != PAD)[:, None, None, :]  # (B, 1, 1, T)
        eye = torch.eye(T, dtype=torch.bool, device=item.device)
        return (causal & keys) | eye  # (B, 1, T, T)

    def item_weights(self) -> torch.Tensor:
        """(n_items + 1, D) output embeddings, tied to the input ones."""
        return self.item_emb.weight

    def score_all(self, h: torch.Tensor) -> torch.Tensor:
        """(B, D) states -> (B, n_items + 1) logits; PAD can never win."""
        logits = h @ self.item_weights().T  # (B, V)
        logits[:, PAD] = float("-inf")
        return logits
