"""Reading and writing .safetensors without the safetensors package (PyTorch is the only dependency).

Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
then the raw little-endian tensor bytes.
"""
import json
import os
import struct

import torch

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64, "I32": torch.int32, "I64": torch.int64}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        a, b = info["data_offsets"]
        raw = bytearray(body[a:b])
        t = torch.frombuffer(raw, dtype=_DTYPES[info["dtype"]]) if b > a else torch.empty(0, dtype=_DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"])
    return out


def read_model_weights(folder):
    """Every tensor of an HF folder (model.safetensors or the shards of its index)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for f in files:
        out.update(read_safetensors(os.path.join(folder, f)))
    return out


def write_safetensors(path, tensors, metadata=None):
    """Writes atomically (temporary file + rename)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = _tensor_bytes(t)
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _tensor_bytes(t):
    # bfloat16 has no numpy twin: go through int16 views, which every torch >= 1.13 supports
    if t.dtype in (torch.bfloat16, torch.float16):
        return bytes(t.view(torch.int16).numpy().tobytes()) if _has_numpy() else _via_list(t.view(torch.int16), "h")
    return t.numpy().tobytes() if _has_numpy() else _via_list(t, {torch.float32: "f", torch.float64: "d", torch.int32: "i", torch.int64: "q"}[t.dtype])


def _has_numpy():
    try:
        import numpy  # noqa: F401
        return True
    except ImportError:
        return False


def _via_list(t, code):
    import array
    return array.array(code, t.reshape(-1).tolist()).tobytes()
