"""The torch engine's training loop: runs the steps `mixtune train --engine torch` planned.

    python3 -m mixtune_torch.train WORK_DIR                      # one process
    python3 -m torch.distributed.run --nproc_per_node N -m mixtune_torch.train WORK_DIR   # DDP

mixtune (TypeScript) prepares everything that decides WHAT is trained, so both engines train the
same thing: WORK_DIR/run.json (options), rows.jsonl (the rows of `mixtune prepare --out`) and
plan.jsonl (per optimizer step: its learning rate and the row indices of its micro-batches, drawn
exactly as the native trainer draws them). This file does the arithmetic: forward/backward with the
layout attention, the per-token loss normalized over the whole step (all micro-batches of all
ranks), gradient all-reduce, global-norm clipping, AdamW as the native kernel computes it.

Rank r trains micro-batches r, r+N, ... of each step, so N processes with grad_accum g train the
same rows per step as one process with grad_accum N*g.

Checkpoints use the native engine's format (model.safetensors, optimizer.safetensors with
<name>.exp_avg / .exp_avg_sq, trainer_state.json), so a run can resume on either engine.
Progress goes to stdout as lines "@mixtune {json}" (rank 0 only).

With options.fsdp (`mixtune train --engine torch --fsdp`) the model is sharded across the ranks
instead of copied to each (fsdp.py; CUDA and PyTorch >= 2.0 only, UNTESTED until run on GPUs).
"""
import json
import math
import os
import resource
import shutil
import signal
import sys
import time

import torch
import torch.distributed as dist

from . import fsdp
from .model import IGNORE, apply_lora, load_decoder
from .attention import Layout, WEIGHTING_CODES
from .safetensors_io import read_safetensors, write_safetensors


def emit(event, **fields):
    print("@mixtune " + json.dumps({"event": event, **fields}), flush=True)


def read_rows(path):
    train, evaluation = [], []
    with open(path) as f:
        header = json.loads(f.readline())
        if "mixtune_prepared" not in header:
            raise ValueError(f"{path}: not a file written by mixtune prepare --out")
        for line in f:
            if line.strip():
                r = json.loads(line)
                (train if r["split"] == "train" else evaluation).append(r)
    return train, evaluation


def micro_batch(rows, pad_id, device):
    """B rows padded to a common length, as the native makeMicroBatch: padding is its own group."""
    B, T = len(rows), max(len(r["tokens"]) for r in rows)
    tokens = torch.full((B, T), pad_id, dtype=torch.long)
    targets = torch.full((B, T), IGNORE, dtype=torch.long)
    positions = torch.zeros((B, T), dtype=torch.long)
    group = torch.zeros((B, T), dtype=torch.long)
    part = torch.zeros((B, T), dtype=torch.long)
    n_inputs, weighting = [], []
    for b, r in enumerate(rows):
        n = len(r["tokens"])
        base = len(n_inputs)
        tokens[b, :n] = torch.tensor(r["tokens"])
        targets[b, :n] = torch.tensor(r["targets"])
        positions[b, :n] = torch.tensor(r["positions"])
        part[b, :n] = torch.tensor(r["part"])
        group[b, :n] = torch.tensor(r["group"]) + base
        for g in r["groups"]:
            n_inputs.append(g["nInputs"])
            weighting.append(WEIGHTING_CODES[g["weighting"]])
        if n < T:
            group[b, n:] = len(n_inputs)
            n_inputs.append(1)
            weighting.append(0)
    plain = all(len(r["groups"]) == 1 and r["groups"][0]["nInputs"] == 1 for r in rows)
    layout = Layout.causal(B, T, device) if plain else Layout(group.to(device), part.to(device), torch.tensor(n_inputs), torch.tensor(weighting))
    return tokens.to(device), targets.to(device), positions.to(device), layout, int((targets != IGNORE).sum()), sum(len(r["tokens"]) for r in rows)


