"""A thin LightningModule around the plain recognizer: loss, optimiser, schedule, metrics."""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from actionpose.errors import ActionposeError
from actionpose.models import build_model
from actionpose.training.cuda_graphs import GraphedTrainForward


def check_logits(logits: torch.Tensor, x: torch.Tensor, num_classes: int, name: str) -> torch.Tensor:
    """``logits`` as a model must return them for ``x`` ``[N, M, T, V, C]``: ``[N, num_classes]``.

    Why: a new architecture that kept the person axis (``[N, M, K]``) failed in cross-entropy with a torch
    traceback ("Expected target size [8, 3], got [8]"), and validation's softmax would have reshaped it into
    M x K "classes" without a word. Only shapes are compared, so nothing is read back from a GPU."""
    want = (x.shape[0], num_classes)
    if tuple(logits.shape) != want:
        raise ActionposeError(f"model {name}: forward returned shape {list(logits.shape)} for input "
                              f"{list(x.shape)} [N, M, T, V, C]; a model must return logits [N, K] = {list(want)}")
    return logits


def clip_mean_probs(model: nn.Module, x: torch.Tensor, num_classes: int | None = None, name: str = "") -> torch.Tensor:
    """``x`` ``[N, nc, M, L, V, C]`` -> probabilities ``[N, K]`` averaged over clips (``num_classes``: checked)."""
    n, nc = x.shape[:2]
    flat = x.reshape((n * nc,) + x.shape[2:])
    logits = model(flat)
    if num_classes is not None:
        check_logits(logits, flat, num_classes, name)
    return logits.softmax(-1).reshape(n, nc, -1).mean(1)


def selection_score(top1: float, nll: float) -> float:
    """What picks the checkpoint: validation top-1 first, lower validation log-loss on ties.

    A small validation slice often saturates (every clip right from mid-training on); on plain top-1 the
    checkpoint callback then keeps the *first* epoch that reached it, mid-schedule at a high learning rate
    (a UTD-MHAD joint model was picked at epoch 16 of 30 that way). The loss term is below 1e-5, less than
    one clip of accuracy on any slice under 100,000 clips, so it only ever breaks ties."""
    return top1 - 1e-6 * min(nll, 10.0)


