"""SASRec: a causal transformer over listening histories; pure torch, no Lightning.

Beyond the item id, each past event carries the inputs of seqrec.models.features (how much of it was listened,
the gap since the previous event, its position in the session), each with its own embedding. A learned
re-listen bias lets tracks played in the window score by how recently and how fully they were played: repeats
dominate. With `model.use_side`, a track's vector also carries what is known of it (seqrec.models.side).
`SASRec.encode` turns histories into states and `SASRec.score` states into scores: the only place scores are made.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec import PAD
from seqrec.config import ModelConfig
from seqrec.models.features import INPUT, INPUTS

N_FRAC = INPUT["frac"].vocab
# Re-listen bias: how many events back an item was played, in log2 buckets (0, 1, 2, 3-4, 5-8, ... 129+).
REPEAT_DIST_EDGES = (0, 1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class Repeat:
    """Learned re-listen bias for each query row (flattened B*T): the items visible in its window."""

    items: torch.Tensor
    """(N, T) items of the window (the row's own events and earlier ones)."""
    bias: torch.Tensor
    """(N, T) bias of items[r, j] at row r: the kernel summed over all its visible plays."""
    latest: torch.Tensor
    """(N, T) bool: one visible play per distinct item (its latest), so each item is counted once."""

    def select(self, keep: torch.Tensor) -> Repeat:
        return Repeat(self.items[keep], self.bias[keep], self.latest[keep])


@dataclass
class States:
    """What the network makes of a batch of histories: a state per scored row and the re-listen window each row is
    scored with (`SASRec.encode`); `SASRec.score` turns them into scores."""

    h: torch.Tensor
    """(B, T, D) a state per position, or (B, D) after each history's last event, or (N, D) selected rows."""
    repeat: Repeat | None
    """The re-listen window of each of the B * T (or B, or N) rows; None without `model.use_repeat`."""

    def flatten(self) -> States:
        """(B * T, D) rows, one per position, aligned with the re-listen windows."""
        return States(self.h.flatten(0, 1), self.repeat)

    def select(self, keep: torch.Tensor) -> States:
        """The rows of (N, D) states where `keep` (N,) is true."""
        return States(self.h[keep], self.repeat.select(keep) if self.repeat is not None else None)


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

    def __init__(self, cfg: ModelConfig, n_items: int, side: dict[str, list[int]] | None = None):
        """`side`: {name: [vocabulary, width]} of the side tables (seqrec.models.side.side_shapes), with
        `model.use_side`; their ids are buffers, set by `set_side` or loaded with the weights."""
        super().__init__()
        self.cfg, self.n_items = cfg, n_items
        d = cfg.d_model
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=PAD)
        if cfg.use_side and not side:
            raise ValueError("model.use_side: the network needs the side tables' shapes (seqrec.models.side)")
        side = side if cfg.use_side else {}
        self.side = nn.ModuleDict({name: nn.Embedding(vocab, d, padding_idx=PAD) for name, (vocab, _) in side.items()})
        for name, (_, width) in side.items():
            self.register_buffer(f"side_{name}", torch.zeros(n_items + 1, width, dtype=torch.long))
        self._weights: torch.Tensor | None = None
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_weights", None))
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.inputs = nn.ModuleDict({inp.name: nn.Embedding(inp.vocab, d, padding_idx=PAD)
                                     for inp in INPUTS if getattr(cfg, inp.flag)})
        # one scalar per (distance bucket, listened-fraction bucket) of a past play of the scored item
        self.repeat = nn.Embedding((len(REPEAT_DIST_EDGES) + 1) * N_FRAC, 1) if cfg.use_repeat else None
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

    def encode(self, batch: dict[str, torch.Tensor], last_only: bool = False) -> States:
        """(B, T) histories (`item` and the per-event inputs, as seqrec.models.features.gather builds them) -> the
        states of every position, or only of the last one (decoding), with their re-listen windows."""
        item = batch["item"]
        h = self(item, **{name: batch[name] for name in INPUT if name in batch})  # (B, T, D)
        return States(h[:, -1] if last_only else h, self.repeat_bias(item, batch.get("frac"), last_only))

    def forward(self, item: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids and the ids of each switched-on input (seqrec.models.features) -> (B, T, D) causal
        states; PAD items are left padding."""
        B, T = item.shape
        x = self.item_vectors(item) * self.cfg.d_model**0.5 + self.pos_emb.weight[-T:]  # (B, T, D)
        for name, emb in self.inputs.items():
            if name not in inputs:
                raise KeyError(f"this network reads the per-event input {name!r} (model.{INPUT[name].flag}); "
                               f"pass it, as seqrec.models.features.gather builds it")
            x = x + emb(inputs[name])
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

    def repeat_bias(self, item: torch.Tensor, frac: torch.Tensor | None, last_only: bool = False) -> Repeat | None:
        """Per query position (or only the last one), the bias each item of its visible window gets.

        None when switched off. Rows are flattened (B * Q, T) with Q = T, or Q = 1 with `last_only`.
        """
        if self.repeat is None:
            return None
        B, T = item.shape
        pos = torch.arange(T, device=item.device)
        query = pos[-1:] if last_only else pos  # (Q,)
        dist = query[:, None] - pos[None, :]  # (Q, T): query t, key j
        visible = (dist >= 0)[None] & (item != PAD)[:, None, :]  # (B, Q, T)
        edges = torch.tensor(REPEAT_DIST_EDGES, device=item.device)
        bucket = torch.bucketize(dist.clamp(min=0), edges)  # (Q, T)
        fr = frac if frac is not None else torch.ones_like(item)
        kern = self.repeat(bucket[None] * N_FRAC + fr[:, None, :]).squeeze(-1) * visible  # (B, Q, T)
        same = item[:, :, None] == item[:, None, :]  # (B, T, T): key j' plays the item of key j
        bias = kern @ same.to(kern.dtype)  # (B, Q, T): total bias of key j's item at query t
        later = torch.where(same & (pos[None, None, :] > pos[None, :, None]), pos[None, None, :], T)
        next_play = later.min(-1).values  # (B, T): the next position playing the same item, T if none
        latest = visible & (next_play[:, None, :] > query[None, :, None])  # (B, Q, T)
        Q = len(query)
        items = item[:, None, :].expand(B, Q, T)
        return Repeat(items.reshape(B * Q, T), bias.reshape(B * Q, T), latest.reshape(B * Q, T))

    def set_side(self, tables: dict[str, object]) -> None:
        """Copy the side tables (seqrec.models.side.side_tables) into the network's buffers."""
        for name in self.side:
            getattr(self, f"side_{name}").copy_(torch.as_tensor(tables[name]))
        self._weights = None

    def item_vectors(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """(..., D) vectors of the tracks `ids` (any shape), or (n_items + 1, D) of all: the id embedding plus, per
        side table, the mean embedding of the track's ids. Input and output share them."""
        e = self.item_emb.weight if ids is None else self.item_emb(ids)
        for name, emb in self.side.items():
            table = getattr(self, f"side_{name}")
            t = table if ids is None else table[ids]  # (..., W)
            n = (t != PAD).sum(-1, keepdim=True).clamp_min(1)
            e = e + emb(t).sum(-2) / n  # (..., W, D) -> (..., D)
        return e

    def item_weights(self) -> torch.Tensor:
        """(n_items + 1, D) output embeddings, tied to the input ones. With side information they are sums, kept
        between calls while the network is in eval mode without gradients (decoding scores batch after batch)."""
        if not self.side:
            return self.item_emb.weight
        if self.training or torch.is_grad_enabled():
            self._weights = None
            return self.item_vectors()
        if self._weights is None:
            self._weights = self.item_vectors()
        return self._weights

    def score(self, states: States, candidates: torch.Tensor | None = None,
              allowed: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of states, float32: states.h is (N, D), or (B, Q, D) with per-row candidates.

        candidates: None scores the whole catalog, (N, V); a (C,) tensor scores items shared by every row,
        (N, C); a (B, C) tensor scores each row's own items, (N, C) or (B, Q, C). The states' re-listen windows
        (one per N or B * Q row) add the bias of every scored item the row played; PAD and items not `allowed`
        ((V,) bool for every row, or (N, V) per row) score -inf. `weights`: `item_weights()`, when the caller
        scores the whole catalog chunk by chunk and builds them once.
        """
        h, context = states.h, states.repeat
        if candidates is None:
            w = self.item_weights() if weights is None else weights
            out = (h @ w.T).float()  # (N, V)
            ids = torch.arange(w.shape[0], device=h.device)[None, :]
        elif candidates.dim() == 1:
            out = (h @ self.item_vectors(candidates).T).float()  # (N, C)
            ids = candidates[None, :]
        else:
            e = self.item_vectors(candidates)  # (B, C, D)
            out = (h @ e.transpose(1, 2) if h.dim() == 3 else torch.einsum("bd,bcd->bc", h, e)).float()
            ids = candidates[:, None, :] if h.dim() == 3 else candidates  # (B, 1, C) or (N, C)
        if context is not None:
            flat = out.reshape(-1, out.shape[-1])  # (rows, C): the context's rows
            if candidates is None:  # in place when nothing is learned: no second (N, V) block
                add = flat.scatter_add_ if not torch.is_grad_enabled() else flat.scatter_add
                flat = add(1, context.items.where(context.latest, PAD), context.bias.where(context.latest, 0.0).float())
            else:
                flat = flat + window_bias(context, ids.expand(*out.shape).reshape(flat.shape))
            out = flat.view(out.shape)
        banned = ids == PAD
        if allowed is not None and allowed.dim() == 1:
            banned = banned | ~allowed[ids]
        elif allowed is not None:  # per row: (N, V) for the whole catalog, gathered for (N, C) candidates
            banned = banned | (~allowed if candidates is None else ~allowed.gather(-1, ids))
        return (out.masked_fill_ if not torch.is_grad_enabled() else out.masked_fill)(banned, float("-inf"))


def window_bias(rep: Repeat, items: torch.Tensor) -> torch.Tensor:
    """(N, C) re-listen bias of each row's `items` (N, C): the bias of the item's play in the row's window, 0 for
    an item the row did not play. A binary search in each row's sorted window, so nothing (N, C, T) is built."""
    window = rep.items.where(rep.latest, PAD)  # one entry per distinct played item, PAD elsewhere
    window, order = window.sort(dim=1)
    bias = rep.bias.where(rep.latest, 0.0).gather(1, order)
    at = torch.searchsorted(window, items.contiguous()).clamp(max=window.shape[1] - 1)
    hit = (window.gather(1, at) == items) & (items != PAD)
    return torch.where(hit, bias.gather(1, at), 0.0).float()
