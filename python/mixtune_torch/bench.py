"""Training-step speed and peak memory of the torch engine on the machine it runs on.

    python3 -m mixtune_torch.bench [vocab=8192 dim=512 layers=8 heads=8 kv_heads=8 ffn=1408 seq=512 batch=4 steps=6 device=auto bf16=1 inputs=1]

A random model of the given shape (mixtune's decoder and layout attention), random tokens, full
forward + backward + AdamW; inputs=N > 1 trains MISO rows (N inputs + an output per row). Prints
one JSON line: tokens_per_s, step_seconds, peak memory (CUDA allocator or process RSS).
"""
import json
import resource
import sys
import time

import torch

from .attention import Layout
from .model import Config, Decoder
from .train import AdamW


def main(argv):
    cfg = dict(vocab=8192, dim=512, layers=8, heads=8, kv_heads=8, ffn=1408, seq=512, batch=4, steps=6, bf16=1, inputs=1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for a in argv:
        k, v = a.split("=", 1)
        if k == "device":
            device = v if v != "auto" else device
        elif k in cfg:
            cfg[k] = int(v)
        else:
            raise SystemExit(f"bench: unknown key {k} (keys: {', '.join(cfg)}, device)")
    c = Config({"vocab_size": cfg["vocab"], "hidden_size": cfg["dim"], "intermediate_size": cfg["ffn"], "num_hidden_layers": cfg["layers"],
                "num_attention_heads": cfg["heads"], "num_key_value_heads": cfg["kv_heads"], "model_type": "llama"})
    torch.manual_seed(0)
    model = Decoder(c).to(device)
    params = list(model.named_parameters())
    opt = AdamW(params, 0.9, 0.999, 1e-8, 0.0)
    B, T, n = cfg["batch"], cfg["seq"], cfg["inputs"]
    tokens = torch.randint(0, c.vocab, (B, T), device=device)
    positions = torch.arange(T, device=device).repeat(B, 1)
    if n > 1:  # n inputs of equal length, then the output
        each = T // (n + 1)
        part = torch.full((B, T), -1, dtype=torch.long)
        for i in range(n):
            part[:, i * each:(i + 1) * each] = i
        layout = Layout(torch.arange(B)[:, None].repeat(1, T).to(device), part.to(device), torch.full((B,), n), torch.zeros(B, dtype=torch.long))
    else:
        layout = Layout.causal(B, T, device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") and cfg["bf16"] else None
    times = []
    for _ in range(cfg["steps"]):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.time()
        for _, p in params:
            p.grad = None
        if amp:
            with amp:
                loss = model.loss_sum(tokens, tokens, positions, layout) / (B * T)
        else:
            loss = model.loss_sum(tokens, tokens, positions, layout) / (B * T)
        loss.backward()
        opt.step(1e-4)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.time() - t0)
    best = min(times[1:] or times)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "bench": "torch_engine_train", "device": device, "torch": torch.__version__, **cfg,
        "params": sum(p.numel() for _, p in params), "step_seconds": round(best, 4), "tokens_per_s": round(B * T / best, 1),
        "peak_memory_mb": round(peak), "memory": "cuda allocator" if device.startswith("cuda") else "process RSS",
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
