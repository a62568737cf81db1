"""Virtual CUDA: the CUDA code paths on a machine without a GPU.

Real CPU tensors under a `TorchFunctionMode` that tags each tensor with a virtual device:
factories with device='cuda' run on the CPU and are tagged cuda:N; .to/.cuda/.cpu copy and
re-tag; `.device` and `.is_cuda` report the tag; every other op's results take its inputs'
device. Where a GPU would raise, it raises PyTorch's own error: tensors of two devices in one
op (0-dim CPU tensors excepted, as on a GPU), a CPU tensor indexed by CUDA indices, a
generator of another device, `.numpy()` of a CUDA tensor. `torch.cuda`'s queries are stubbed
(8 devices, set_device remembered), autocast('cuda') is CPU autocast, pinning is a no-op, and
every host sync (.item(), .tolist(), bool(), float(), a copy to the CPU, synchronize) is
counted with where it happened. Fake and meta tensors do not survive a backward; these do,
because they are real.

    with virtual_cuda(monkeypatch) as vc:
        run(fast_cfg("device=cuda"))
    assert vc.syncs ...
"""
from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

CPU = torch.device("cpu")
DEVICES = 8
TAG = "_virtual_device"
FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.rand, torch.randn,
             torch.randint, torch.randperm, torch.arange, torch.linspace, torch.eye,
             torch.tensor, torch.as_tensor, torch.zeros_like, torch.ones_like, torch.empty_like,
             torch.full_like, torch.rand_like, torch.randn_like, torch.randint_like,
             torch.Tensor.new_zeros, torch.Tensor.new_ones, torch.Tensor.new_empty,
             torch.Tensor.new_full, torch.Tensor.new_tensor, torch.empty_strided}
CROSS_DEVICE = {torch.Tensor.copy_, torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu,
                torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.Tensor.index_put_,
                torch.Tensor.__deepcopy__, torch.Tensor.__reduce_ex__,
                torch.Tensor.__setstate__,
                torch.Tensor.share_memory_, torch._has_compatible_shallow_copy_type}
SYNCS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__float__,
         torch.Tensor.__int__, torch.Tensor.__index__}


PROJECT = str(__import__("pathlib").Path(__file__).resolve().parents[1]) + "/"


@dataclass(frozen=True)
class Sync:
    what: str
    frames: tuple[str, ...]  # the project's frames, innermost first

    def within(self, path: str) -> bool:
        return any(f.startswith(path) for f in self.frames)

    def __str__(self) -> str:
        return f"{self.what} at {self.frames[0] if self.frames else '?'}"


def _accessor(func, descriptor, kind: str) -> bool:
    """Whether `func` is a property's getter or setter (a new method-wrapper at each access)."""
    return getattr(func, "__self__", None) is descriptor and func.__name__ == kind


def device_of(t: torch.Tensor) -> torch.device:
    return t.__dict__.get(TAG, CPU) if isinstance(t, torch.Tensor) else CPU


def _tag(out, device: torch.device):
    for t in tree_flatten(out)[0]:
        if isinstance(t, torch.Tensor):
            t.__dict__[TAG] = device
    return out


