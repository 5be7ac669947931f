"""The training plan of the step-based models: optimiser and schedule from ``plan_kwargs``, cheap per-epoch logging."""

from __future__ import annotations

import inspect
import math
from typing import Literal

import torch
from scvi.train import TrainingPlan

OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["constant", "cosine"]
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
#: Learning rate of each optimiser when ``lr`` is not given.
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
SCHEDULES = ("constant", "cosine")


class StepTrainingPlan(TrainingPlan):
    """scvi-tools' training plan with the optimiser and schedule of ``train(plan_kwargs=...)``.

    The module's ``loss`` is told the global step when it takes a ``step`` argument (for example
    scNCL's feature-alignment warm-up). Loss terms are summed on the device during an epoch and
    logged once at its end (``model.history`` gets one row per epoch of ``steps_per_epoch``
    steps), which keeps Lightning's per-call logging cost out of the training step. An epoch whose
    mean loss is not finite (NaN or infinite) stops the training and is recorded in
    :attr:`diverged_at`.

    Parameters
    ----------
    module
        The module to train.
    optimizer
        ``"sgd"`` (with ``momentum``), ``"adam"`` or ``"adamw"`` (case-insensitive: scvi-tools'
        ``"Adam"`` / ``"AdamW"`` work too).
    lr
        (Peak) learning rate; ``None``: 0.01 for SGD, 1e-3 for Adam and AdamW.
    weight_decay
        L2 weight decay (decoupled for AdamW).
    momentum
        SGD momentum (ignored by the other optimisers).
    warmup_steps
        Steps of linear learning-rate increase from ``lr / warmup_steps`` to ``lr``; 0 for none.
    schedule
        ``"constant"``, or ``"cosine"``: after the warm-up the rate falls along a half cosine to 0
        at ``max_steps``.
    max_steps
        Length of the training, in steps (the end of the cosine schedule).

    Raises
    ------
    ValueError
        For an unknown optimiser or schedule, a negative or non-finite learning rate, weight decay
        or momentum, or a negative ``warmup_steps``.
    """

    def __init__(
        self,
        module,
        *,
        optimizer: OptimizerName = "adam",
        lr: float | None = None,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        warmup_steps: int = 0,
        schedule: ScheduleName = "constant",
        max_steps: int,
    ):
        name = str(optimizer).lower()
        if name not in OPTIMIZERS:
            raise ValueError(f"plan_kwargs['optimizer'] must be one of {list(OPTIMIZERS)}, got {optimizer!r}.")
        if schedule not in SCHEDULES:
            raise ValueError(f"plan_kwargs['schedule'] must be one of {list(SCHEDULES)}, got {schedule!r}.")
        lr = DEFAULT_LR[name] if lr is None else lr
        for key, value in (("lr", lr), ("weight_decay", weight_decay), ("momentum", momentum)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"plan_kwargs[{key!r}] must be a finite number >= 0, got {value!r}.")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"plan_kwargs['warmup_steps'] must be an integer >= 0, got {warmup_steps!r}.")
        super().__init__(module, lr=float(lr), weight_decay=float(weight_decay))
        self.optimizer_name = name
        self.momentum = float(momentum)
        self.warmup_steps = warmup_steps
        self.schedule = schedule
        self.schedule_steps = max(max_steps, 1)
        self._sums: dict[str, torch.Tensor] = {}
        self._n_steps = 0
        self._step_aware = "step" in inspect.signature(module.loss).parameters
        #: ``(epoch, step, loss)`` of the first epoch whose mean loss was not finite (training stopped there), or None.
        self.diverged_at: tuple[int, int, float] | None = None

    @property
    def settings(self) -> dict[str, str | float | int]:
        """The optimiser and schedule in use, as plain values (recorded in ``model.train_params_``)."""
        out = {"optimizer": self.optimizer_name, "lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer_name == "sgd":
            out["momentum"] = self.momentum
        return out | {"warmup_steps": self.warmup_steps, "schedule": self.schedule}

    def _rate_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at ``step``: linear warm-up, then constant or half-cosine decay."""
        factor = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        if self.schedule == "cosine":
            factor *= 0.5 * (1.0 + math.cos(math.pi * min(step, self.schedule_steps) / self.schedule_steps))
        return factor

    def configure_optimizers(self):
        params = [p for p in self.module.parameters() if p.requires_grad]
        options = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer_name == "sgd":
            options["momentum"] = self.momentum
        optimizer = OPTIMIZERS[self.optimizer_name](params, **options)
        if self.schedule == "constant" and self.warmup_steps == 0:
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._rate_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def training_step(self, batch, batch_idx):
        loss_kwargs = {"step": int(self.global_step)} if self._step_aware else {}
        _, _, output = self.forward(batch, loss_kwargs=loss_kwargs)
        terms = {"train_loss": output.loss, **output.extra_metrics}
        for name, value in terms.items():
            value = value.detach()
            self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._n_steps += 1
        return output.loss

    def on_train_epoch_end(self):
        loss = self._sums.get("train_loss")
        if loss is not None and self.diverged_at is None and not bool(torch.isfinite(loss)):
            self.diverged_at = (int(self.current_epoch), int(self.global_step), float(loss))
            self.trainer.should_stop = True  # the weights are lost: training on wastes time
        for name, total in self._sums.items():
            key = name if name == "train_loss" else f"{name}_train"
            self.log(
                key,
                total / max(self._n_steps, 1),
                on_step=False,
                on_epoch=True,
                prog_bar=name == "train_loss",
                sync_dist=True,  # averaged over the processes under DDP; a no-op otherwise
            )
        self._sums, self._n_steps = {}, 0
