"""mixtune's PyTorch engine: trains the rows `mixtune prepare --out` writes (MoI / MISO layouts)
on PyTorch, on CPUs or GPUs, in one process or under torchrun (DDP).

Python >= 3.9 and PyTorch >= 1.13; no other dependency.
"""
__version__ = "0.1.0"
