"""CUDA graphs for the training step's forward and backward: one replay instead of thousands of launches.

Why: a CTR-GCN training step dispatches ~11,600 ATen calls, nested ones included (``benchmarks/
train_step_rate.py --count-ops``). On the lent H200 a step cost ~90 ms at batch 16, 64 and 128 alike: the GPU
waited on Python launching kernels, so NW-UCLA's published 65-epoch schedule could not fit a 15-minute
lease. ``torch.cuda.make_graphed_callables`` records the forward and backward kernels once and replays
them, so a step costs what its kernels cost.

What a graph needs, and what this wrapper does when it is not there (it computes the same function either
way; it only falls back to the module's eager forward):

* the same input shape every step - the training loader drops its last partial batch; any other shape
  (or dtype) runs eagerly;
* training mode - validation and test call the module in eval mode, which always runs eagerly;
* one process - under DDP (world size > 1) graphs are not used: untested here;
* a CUDA input - on a CPU the wrapper says so once and is a plain call;
* a capture that works - any error while capturing is reported once as a warning and the run goes on
  eagerly, so a lent GPU's time is never lost to it.

The capture runs ``make_graphed_callables``' three warm-up steps on the first batch (BatchNorm running
statistics see that batch four extra times) under the caller's autocast dtype with autocast's cache off,
as the API requires; the replayed kernels keep that precision. The module's own ``forward`` is restored
right after capture, so checkpoints, ``deepcopy`` and ONNX export see a plain module.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import torch
from torch import nn


def _autocast_dtype() -> Optional[torch.dtype]:
    """The CUDA autocast dtype in force, or None when autocast is off (torch >= 2.4 and older APIs)."""
    try:
        on = torch.is_autocast_enabled("cuda")
    except TypeError:
        on = torch.is_autocast_enabled()
    if not on:
        return None
    try:
        return torch.get_autocast_dtype("cuda")
    except (AttributeError, TypeError):
        return torch.get_autocast_gpu_dtype()


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


class GraphedTrainForward:
    """``wrapper(x)`` == ``model(x)``, replayed from a CUDA graph in training mode once captured.

    ``make`` and ``require_cuda`` exist for tests on machines without a GPU (the capture API is injected)."""

    def __init__(self, model: nn.Module, make: Optional[Callable] = None, require_cuda: bool = True):
        self.model = model
        self.make = make
        self.require_cuda = require_cuda
        self.graphed: Optional[Callable] = None
        self.shape: Optional[tuple] = None
        self.dtype: Optional[torch.dtype] = None
        self.disabled: Optional[str] = None  # why graphs are off for this run, once decided
        self.replays = 0  # steps served by the graph (benchmarks and tests read it)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.model.training or self.disabled is not None:
            return self.model(x)
        if self.require_cuda and not x.is_cuda:
            self._disable(f"CUDA graphs need a CUDA device, the training batch is on {x.device.type}; training eagerly")
            return self.model(x)
        if self.graphed is None:
            self._capture(x)
            if self.graphed is None:
                return self.model(x)
        if tuple(x.shape) != self.shape or x.dtype != self.dtype:
            return self.model(x)  # e.g. a last partial batch when the loader keeps it
        self.replays += 1
        return self.graphed(x)

    def _capture(self, x: torch.Tensor) -> None:
        if _distributed():
            self._disable("CUDA graphs are not used under DDP (world size > 1); training eagerly")
            return
        make = self.make or torch.cuda.make_graphed_callables
        sample = x.detach().clone()  # becomes the graph's static input: it must not alias a loader tensor
        dtype = _autocast_dtype()
        try:
            with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None, cache_enabled=False):
                make(self.model, (sample,))
            graphed = self.model.__dict__.get("forward")
            if graphed is None:
                raise RuntimeError("the capture did not return a graphed forward")
        except Exception as e:  # noqa: BLE001 - any capture failure: report it and train eagerly
            first_line = (str(e).splitlines() or [""])[0]
            self._disable(f"CUDA graph capture failed ({type(e).__name__}: {first_line}); training eagerly")
            return
        finally:
            self.model.__dict__.pop("forward", None)  # the module's own forward again, graphs or not
        self.graphed, self.shape, self.dtype = graphed, tuple(x.shape), x.dtype

    def _disable(self, why: str) -> None:
        self.disabled = why
        warnings.warn(why, RuntimeWarning, stacklevel=3)

    def __deepcopy__(self, memo: dict) -> "GraphedTrainForward":
        """A copy starts uncaptured (graphs and their memory pool cannot be copied)."""
        import copy

        return GraphedTrainForward(copy.deepcopy(self.model, memo), self.make, self.require_cuda)

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "make": None, "require_cuda": self.require_cuda}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"], state["make"], state["require_cuda"])