def no_decay(name):
    return name.endswith(".bias") or name.endswith("norm.weight")


class AdamW:
    """AdamW exactly as mixtune's native kernel: decoupled decay, bias-corrected moments."""

    def __init__(self, params, beta1, beta2, eps, weight_decay):
        self.params = params  # [(name, tensor)]
        self.b1, self.b2, self.eps, self.wd = beta1, beta2, eps, weight_decay
        self.m = {n: torch.zeros_like(p) for n, p in params}
        self.v = {n: torch.zeros_like(p) for n, p in params}
        self.steps = 0

    @torch.no_grad()
    def step(self, lr):
        self.steps += 1
        bc1, bc2 = 1 - self.b1 ** self.steps, 1 - self.b2 ** self.steps
        for name, p in self.params:
            g, m, v = p.grad, self.m[name], self.v[name]
            if g is None:  # FSDP: no part of this parameter lives on this rank
                continue
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            upd = (m / bc1) / ((v / bc2).sqrt() + self.eps)
            wd = 0.0 if no_decay(name) else self.wd
            p.sub_(p * (lr * wd)).sub_(upd * lr)


class Stop:
    requested = False


def main(work):
    run = json.load(open(os.path.join(work, "run.json")))
    o = run["options"]
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_fsdp = bool(o.get("fsdp"))
    if use_fsdp:
        why = fsdp.missing(torch.__version__, torch.cuda.is_available(), o.get("cpu", False), bool(run.get("lora")), world_size)
        if why:
            raise SystemExit(f"mixtune torch engine: {why}")
    distributed = world_size > 1
    cuda = torch.cuda.is_available() and not o.get("cpu", False)
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.manual_seed(o.get("seed", 0))
    if o.get("threads"):
        torch.set_num_threads(int(o["threads"]))
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: setattr(Stop, "requested", True))

    resume = run.get("resume")
    model = load_decoder(run["init"])
    lora = run.get("lora")
    if lora:
        # the adapters as mixtune initialized them (A random, B = 0), or as a checkpoint left them
        adapters = read_safetensors(os.path.join(resume, run["weights_file"]) if resume else run["adapters"])
        params = apply_lora(model, adapters, lora["alpha"], lora["dropout"])
    else:
        params = [(n, p) for n, p in model.named_parameters()]
    model.train(True)
    model.checkpointing = bool(o.get("checkpointing"))
    if use_fsdp:
        # each parameter becomes a view of this rank's shard of it (see fsdp.py; untested until run on GPUs)
        model = fsdp.wrap(model, device)
        params = [(fsdp.clean_name(n), p) for n, p in model.named_parameters()]
    else:
        model.to(device)
    opt = AdamW(params, o["beta1"], o["beta2"], o["eps"], o["weight_decay"])
    state = {"step": 0, "tokensSeen": 0, "targetTokensSeen": 0, "elapsedSeconds": 0.0}
    if resume:
        state = load_checkpoint(resume, params, opt, o, device, run["weights_file"], model if use_fsdp else None)
    rows, eval_rows = read_rows(run["rows"])
    with open(run["plan"]) as f:
        plan = [json.loads(line) for line in f if line.strip()]
    total = o["total_steps"]
    pad = o["pad_id"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and o.get("bf16", True) else None
    forward = model if use_fsdp else model.loss_sum  # FSDP gathers the shards in its forward (Decoder.forward = loss_sum)
    grad_norm_reduce = (lambda sq: fsdp.sum_over_ranks(sq, device)) if use_fsdp else None

    def loss_sum(batch):
        tokens, targets, positions, layout = batch[:4]
        if autocast is None:
            return forward(tokens, targets, positions, layout)
        with autocast:
            return forward(tokens, targets, positions, layout)

    t_start = time.time()
    elapsed_before = state["elapsedSeconds"]
    loss = float("nan")
    last_eval = None
    for entry in plan[state["step"]:total]:
        t0 = time.time()
        step, lr = entry["step"], entry["lr"]
        mbs = [micro_batch([rows[i] for i in idx], pad, device) for idx in entry["micro_batches"]]
        step_targets = sum(mb[4] for mb in mbs)  # the whole step's labelled tokens (every rank sees the plan)
        step_tokens = sum(mb[5] for mb in mbs)
        for _, p in params:
            p.grad = None if use_fsdp else torch.zeros_like(p)
        local = torch.zeros((), dtype=torch.float64, device=device)
        for mb in mbs[rank::world]:
            ls = loss_sum(mb)
            (ls / max(step_targets, 1)).backward()
            local += ls.detach().double()
        if use_fsdp:
            fsdp.grads_to_sum(params, world)  # the backward's reduce-scatter averaged them
            dist.all_reduce(local)
        elif distributed:
            for _, p in params:
                dist.all_reduce(p.grad)
            dist.all_reduce(local)
        loss = local.item() / step_targets if step_targets > 0 else float("nan")
        if not math.isfinite(loss):
            raise SystemExit(f"mixtune torch engine: step {step}: the loss is {loss}; stopping (lower the learning rate?)")
        grad_norm = clip_grad_norm([p for _, p in params], o["max_grad_norm"], grad_norm_reduce)
        opt.step(lr)
        state = {
            "step": step, "epoch": entry["epoch"], "cursor": entry["cursor"], "optimizerSteps": opt.steps, "rng": o["rng"],
            "dataFingerprint": o["data_fingerprint"], "tokensSeen": state["tokensSeen"] + step_tokens,
            "targetTokensSeen": state["targetTokensSeen"] + step_targets,
            "elapsedSeconds": elapsed_before + (time.time() - t_start),
            # the dropout masks' generator (LoRA dropout), restored on resume
            "extra": {"torch_rng": torch.get_rng_state().tolist()},
        }
        secs = time.time() - t0
        if rank == 0:
            emit("step", step=step, loss=loss, lr=lr, grad_norm=grad_norm, tokens=step_tokens, target_tokens=step_targets,
                 seconds=secs, elapsed=state["elapsedSeconds"])
        if o["eval_every"] > 0 and (step % o["eval_every"] == 0 or step == total) and eval_rows:
            last_eval = evaluate(model, eval_rows, o["micro_batch_size"], pad, device, loss_sum)
            if rank == 0:
                emit("eval", step=step, eval_loss=last_eval)
        stop_after = o.get("stop_after")
        stopping = step < total and (Stop.requested or (stop_after is not None and step >= stop_after))
        if (o["save_every"] > 0 and step % o["save_every"] == 0) or stopping or step == total:
            # full tensors by name: every rank takes part in FSDP's gathers, rank 0 gets them
            weights, m, v = fsdp.gather_checkpoint(model, params, opt) if use_fsdp else ({n: p.detach() for n, p in params}, opt.m, opt.v)
            if rank == 0:
                path = save_checkpoint(run["out"], run["extras"], state, weights, m, v, o["keep_last"], run["weights_file"])
                emit("checkpoint", step=step, path=path)
            if distributed:
                dist.barrier()
        if stopping:
            break
    if eval_rows and last_eval is None:
        last_eval = evaluate(model, eval_rows, o["micro_batch_size"], pad, device, loss_sum)
    # every machine's first process reports the end (its mixtune waits for it); rank 0 also wrote the files
    if rank == 0 or int(os.environ.get("LOCAL_RANK", "0")) == 0:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        emit("done", rank=rank, steps=state["step"], tokens=state["tokensSeen"], target_tokens=state["targetTokensSeen"],
             seconds=state["elapsedSeconds"], final_loss=loss, eval_loss=last_eval, peak_rss_mb=round(peak),
             interrupted=Stop.requested and state["step"] < total,
             peak_cuda_mb=round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None)
    if distributed:
        dist.destroy_process_group()


@torch.no_grad()
def clip_grad_norm(params, max_norm, reduce=None):
    """Global L2 norm (in fp64, as the native engine sums it); scales the gradients down above max_norm.
    reduce: sums the squares over the ranks when each holds only its shards of the gradients (FSDP)."""
    squares = sum(float((p.grad.double() ** 2).sum()) for p in params if p.grad is not None)
    total = math.sqrt(reduce(squares) if reduce else squares)
    if max_norm > 0 and total > max_norm:
        f = max_norm / (total + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(f)
    return total


@torch.no_grad()
def evaluate(model, rows, micro_batch_size, pad, device, loss_sum):
    model.train(False)  # no LoRA dropout
    total, count = 0.0, 0
    for i in range(0, len(rows), micro_batch_size):
        mb = micro_batch(rows[i:i + micro_batch_size], pad, device)
        total += float(loss_sum(mb))
        count += mb[4]
    model.train(True)
    return total / count if count else None


def save_checkpoint(out, extras, state, weights, m, v, keep_last, weights_file):
    """checkpoint-N/ in the native engine's format, written under a temporary name and renamed.
    weights, m, v: the full tensors by name (AdamW's moments m, v)."""
    final = os.path.join(out, f"checkpoint-{state['step']}")
    tmp = os.path.join(out, f".checkpoint-{state['step']}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write_safetensors(os.path.join(tmp, weights_file), {n: t.float() for n, t in weights.items()}, {"format": "pt", "step": str(state["step"])})
    moments = {}
    for n in weights:
        moments[f"{n}.exp_avg"] = m[n].float()
        moments[f"{n}.exp_avg_sq"] = v[n].float()
    write_safetensors(os.path.join(tmp, "optimizer.safetensors"), moments)
    for name in os.listdir(extras):
        shutil.copy(os.path.join(extras, name), os.path.join(tmp, name))
    with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
        json.dump(state, f)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    done = sorted((int(d.split("-")[1]), d) for d in os.listdir(out) if d.startswith("checkpoint-") and d.split("-")[1].isdigit()
                  and os.path.exists(os.path.join(out, d, "trainer_state.json")))
    for _, d in done[:max(0, len(done) - keep_last)]:
        shutil.rmtree(os.path.join(out, d), ignore_errors=True)
    return final


def load_checkpoint(path, params, opt, o, device, weights_file, sharded=None):
    """A checkpoint of either engine: weights, AdamW moments and step count, and the RNG if it has ours.
    sharded: the FSDP-wrapped model, whose parameters take only their shards of the full tensors."""
    state = json.load(open(os.path.join(path, "trainer_state.json")))
    if state.get("dataFingerprint") != o["data_fingerprint"]:
        raise SystemExit(f"mixtune torch engine: {path} was trained on different prepared data; resume with the same config and data")
    w = read_safetensors(os.path.join(path, weights_file))
    m = read_safetensors(os.path.join(path, "optimizer.safetensors"))
    for n, _ in params:
        if n not in w:
            raise SystemExit(f"mixtune torch engine: {path}/{weights_file} has no tensor {n}")
    if sharded is not None:
        names = [n for n, _ in params]
        fsdp.load_checkpoint(sharded, params, opt, {n: w[n] for n in names},
                             {n: m[f"{n}.exp_avg"] for n in names}, {n: m[f"{n}.exp_avg_sq"] for n in names})
    else:
        with torch.no_grad():
            for n, p in params:
                p.copy_(w[n].to(device))
                opt.m[n].copy_(m[f"{n}.exp_avg"].to(device))
                opt.v[n].copy_(m[f"{n}.exp_avg_sq"].to(device))
    opt.steps = state["optimizerSteps"]
    rng = (state.get("extra") or {}).get("torch_rng")
    if rng is not None:
        torch.set_rng_state(torch.tensor(rng, dtype=torch.uint8))
    return state


if __name__ == "__main__":
    main(sys.argv[1])
