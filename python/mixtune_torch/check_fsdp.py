"""Test harness for fsdp.py's helpers on the CPU, without FSDP (which torch 1.13 cannot run on a CPU).

    python3 -m mixtune_torch.check_fsdp        # prints "ok" or fails with an AssertionError

Two processes (gloo) each hold a shard of the parameters the way FSDP's use_orig_params leaves them
between steps: a 1-D view of this rank's part of one flat tensor (empty when no part of a parameter
lives on this rank). A stand-in for FSDP's full-state-dict gather / load works on those shards with
all_gather. Checked: train.py's AdamW and clip_grad_norm (with fsdp.sum_over_ranks) on the shards
equal them on the full tensors; fsdp.gather_checkpoint returns the full weights, m and v and leaves
the shards as they were; fsdp.load_checkpoint puts a checkpoint's full tensors back into the shards;
fsdp.grads_to_sum, fsdp.clean_name and fsdp.missing. What this cannot check is FSDP itself.
"""
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from . import fsdp
from .train import AdamW, clip_grad_norm

SHAPES = {"a.weight": (3, 4), "a.bias": (5,), "b.weight": (2, 2), "norm.weight": (7,)}  # 28 numbers, 14 per rank
WORLD = 2


class FakeShards:
    """Parameters as views of this rank's part of the flat concatenation, like FSDP use_orig_params."""

    def __init__(self, full, rank):
        self.rank = rank
        self.names = list(SHAPES)
        self.k = sum(t.numel() for t in full.values()) // WORLD
        self.shard = torch.cat([full[n].reshape(-1) for n in self.names])[rank * self.k:(rank + 1) * self.k].clone()
        self.params, self.spans, off = [], [], 0
        for n in self.names:
            numel = full[n].numel()
            lo, hi = max(off, rank * self.k), min(off + numel, (rank + 1) * self.k)
            lo, hi = (lo - rank * self.k, hi - rank * self.k) if lo < hi else (0, 0)
            self.params.append((n, torch.nn.Parameter(self.shard[lo:hi])))  # shares the shard's storage
            self.spans.append((off, numel))
            off += numel

    def slice(self, full):
        """This rank's part of full tensors, as its params see them."""
        flat = torch.cat([full[n].reshape(-1) for n in self.names])[self.rank * self.k:(self.rank + 1) * self.k]
        out = {}
        for (n, p), (off, _) in zip(self.params, self.spans):
            start = max(off - self.rank * self.k, 0)
            out[n] = flat[start:start + p.numel()]
        return out

    def gather(self):
        """The full state dict on rank 0 ({} elsewhere), as FSDP's FULL_STATE_DICT rank0_only."""
        parts = [torch.empty_like(self.shard) for _ in range(WORLD)]
        dist.all_gather(parts, self.shard)
        if self.rank != 0:
            return {}
        flat = torch.cat(parts)
        return {n: flat[off:off + numel].reshape(SHAPES[n]).clone() for n, (off, numel) in zip(self.names, self.spans)}

    @torch.no_grad()
    def load(self, full):
        """Every rank gets the full tensors and keeps its part, as FSDP's load_state_dict."""
        self.shard.copy_(torch.cat([full[n].reshape(-1) for n in self.names])[self.rank * self.k:(self.rank + 1) * self.k])


def close(a, b, what, tol=1e-6):
    assert set(a) == set(b), (what, sorted(a), sorted(b))
    for n in a:
        assert a[n].shape == b[n].shape, (what, n, a[n].shape, b[n].shape)
        err = float((a[n] - b[n]).abs().max()) if a[n].numel() else 0.0
        assert err <= tol, f"{what} {n}: max difference {err}"


def rank_main(rank, init_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    full = {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}
    grads = [{n: torch.randn(s, generator=g) * 3 for n, s in SHAPES.items()} for _ in range(3)]

    # the reference: every tensor whole, as the DDP path
    ref = [(n, torch.nn.Parameter(t.clone())) for n, t in full.items()]
    ref_opt = AdamW(ref, 0.9, 0.95, 1e-8, 0.1)
    norms = []
    for step in range(3):
        for n, p in ref:
            p.grad = grads[step][n].clone()
        norms.append(clip_grad_norm([p for _, p in ref], 1.0))
        ref_opt.step(1e-2)

    # the same steps on the shards
    s = FakeShards(full, rank)
    assert any(p.numel() == 0 for _, p in s.params), "some parameter should have no part on each rank"
    opt = AdamW(s.params, 0.9, 0.95, 1e-8, 0.1)
    for step in range(3):
        part = s.slice(grads[step])
        for n, p in s.params:
            # FSDP leaves no gradient where no part of the parameter lives; its reduce-scatter leaves the mean
            p.grad = part[n].clone() / WORLD if p.numel() else None
        fsdp.grads_to_sum(s.params, WORLD)
        norm = clip_grad_norm([p for _, p in s.params], 1.0, lambda sq: fsdp.sum_over_ranks(sq, torch.device("cpu")))
        assert abs(norm - norms[step]) <= 1e-9 * norms[step], ("global grad norm", norm, norms[step])
        opt.step(1e-2)
    before = {n: p.detach().clone() for n, p in s.params}
    weights, m, v = fsdp.gather_checkpoint(None, s.params, opt, gather=s.gather)
    close({n: p.detach() for n, p in s.params}, before, "shards after the gathers")
    if rank == 0:
        close(weights, {n: p.detach() for n, p in ref}, "gathered weights")
        close(m, ref_opt.m, "gathered m")
        close(v, ref_opt.v, "gathered v", 1e-7)
    else:
        assert weights == {} and m == {} and v == {}

    # resume: a checkpoint's full tensors (here the reference's) into fresh shards
    s2 = FakeShards({n: torch.zeros(sh) for n, sh in SHAPES.items()}, rank)
    opt2 = AdamW(s2.params, 0.9, 0.95, 1e-8, 0.1)
    fsdp.load_checkpoint(None, s2.params, opt2, {n: p.detach() for n, p in ref}, ref_opt.m, ref_opt.v, load=s2.load)
    close({n: p.detach() for n, p in s2.params}, s.slice({n: p.detach() for n, p in ref}), "loaded weight shards")
    close(opt2.m, s.slice(ref_opt.m), "loaded m shards")
    close(opt2.v, s.slice(ref_opt.v), "loaded v shards", 1e-7)
    dist.destroy_process_group()


def main():
    assert fsdp.clean_name("model.layers.3._fsdp_wrapped_module.self_attn.q_proj.weight") == "model.layers.3.self_attn.q_proj.weight"
    assert fsdp.clean_name("_fsdp_wrapped_module.model.norm.weight") == "model.norm.weight"
    assert fsdp.missing("2.1.0+cu121", True, False, False, 8) is None
    for args, says in [
        (("1.13.1", False, False, False, 1), ["CUDA GPUs (this PyTorch sees none)", "PyTorch >= 2.0 (this is 1.13.1)", "2 or more processes"]),
        (("2.3.0", True, True, False, 2), ["(--cpu was given)"]),
        (("1.13.0a0", True, False, False, 2), ["PyTorch >= 2.0"]),
        (("2.3.0", True, False, True, 2), ["LoRA"]),
    ]:
        why = fsdp.missing(*args)
        assert why and "\n" not in why and all(x in why for x in says), (args, why)
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(rank_main, args=(os.path.join(d, "init"),), nprocs=WORLD)
    print("ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