class VirtualCuda(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.syncs: list[Sync] = []

    def cuda(self, index: int | None = None) -> torch.device:
        return torch.device("cuda", self.current if index is None else index)

    def target(self, device) -> torch.device | None:
        if device is None:
            return None
        d = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
        return self.cuda(d.index) if d.type == "cuda" else d

    def sync(self, what: str) -> None:
        """Count a host sync, with the project's frames it happened in (innermost first)."""
        frames = [f"{f.filename.split(PROJECT)[-1]}:{f.lineno}"
                  for f in reversed(traceback.extract_stack()[:-1])
                  if PROJECT in f.filename and "/.venv/" not in f.filename
                  and not f.filename.endswith("/tests/virtual_cuda.py")]
        self.syncs.append(Sync(what, tuple(frames)))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if _accessor(func, torch.Tensor.device, "__get__"):
            return device_of(args[0])
        if _accessor(func, torch.Tensor.is_cuda, "__get__"):
            return device_of(args[0]).type == "cuda"
        if func is torch.Tensor.get_device:
            d = device_of(args[0])
            return d.index if d.type == "cuda" else -1
        if _accessor(func, torch.Tensor.grad, "__get__") or _accessor(func, torch.Tensor.data,
                                                                        "__get__"):
            return _tag(func(*args, **kwargs), device_of(args[0]))
        if _accessor(func, torch.Tensor.data, "__set__"):
            func(*args, **kwargs)
            args[0].__dict__[TAG] = device_of(args[1])
            return None
        if func is torch.Tensor.numpy and device_of(args[0]).type == "cuda":
            raise TypeError(f"can't convert {device_of(args[0])} device type tensor to numpy. "
                            "Use Tensor.cpu() to copy the tensor to host memory first.")
        if func in (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu):
            return self._move(func, args, kwargs)
        if func in FACTORIES:
            return self._factory(func, args, kwargs)
        if func in SYNCS and device_of(args[0]).type == "cuda":
            self.sync(name)
        devices = self._check(func, args, kwargs)
        out = func(*args, **kwargs)
        if func is torch.Tensor.__getitem__ or name.endswith("_") and args and \
                isinstance(args[0], torch.Tensor):
            return _tag(out, device_of(args[0])) if isinstance(out, torch.Tensor) else out
        return _tag(out, devices[0]) if devices else out

    def _check(self, func, args, kwargs) -> list[torch.device]:
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        found = list(dict.fromkeys(device_of(t) for t in tensors if t.dim() > 0 or
                                   device_of(t).type == "cuda"))
        self._check_generator(kwargs.get("generator"), found[0] if found else CPU)
        if len(found) > 1 and func not in CROSS_DEVICE:
            raise RuntimeError("Expected all tensors to be on the same device, but found at "
                               f"least two devices, {found[0]} and {found[1]}!")
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.Tensor.index_put_):
            index = [t for t in tree_flatten(args[1])[0] if isinstance(t, torch.Tensor)]
            if device_of(args[0]).type == "cpu" and any(device_of(t).type == "cuda"
                                                        for t in index):
                raise RuntimeError("indices should be either on cpu or on the same device as "
                                   "the indexed tensor (cpu)")
        cuda = [d for d in found if d.type == "cuda"]
        return cuda[:1] or found[:1]

    def _check_generator(self, g, device: torch.device) -> None:
        if g is None:
            return
        gen = getattr(g, "virtual_device", CPU)
        if gen.type != device.type:
            raise RuntimeError(f"Expected a '{device.type}' device type for generator but "
                               f"found '{gen.type}'")

    def _factory(self, func, args, kwargs):
        like = args[0] if args and isinstance(args[0], torch.Tensor) else None
        device = self.target(kwargs.pop("device", None))
        if device is None:
            device = device_of(like) if like is not None else CPU
        self._check_generator(kwargs.get("generator"), device)
        if device.type == "cuda":
            kwargs["device"] = "cpu"
            kwargs.pop("pin_memory", None)
        return _tag(func(*args, **kwargs), device)

    def _move(self, func, args, kwargs):
        t, rest = args[0], args[1:]
        if func is torch.Tensor.cuda:
            device, dtype, fmt = self.cuda(rest[0] if rest else kwargs.get("device")), None, None
        elif func is torch.Tensor.cpu:
            device, dtype, fmt = CPU, None, None
        else:
            rest = [device_of(a) if isinstance(a, torch.Tensor) and i == 0 and len(rest) == 1
                    else a for i, a in enumerate(rest)]
            device, dtype, _, fmt = torch._C._nn._parse_to(*rest, **kwargs)
            if rest and isinstance(args[1], torch.Tensor):  # .to(other): its device and dtype
                dtype = args[1].dtype
            device = self.target(device)
        source = device_of(t)
        device = device or source
        if source.type == "cuda" and device.type == "cpu":
            self.sync("a copy to the CPU")
        changes = {k: v for k, v in (("dtype", dtype), ("memory_format", fmt)) if v is not None}
        out = torch.Tensor.to(t, **changes) if changes else t
        if device != source and out is t:
            out = t.clone()
        return _tag(out, device)