class ActionModule(pl.LightningModule):
    """``meta`` holds what export needs: layout, classes, coords, in_channels and the preprocessing."""

    defer_nonfinite_check = False  # True: a NaN loss stops at the epoch's end on a CPU too, as on a GPU (tests)

    def __init__(self, config: dict[str, Any], meta: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters({"config": config, "meta": meta})
        self.config, self.meta = config, meta
        m = dict(config["model"])
        self.model = build_model(m.pop("name"), meta["layout"], len(meta["classes"]), meta["in_channels"], **m)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=float(config["optim"]["label_smoothing"]))
        self._val: list[tuple[np.ndarray, np.ndarray]] = []
        # trainer.cuda_graphs: the training forward/backward replayed from a CUDA graph (GPU only; eval is eager)
        self.graphed = GraphedTrainForward(self.model) if (config.get("trainer") or {}).get("cuda_graphs") else None
        self._first_nonfinite: torch.Tensor | None = None  # [epoch, step, loss] of the first NaN/inf loss (GPU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _note_nonfinite(self, loss: torch.Tensor) -> None:
        """Stop on a NaN/inf loss - at once on a CPU, at the next checkpoint boundary on a GPU.

        Why deferred on a GPU: reading a CUDA tensor's value on the host waits for the step's kernels, so the
        host could not queue step n+1 while the GPU runs step n, and every step cost its Python time plus its
        GPU time (the lent H200 sat 31-50 % busy at 7.5 s per NW-UCLA epoch). The first bad step and its loss
        are kept on the device instead and read before anything could save the state (validation, the
        epoch's end, the end of fit): the run stops with the same message and no NaN checkpoint; it only
        trains on to the end of that epoch first."""
        if loss.device.type == "cpu" and not self.defer_nonfinite_check:
            if not torch.isfinite(loss):
                raise ActionposeError(f"training stopped: loss is {loss.item()} at epoch {self.current_epoch} step "
                                      f"{self.global_step}; no checkpoint of this state is kept (try a lower optim.lr)")
            return
        loss = loss.detach().float()
        here = torch.stack([torch.full_like(loss, self.current_epoch), torch.full_like(loss, self.global_step), loss])
        first = self._first_nonfinite if self._first_nonfinite is not None else torch.full_like(here, -1.0)
        # no host read: torch.where keeps the first bad step (first[0] < 0 until one is recorded)
        self._first_nonfinite = torch.where(~torch.isfinite(loss) & (first[0] < 0), here, first)

    def raise_if_nonfinite(self) -> None:
        """The deferred check of ``_note_nonfinite`` (one host read)."""
        first = self._first_nonfinite
        if first is not None and float(first[0]) >= 0:
            epoch, step, value = first.tolist()
            raise ActionposeError(f"training stopped: loss is {value} at epoch {int(epoch)} step {int(step)}; no "
                                  "checkpoint of this state is kept (try a lower optim.lr)")

    def on_validation_start(self) -> None:  # before validation's checkpoint can save the state
        self.raise_if_nonfinite()

    def on_train_epoch_end(self) -> None:  # Lightning calls this before the checkpoint callbacks' own
        self.raise_if_nonfinite()

    def on_fit_end(self) -> None:
        self.raise_if_nonfinite()

    def training_step(self, batch, batch_idx):
        x, y = batch
        n, nc = x.shape[:2]
        x = x.reshape((n * nc,) + x.shape[2:])
        logits = self.graphed(x) if self.graphed is not None else self.model(x)
        check_logits(logits, x, len(self.meta["classes"]), self.config["model"]["name"])
        loss = self.loss_fn(logits, y.repeat_interleave(nc))
        self._note_nonfinite(loss)
        acc = (logits.argmax(-1) == y.repeat_interleave(nc)).float().mean()
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        self.log("train_top1", acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_train_start(self) -> None:
        """The rate of the first step from the schedule, not from the optimizer state: a run resumed with a changed
        schedule (``optim.epochs`` 3 -> 5) took its first step at the checkpoint's last rate (0.0, the end of the
        old cosine) - the scheduler only sets a new rate after a step."""
        for config in self.trainer.lr_scheduler_configs:
            s = config.scheduler
            if isinstance(s, torch.optim.lr_scheduler.LambdaLR):
                for group, base, factor in zip(s.optimizer.param_groups, s.base_lrs, s.lr_lambdas):
                    group["lr"] = base * factor(s.last_epoch)

    def on_train_epoch_start(self) -> None:
        # the epoch's first rate, logged once: a Python float logged every step became a host-to-GPU copy that
        # waited for the GPU each step (the same stall as reading a value back, _note_nonfinite)
        self.log("lr", float(self.optimizers().param_groups[0]["lr"]), on_step=False, on_epoch=True)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        probs = clip_mean_probs(self.model, x, len(self.meta["classes"]), self.config["model"]["name"])
        self._val.append((probs.detach().float().cpu().numpy(), y.cpu().numpy()))  # float: bf16 has no numpy type

    def on_validation_epoch_end(self):
        if not self._val:
            return
        probs = np.concatenate([p for p, _ in self._val])
        labels = np.concatenate([y for _, y in self._val])
        self._val.clear()
        top1 = float((probs.argmax(1) == labels).mean())
        nll = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-8, None)).mean())
        self.log("val_loss", nll)
        self.log("val_top1", top1, prog_bar=True,
                 sync_dist=True)  # DDP: mean over ranks, so every rank selects the same checkpoint
        self.log("val_select", selection_score(top1, nll), sync_dist=True)

    def configure_optimizers(self):
        o = self.config["optim"]
        opt = torch.optim.SGD(self.parameters(), lr=o["lr"], momentum=o["momentum"], nesterov=bool(o["nesterov"]),
                              weight_decay=o["weight_decay"])
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, int(self.trainer.max_epochs or o["epochs"]))
        minutes = (self.config.get("trainer") or {}).get("max_time")
        fracs = [float(m) / epochs for m in o["milestones"]] if o["schedule"] == "step" else None
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(
            total, float(o["warmup_epochs"]) / epochs, float(o["min_lr"]) / float(o["lr"]) if o["lr"] else 0.0,
            budget_s=0.95 * 60 * float(minutes) if minutes else None, milestones=fracs, gamma=float(o["gamma"])))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def lr_factor(total: int, warm_frac: float, floor: float, budget_s: float | None = None, clock=time.monotonic,
              milestones: list[float] | None = None, gamma: float = 0.1):
    """Per-step linear warm-up then cosine (PYSKL CosineAnnealing by_epoch=False), as a LambdaLR factor;
    with ``milestones`` (fractions of the run) a step schedule instead: ``gamma`` to the power of
    the milestones passed (CTR-GCN's MultiStepLR), never below ``floor``.

    With a time box (``trainer.max_time``) the schedule runs on whichever is further along, steps or
    wall-clock: a run the clock stops early has still annealed to ``min_lr`` (at 95 % of the box, so the
    last whole epoch is validated at the low rate) - or passed its milestones - instead of being cut off at
    a high rate mid-schedule. The price is that a time-boxed schedule depends on the machine's speed;
    without a box it does not."""
    start: list[float] = []

    def factor(step: int) -> float:
        p = step / total
        if budget_s:
            now = clock()
            if not start:
                start.append(now)
            p = max(p, (now - start[0]) / budget_s)
        p = min(1.0, p)
        if p < warm_frac:
            return min(1.0, max(p, (step + 1) / total) / warm_frac)
        if milestones is not None:
            return max(floor, gamma ** sum(p >= m for m in milestones))
        t = (p - warm_frac) / max(1e-9, 1.0 - warm_frac)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor
