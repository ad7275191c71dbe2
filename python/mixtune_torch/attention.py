"""Layout-aware attention (docs/design.md §2) in PyTorch, the twin of mixtune's native kernel.

A row holds contiguous groups. A group with one input is ordinary causal attention over the group.
A MISO group has input parts 0..n-1 and then an output part (-1):
  - an input token attends causally within its own part (inputs are encoded independently);
  - an output token under weighting "vanilla" attends to every earlier key of the group; under
    "fid" the same with +log(n) added to the logits of the output keys; under "uniform" it computes
    one softmax per input i over (input i + earlier output keys) and averages the n results.

Everything is expressed with S "key sets" per query: set s of a uniform output query is input s plus
the output; every other query uses set 0 only. out = sum_s w_s * softmax_s(q K^T) V.

Computed per block of queries with a custom autograd Function that saves only the log-sum-exp of
each set (as flash attention does) and recomputes the probabilities in backward, so memory stays
O(T * block) per head instead of a dense T x T matrix.
"""
import math
import torch

UNIFORM, FID, VANILLA = 0, 1, 2
WEIGHTING_CODES = {"uniform": UNIFORM, "fid": FID, "vanilla": VANILLA}


class Layout:
    """Per-token layout of a micro-batch: group [B,T] (ids into n_inputs / weighting), part [B,T]."""

    def __init__(self, group, part, n_inputs, weighting):
        self.group = group.long()
        self.part = part.long()
        n_inputs = n_inputs.long().to(self.group.device)
        weighting = weighting.long().to(self.group.device)
        self.n_tok = n_inputs[self.group]  # [B,T] inputs of the token's group
        self.w_tok = weighting[self.group]
        multi_out = (self.n_tok > 1) & (self.part == -1)
        self.uniform_out = multi_out & (self.w_tok == UNIFORM)
        self.fid_out = multi_out & (self.w_tok == FID)
        self.sets = int(self.n_tok[self.uniform_out].max().item()) if bool(self.uniform_out.any()) else 1
        self._cache = {}

    @staticmethod
    def causal(B, T, device):
        z = torch.zeros(B, T, dtype=torch.long, device=device)
        group = torch.arange(B, device=device)[:, None].expand(B, T).contiguous()
        return Layout(group, z, torch.ones(B, dtype=torch.long), torch.zeros(B, dtype=torch.long))

    def block(self, q0, q1, s):
        """Keys k0..q1 that queries q0..q1 may see in set s: mask [B,1,bq,q1-k0], logit bias, weights [B,1,bq,1].

        Keys before k0 (the earliest group start among these queries) and after q1 (causality) are
        never visible, so they are not computed. Cached: every layer, forward and backward, reuses
        the same masks (1 byte per query-key pair of a block, shared by all heads).
        """
        key = (q0, q1, s)
        if key not in self._cache:
            self._cache[key] = self._block(q0, q1, s)
        return self._cache[key]

    def _block(self, q0, q1, s):
        dev = self.group.device
        first = self.group[:, q0:q0 + 1]
        k0 = int((self.group == first).float().argmax(1).min().item()) if q0 > 0 else 0
        qi = torch.arange(q0, q1, device=dev)
        ki = torch.arange(k0, q1, device=dev)
        qg, qp = self.group[:, q0:q1, None], self.part[:, q0:q1, None]
        kg, kp = self.group[:, None, k0:q1], self.part[:, None, k0:q1]
        base = (qg == kg) & (ki[None, None, :] <= qi[None, :, None])
        uq = self.uniform_out[:, q0:q1, None]
        n_q = self.n_tok[:, q0:q1, None]
        in_set = base & ((kp == s) | (kp == -1))
        if s == 0:
            single = base & ((n_q == 1) | (qp == -1) | (kp == qp))
            mask = torch.where(uq, in_set, single)
            weight = torch.where(uq, 1.0 / n_q.float(), torch.ones_like(n_q, dtype=torch.float32))
        else:
            mask = uq & in_set
            weight = torch.where(uq & (s < n_q), 1.0 / n_q.float(), torch.zeros_like(n_q, dtype=torch.float32))
        bias = torch.where(self.fid_out[:, q0:q1, None] & (kp == -1), torch.log(n_q.float()), torch.zeros((), device=dev))
        return k0, mask[:, None], bias[:, None], weight[:, None]


def _scores(q, k, q0, q1, k0, scale, mask, bias):
    s = torch.matmul(q[:, :, q0:q1], k[:, :, k0:q1].transpose(-1, -2)) * scale + bias.to(q.dtype)
    return s.masked_fill(~mask, float("-inf"))


def _probs(s):
    """Softmax over the visible keys and its log-sum-exp; rows with no visible key give 0 and -inf."""
    m = s.amax(-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(s - m)
    z = e.sum(-1, keepdim=True)
    p = e / torch.where(z > 0, z, torch.ones_like(z))
    lse = torch.where(z > 0, m + torch.log(z), torch.full_like(z, float("-inf")))
    return p, lse


class LayoutAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, layout, scale, block):
        B, H, T, D = q.shape
        out = torch.zeros_like(q)
        lse = torch.empty(layout.sets, B, H, T, 1, dtype=torch.float32, device=q.device)
        for q0 in range(0, T, block):
            q1 = min(T, q0 + block)
            for s in range(layout.sets):
                k0, mask, bias, w = layout.block(q0, q1, s)
                p, l = _probs(_scores(q, k, q0, q1, k0, scale, mask, bias).float())
                lse[s, :, :, q0:q1] = l
                out[:, :, q0:q1] += (w * p).to(v.dtype) @ v[:, :, k0:q1]
        ctx.save_for_backward(q, k, v, lse)
        ctx.layout, ctx.scale, ctx.block = layout, scale, block
        return out

    @staticmethod
    def backward(ctx, d_out):
        q, k, v, lse = ctx.saved_tensors
        layout, scale, block = ctx.layout, ctx.scale, ctx.block
        B, H, T, D = q.shape
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for q0 in range(0, T, block):
            q1 = min(T, q0 + block)
            g = d_out[:, :, q0:q1]
            for s in range(layout.sets):
                k0, mask, bias, w = layout.block(q0, q1, s)
                kb, vb = k[:, :, k0:q1], v[:, :, k0:q1]
                sc = _scores(q, k, q0, q1, k0, scale, mask, bias).float()
                l = lse[s, :, :, q0:q1]
                p = torch.where(mask, torch.exp(sc - torch.where(torch.isfinite(l), l, torch.zeros_like(l))), torch.zeros((), device=q.device))
                a = p.to(v.dtype) @ vb  # this set's attention result A_s
                di = (g * a).sum(-1, keepdim=True)
                dp = g @ vb.transpose(-1, -2)
                ds = (w * p * (dp.float() - di.float())).to(q.dtype)
                dq[:, :, q0:q1] += scale * (ds @ kb)
                dk[:, :, k0:q1] += scale * (ds.transpose(-1, -2) @ q[:, :, q0:q1])
                dv[:, :, k0:q1] += (w * p).to(v.dtype).transpose(-1, -2) @ g
        return dq, dk, dv, None, None, None


def layout_attention(q, k, v, layout, scale=None, block=128):
    """q [B,H,T,D], k/v [B,KVH,T,D] (grouped-query heads are shared); returns [B,H,T,D]."""
    B, H, T, D = q.shape
    rep = H // k.shape[1]
    if rep > 1:
        k = k.repeat_interleave(rep, 1)
        v = v.repeat_interleave(rep, 1)
    return LayoutAttention.apply(q, k, v, layout, scale if scale is not None else 1.0 / math.sqrt(D), block)
