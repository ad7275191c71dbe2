"""Test harness: loss and gradients of one micro-batch, for comparison with the native engine.

    python3 -m mixtune_torch.check_model DIR

DIR/model is an HF folder; DIR/batch.json holds {batch, seq, tokens, targets, positions} and,
for layout rows, {group, part, n_inputs, weighting (codes)}. Writes DIR/result.json {loss_sum}
and DIR/grads.safetensors (the gradient of loss_sum for every parameter, HF names).
"""
import json
import os
import sys

import torch

from .model import layout_of, load_decoder
from .safetensors_io import write_safetensors


def main(d):
    torch.manual_seed(0)
    m = load_decoder(os.path.join(d, "model"), torch.float64)
    b = json.load(open(os.path.join(d, "batch.json")))
    B, T = b["batch"], b["seq"]
    t = lambda k: torch.tensor(b[k], dtype=torch.long).reshape(B, T)  # noqa: E731
    batch = {"tokens": t("tokens")}
    if "group" in b:
        batch.update(group=t("group"), part=t("part"), n_inputs=torch.tensor(b["n_inputs"]), weighting=torch.tensor(b["weighting"]))
    loss = m.loss_sum(batch["tokens"], t("targets"), t("positions"), layout_of(batch, "cpu"))
    loss.backward()
    grads = {name: p.grad.float() for name, p in m.named_parameters() if p.grad is not None}
    write_safetensors(os.path.join(d, "grads.safetensors"), grads)
    json.dump({"loss_sum": loss.item()}, open(os.path.join(d, "result.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
