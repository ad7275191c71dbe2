"""`--fsdp`: full fine-tuning with the model sharded across the processes (FullyShardedDataParallel).

UNTESTED until run on GPUs: FSDP needs CUDA and PyTorch >= 2.0 (use_orig_params), and the machine
this was written on has neither (torch 1.13 on CPU cannot import or run FSDP). Only the pure helpers
below (requirements, names, the gather / load swaps, the global grad norm) are tested, on CPU
(check_fsdp.py).

How it fits train.py: each decoder layer is one FSDP unit; the root unit holds the embedding, the
final norm and the head. With use_orig_params=True each parameter keeps its name and, between
steps, is a 1-D view of this rank's shard of it (empty when none of it lives here), so the
elementwise AdamW of train.py runs unchanged on the shards, with its m / v shaped like them.
FSDP reduce-scatters the gradients in backward as their MEAN over the ranks; train.py multiplies
them by the world size to get the sum its step-normalized loss needs (as the DDP path's all_reduce).
The shards are disjoint, so the global grad norm for clipping is the square root of every rank's
sum of squares summed over the ranks (sum_over_ranks). bf16 autocast on CUDA as the DDP path; the
weights, gradients and their reduce-scatter stay fp32. gradient_checkpointing recomputes each
FSDP-wrapped layer (non-reentrant checkpoint around it). Every process reads the whole model in fp32
into CPU memory before FSDP moves it to its GPU and shards it.
Checkpoints stay in the native format (full tensors): the weights are gathered with
FULL_STATE_DICT (to rank 0, on the CPU); AdamW's m and v by copying them into the parameters'
shards, gathering the same way, and copying the weights back. Resume is the reverse.
"""
import re
from functools import partial

import torch
import torch.distributed as dist

WRAPPED = "_fsdp_wrapped_module."


def missing(torch_version, cuda, cpu_flag, lora, world):
    """Why --fsdp cannot run here (one line), or None. (src/torch/engine.ts fsdpProblem says the same.)"""
    if lora:
        return "--fsdp shards full fine-tuning; LoRA adapters are small, train them without --fsdp (every process holds the model, DDP)"
    needs = []
    if cpu_flag:
        needs.append("CUDA GPUs (--cpu was given)")
    elif not cuda:
        needs.append("CUDA GPUs (this PyTorch sees none)")
    v = re.match(r"(\d+)\.(\d+)", torch_version)
    if not v or (int(v[1]), int(v[2])) < (2, 0):
        needs.append(f"PyTorch >= 2.0 (this is {torch_version})")
    if world < 2:
        needs.append("2 or more processes to shard over (--nproc, --nnodes)")
    if needs:
        return "--fsdp needs " + ", ".join(needs) + "; without --fsdp the torch engine trains with DDP on CPUs or GPUs"
    return None


def clean_name(name):
    """The HF name of a parameter of the wrapped model (FSDP puts its wrapper's name into the path)."""
    return name.replace(WRAPPED, "")


def wrap(model, device):
    """Every decoder layer an FSDP unit, the rest (embedding, norm, head) the root; shards on `device`."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
    from .model import Layer

    policy = partial(transformer_auto_wrap_policy, transformer_layer_cls={Layer})
    return FSDP(model, auto_wrap_policy=policy, device_id=device, use_orig_params=True)


def full_state_dict(model):
    """The full tensors of every parameter, on rank 0's CPU ({} on the other ranks). All ranks call it."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, FullStateDictConfig, StateDictType

    with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
        return model.state_dict()


def load_full_state_dict(model, tensors):
    """Every rank passes the full tensors; each parameter keeps its shard of them."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, StateDictType

    with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT):
        model.load_state_dict(tensors)


@torch.no_grad()
def gather_as(params, values, gather):
    """gather() (a full state dict) taken with values[name] in place of each parameter's shard;
    the parameters are copied back afterwards. values are shaped like the shards (AdamW's m or v)."""
    for n, p in params:
        if p.shape != values[n].shape:  # copy_ would broadcast; the parameters must be the shard views here
            raise RuntimeError(f"fsdp: {n} is {tuple(p.shape)} here, its optimizer state {tuple(values[n].shape)}")
    saved = [p.detach().clone() for _, p in params]
    try:
        for n, p in params:
            p.copy_(values[n])
        return gather()
    finally:
        for (_, p), s in zip(params, saved):
            p.copy_(s)


@torch.no_grad()
def shards_of(params, full, load):
    """load(full) puts full tensors into the parameters' shards; returns a copy of every shard."""
    load(full)
    return {n: p.detach().clone() for n, p in params}


def gather_checkpoint(model, params, opt, gather=None):
    """(weights, m, v) as full tensors by name on rank 0 ({} elsewhere). All ranks call it.
    gather: full_state_dict of the model (a stand-in in check_fsdp.py)."""
    gather = gather or partial(full_state_dict, model)
    return gather(), gather_as(params, opt.m, gather), gather_as(params, opt.v, gather)


@torch.no_grad()
def load_checkpoint(model, params, opt, weights, m, v, load=None):
    """The reverse of gather_checkpoint: full tensors by name (on every rank) into the shards.
    load: load_full_state_dict into the model (a stand-in in check_fsdp.py)."""
    load = load or partial(load_full_state_dict, model)
    for moments, full in ((opt.m, m), (opt.v, v)):
        for n, shard in shards_of(params, full, load).items():
            moments[n].copy_(shard)
    load(weights)


def sum_over_ranks(x, device):
    """A float summed over all ranks, in fp64 (the global grad norm's squares: each rank has its shards)."""
    t = torch.tensor(x, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t)


@torch.no_grad()
def grads_to_sum(params, world):
    """FSDP left each shard's gradient as the mean over the ranks; train.py's loss wants the sum."""
    for _, p in params:
        if p.grad is not None:
            p.grad.mul_(world)
