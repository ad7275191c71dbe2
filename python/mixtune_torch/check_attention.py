"""Test harness: runs layout_attention on arrays written by mixtune's tests and writes the results.

    python3 -m mixtune_torch.check_attention DIR

DIR holds meta.json {B, T, heads, kv_heads, head_dim, scale, block} and little-endian raw files:
q.f32 k.f32 v.f32 d_out.f32 ([B, T, heads*head_dim] / [B, T, kv_heads*head_dim], the native
kernels' layout), group.i32 part.i32 n_inputs.i32 weighting.i32. Writes out.f32 dq.f32 dk.f32 dv.f32.
"""
import array
import json
import os
import sys


import torch

from .attention import Layout, layout_attention


def _read(d, name, dtype, shape):
    with open(os.path.join(d, name), "rb") as f:
        data = bytearray(f.read())
    return torch.frombuffer(data, dtype=dtype).reshape(shape).clone()


def main(d):
    m = json.load(open(os.path.join(d, "meta.json")))
    B, T, H, KVH, D = m["B"], m["T"], m["heads"], m["kv_heads"], m["head_dim"]
    f64 = torch.float64
    q = _read(d, "q.f32", torch.float32, (B, T, H, D)).to(f64).transpose(1, 2).requires_grad_()
    k = _read(d, "k.f32", torch.float32, (B, T, KVH, D)).to(f64).transpose(1, 2).requires_grad_()
    v = _read(d, "v.f32", torch.float32, (B, T, KVH, D)).to(f64).transpose(1, 2).requires_grad_()
    g = _read(d, "d_out.f32", torch.float32, (B, T, H, D)).to(f64).transpose(1, 2)
    group = _read(d, "group.i32", torch.int32, (B, T))
    part = _read(d, "part.i32", torch.int32, (B, T))
    n = os.path.getsize(os.path.join(d, "n_inputs.i32")) // 4
    layout = Layout(group, part, _read(d, "n_inputs.i32", torch.int32, (n,)), _read(d, "weighting.i32", torch.int32, (n,)))
    out = layout_attention(q, k, v, layout, m["scale"], m.get("block", 128))
    out.backward(g)
    for name, t in (("out.f32", out), ("dq.f32", q.grad), ("dk.f32", k.grad), ("dv.f32", v.grad)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(array.array("f", t.detach().transpose(1, 2).reshape(-1).tolist()).tobytes())


if __name__ == "__main__":
    main(sys.argv[1])
