"""`python -m mixtune_torch.launch ARGS` = `python -m torch.distributed.run ARGS` (torchrun), with one
repair: under Python 3.11, torch 1.13's torchrun fails before starting any worker
("'NoneType' object has no attribute 'get'") because its `Std.from_str("0")` returns None
(IntFlag membership changed in 3.11). When that bug is present, `from_str` is replaced by a
version that parses the same syntax ("0".."3", or "local_rank:value,...").
"""
import re
import sys

from torch.distributed.elastic.multiprocessing import api as _api
from torch.distributed import run as _run


def _from_str(vm):
    if re.fullmatch(r"[0-3]", vm):
        return _api.Std(int(vm))
    if re.fullmatch(r"(\d+:[0-3],)*\d+:[0-3]", vm):
        return {int(k): _api.Std(int(v)) for k, v in (x.split(":") for x in vm.split(","))}
    raise ValueError(f"{vm} does not match: [0-3] or (local_rank:[0-3],)*local_rank:[0-3]")


if _api.Std.from_str("0") is None:
    _api.Std.from_str = staticmethod(_from_str)

if __name__ == "__main__":
    sys.exit(_run.main())
