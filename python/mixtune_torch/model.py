"""The Llama-family decoder (Llama, Mistral, Qwen2) in PyTorch, the twin of src/model/llama.ts.

HF tensor names and layouts (q/k rows in rotate-half order), RMSNorm, RoPE with linear / llama3
scaling, grouped-query attention, optional q/k/v bias (Qwen2), tied or untied head. Attention is
mixtune's layout attention (attention.py), so packed, MoI and MISO rows train exactly as natively.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from .attention import Layout, layout_attention
from .safetensors_io import read_model_weights

IGNORE = -100


class Config:
    def __init__(self, j):
        self.vocab = j["vocab_size"]
        self.dim = j["hidden_size"]
        self.hidden = j["intermediate_size"]
        self.layers = j["num_hidden_layers"]
        self.heads = j["num_attention_heads"]
        self.kv_heads = j.get("num_key_value_heads") or self.heads
        self.head_dim = j.get("head_dim") or self.dim // self.heads
        self.eps = j.get("rms_norm_eps", 1e-6)
        self.theta = j.get("rope_theta", 10000.0)
        self.tied = bool(j.get("tie_word_embeddings", False))
        self.qkv_bias = j.get("model_type") == "qwen2"
        self.rope_scaling = j.get("rope_scaling")
        self.raw = j

    @staticmethod
    def load(folder):
        with open(os.path.join(folder, "config.json")) as f:
            return Config(json.load(f))


def rope_inv_freq(c):
    """theta^(-2j/d) in fp32 (as llama2.c and transformers), then rope_scaling as transformers applies it."""
    d = c.head_dim
    inv = 1.0 / torch.pow(torch.tensor(float(c.theta), dtype=torch.float32), torch.arange(0, d, 2, dtype=torch.float32) / d)
    s = c.rope_scaling
    kind = (s or {}).get("rope_type", (s or {}).get("type"))
    if kind == "linear":
        inv = inv / s["factor"]
    elif kind == "llama3":
        factor, lo, hi, old = s["factor"], s["low_freq_factor"], s["high_freq_factor"], s["original_max_position_embeddings"]
        out = inv.clone().double()
        for j, f in enumerate(inv.tolist()):
            wavelen = 2 * math.pi / f
            if wavelen < old / hi:
                continue
            if wavelen > old / lo:
                out[j] = f / factor
            else:
                smooth = (old / wavelen - lo) / (hi - lo)
                out[j] = (1 - smooth) * (f / factor) + smooth * f
        inv = out.float()
    elif kind not in (None, "default"):
        raise ValueError(f"rope_scaling type {kind!r} is not supported")
    return inv


def apply_rope(x, cos, sin):
    """x [B,H,T,D] in rotate-half layout; cos/sin [B,1,T,D/2]."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.dim, c.heads * c.head_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.dim, c.kv_heads * c.head_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.dim, c.kv_heads * c.head_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.heads * c.head_dim, c.dim, bias=False)

    def forward(self, x, cos, sin, layout):
        B, T, _ = x.shape
        c = self.c
        q = self.q_proj(x).view(B, T, c.heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = layout_attention(q, k, v, layout)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, c.heads * c.head_dim))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.dim, c.hidden, bias=False)
        self.up_proj = nn.Linear(c.dim, c.hidden, bias=False)
        self.down_proj = nn.Linear(c.hidden, c.dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.dim, c.eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.dim, c.eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, layout):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, layout)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    """HF module names, so state_dict() keys are the HF tensor names."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(c.vocab, c.dim)
        self.model.layers = nn.ModuleList([Layer(c) for _ in range(c.layers)])
        self.model.norm = RMSNorm(c.dim, c.eps)
        if not c.tied:
            self.lm_head = nn.Linear(c.dim, c.vocab, bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(c), persistent=False)
        # activation checkpointing (training.gradient_checkpointing): recompute each layer in backward
        self.checkpointing = False

    def logits(self, tokens, positions, layout):
        x = self.model.embed_tokens(tokens)
        f = positions.float()[:, None, :, None] * self.inv_freq.to(x.device)[None, None, None, :]
        cos, sin = torch.cos(f).to(x.dtype), torch.sin(f).to(x.dtype)
        for layer in self.model.layers:
            if self.checkpointing and torch.is_grad_enabled():
                # preserve_rng_state (the default) replays LoRA dropout masks in the recomputation
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, layout, use_reentrant=False)
            else:
                x = layer(x, cos, sin, layout)
        x = self.model.norm(x)
        w = self.model.embed_tokens.weight if self.c.tied else self.lm_head.weight
        return x @ w.t()

    def loss_sum(self, tokens, targets, positions, layout):
        """Sum of the cross-entropy over the labelled tokens (targets != -100)."""
        logits = self.logits(tokens, positions, layout)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="sum")

    def forward(self, tokens, targets, positions, layout):
        """= loss_sum; the FSDP path calls the model itself, so that FSDP gathers the root's shards."""
        return self.loss_sum(tokens, targets, positions, layout)


class LoRALinear(nn.Module):
    """y = base(x) + scale * B(A(dropout(x))), as mixtune's native LoRA and PEFT (A [r, in], B [out, r])."""

    def __init__(self, base, a, b, scale, dropout):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(a.clone())
        self.lora_B = nn.Parameter(b.clone())
        self.scale = scale
        self.dropout = dropout

    def forward(self, x):
        xd = F.dropout(x, self.dropout, self.training) if self.dropout > 0 else x
        return self.base(x) + self.scale * F.linear(F.linear(xd, self.lora_A), self.lora_B)


def apply_lora(model, adapters, alpha, dropout):
    """Freezes the model and wraps every linear layer named in `adapters` (PEFT names, e.g.
    base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight). Returns [(PEFT name, parameter)]."""
    for p in model.parameters():
        p.requires_grad_(False)
    prefixes = sorted({n[: -len(".lora_A.weight")] for n in adapters if n.endswith(".lora_A.weight")})
    trained = []
    for prefix in prefixes:
        path = prefix[len("base_model.model."):].split(".")
        parent = model
        for part in path[:-1]:
            parent = getattr(parent, part) if not part.isdigit() else parent[int(part)]
        base = getattr(parent, path[-1])
        a, b = adapters[prefix + ".lora_A.weight"], adapters[prefix + ".lora_B.weight"]
        wrapped = LoRALinear(base, a.float(), b.float(), alpha / a.shape[0], dropout)
        setattr(parent, path[-1], wrapped)
        trained += [(prefix + ".lora_A.weight", wrapped.lora_A), (prefix + ".lora_B.weight", wrapped.lora_B)]
    return trained


def load_decoder(folder, dtype=torch.float32):
    c = Config.load(folder)
    m = Decoder(c)
    weights = read_model_weights(folder)
    own = {k: v for k, v in m.state_dict().items()}
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise ValueError(f"{folder}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    m.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()})
    return m.to(dtype)


def layout_of(batch, device):
    """The Layout of a micro-batch dict (group/part/n_inputs/weighting), or plain causal rows."""
    B, T = batch["tokens"].shape
    if batch.get("group") is None:
        return Layout.causal(B, T, device)
    return Layout(batch["group"].to(device), batch["part"].to(device), batch["n_inputs"], batch["weighting"])