class _Autocast(torch.autocast):
    """autocast('cuda') -> the CPU's bf16 autocast."""

    def __init__(self, device_type: str, *args, **kwargs) -> None:
        super().__init__("cpu" if device_type == "cuda" else device_type, *args, **kwargs)


@contextlib.contextmanager
def virtual_cuda(monkeypatch) -> Iterator[VirtualCuda]:
    mode = VirtualCuda()

    class Generator(torch.Generator):
        """A CPU generator that remembers the device it was made for."""

        def __new__(cls, device="cpu"):
            return super().__new__(cls)  # a real CPU generator, whatever it is asked for

        def __init__(self, device="cpu") -> None:
            super().__init__()
            self.virtual_device = mode.target(device)

        @property
        def device(self) -> torch.device:
            return self.virtual_device

    def set_device(device) -> None:
        mode.current = mode.target(device).index

    stubs = {"is_available": lambda: True, "device_count": lambda: DEVICES,
             "current_device": lambda: mode.current, "set_device": set_device,
             "get_device_name": lambda device=None: "Virtual H100 80GB HBM3",
             "synchronize": lambda device=None: mode.sync("torch.cuda.synchronize"),
             "mem_get_info": lambda device=None: (70 * 2**30, 80 * 2**30),
             "memory_allocated": lambda device=None: 0,
             "max_memory_allocated": lambda device=None: 2**30,
             "reset_peak_memory_stats": lambda device=None: None,
             "get_rng_state": lambda device="cuda": torch.get_rng_state(),
             "set_rng_state": lambda state, device="cuda": None,
             "manual_seed": lambda seed: None, "manual_seed_all": lambda seed: None,
             "is_bf16_supported": lambda *a, **k: True, "empty_cache": lambda: None,
             "get_device_capability": lambda device=None: (9, 0)}
    for name, stub in stubs.items():
        monkeypatch.setattr(torch.cuda, name, stub)
    monkeypatch.setattr(torch.cuda.random, "manual_seed", lambda seed: None)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    accelerator = {"is_available": lambda: True, "device_count": lambda: DEVICES,
                   "current_accelerator": lambda *a, **k: torch.device("cuda"),
                   "current_device_index": lambda: mode.current,
                   "set_device_index": lambda index: None}
    for name, stub in accelerator.items():
        monkeypatch.setattr(torch.accelerator, name, stub)
    monkeypatch.setattr(torch, "Generator", Generator)
    monkeypatch.setattr(torch, "autocast", _Autocast)
    parameter = torch.nn.Parameter.__new__

    def new_parameter(cls, data=None, requires_grad=True):
        """A Parameter (made in C, so no op saw it) is on its data's device."""
        p = parameter(cls, data, requires_grad)
        if data is not None:
            p.__dict__[TAG] = device_of(data)
        return p

    monkeypatch.setattr(torch.nn.Parameter, "__new__", staticmethod(new_parameter))
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: self)
    import torch.nn.utils.clip_grad as clip_grad
    import torch.utils._foreach_utils as foreach_utils

    grouped = foreach_utils._group_tensors_by_device_and_dtype

    def by_virtual_device(tensorlistlist, with_indices=False):
        """The groups by the devices the tensors are on here (C++ sees them all on the CPU)."""
        out = grouped(tensorlistlist, with_indices)
        return {(device_of(lists[0][0]) if lists and lists[0] else d, dtype): v
                for (d, dtype), v in ((k, v) for k, v in out.items())
                for lists in [v[0]]}

    for module in (foreach_utils, clip_grad):
        monkeypatch.setattr(module, "_group_tensors_by_device_and_dtype", by_virtual_device)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self, *a, **k: False)
    with mode:
        yield mode
