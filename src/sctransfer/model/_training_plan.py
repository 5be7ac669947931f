"""Step-based training plans shared by the models: cheap per-epoch logging, optional cosine schedule."""

from __future__ import annotations

import inspect
import math

import torch
from scvi.train import TrainingPlan


class StepTrainingPlan(TrainingPlan):
    """scvi-tools' training plan with step-aware losses and cheap logging.

    The module's ``loss`` is told the global step when it takes a ``step`` argument (for
    example scNCL's feature-alignment warm-up). Loss terms are summed on the device during an
    epoch and logged once at its end (``model.history`` gets one row per epoch of
    ``steps_per_epoch`` steps), which keeps Lightning's per-call logging cost out of the
    training step.
    """

    def __init__(self, module, **kwargs):
        super().__init__(module, **kwargs)
        self._sums: dict[str, torch.Tensor] = {}
        self._n_steps = 0
        self._step_aware = "step" in inspect.signature(module.loss).parameters

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


class CosineTrainingPlan(StepTrainingPlan):
    """:class:`StepTrainingPlan` with AdamW and a cosine learning-rate schedule after a linear warm-up.

    Parameters
    ----------
    module
        The module to train.
    lr
        Peak learning rate.
    weight_decay
        AdamW weight decay.
    warmup_steps
        Steps of linear increase from ``lr / warmup_steps`` to ``lr``.
    max_steps
        Length of the schedule: the rate falls along a half cosine to 0 at ``max_steps``.
    """

    def __init__(self, module, *, lr: float, weight_decay: float, warmup_steps: int, max_steps: int):
        super().__init__(module, lr=lr, weight_decay=weight_decay)
        self.warmup_steps = max(warmup_steps, 1)
        self.schedule_steps = max(max_steps, 1)

    def _rate_factor(self, step: int) -> float:
        warmup = min(1.0, (step + 1) / self.warmup_steps)
        return warmup * 0.5 * (1.0 + math.cos(math.pi * min(step, self.schedule_steps) / self.schedule_steps))

    def configure_optimizers(self):
        params = [p for p in self.module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._rate_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
