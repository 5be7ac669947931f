"""What both models share as scvi-tools models: the ``train`` contract of a step-based model, ``save`` and ``load``.

Both models draw their training batches with replacement from per-modality samplers, so they
count training in steps; an "epoch" is ``steps_per_epoch`` steps (one row of ``model.history``),
not a pass over the cells. :class:`StepTrainingMixin` resolves ``max_epochs`` / ``max_steps``,
builds the training plan from ``plan_kwargs`` and the data module from the model's
``_data_splitter_cls``, and runs scvi-tools' :class:`~scvi.train.TrainRunner` quietly, without
writing into the working directory. :class:`SaveLoadMixin` saves models as weights-only files
(:mod:`sctransfer.model._model_files`) and loads them without running anything from them.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import signal
import threading
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import numpy as np
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch import Callback, LightningDataModule
from lightning.pytorch.callbacks import ProgressBar
from mudata import MuData
from scvi.model._utils import parse_device_args
from scvi.train import TrainRunner
from scvi.train._logger import SimpleLogger
from scvi.utils import track

from sctransfer._validation import TRAINER_RESERVED, check_count, check_kwargs, trainer_targets, user_stacklevel

from ._deprecation import renamed_argument
from ._model_files import METADATA_FILE, WEIGHTS_FILE, ModelFileError, read_model_files, write_model_files
from ._training_plan import StepTrainingPlan

#: Training length when neither ``max_epochs`` nor ``max_steps`` is given (20 epochs of 50 steps).
DEFAULT_MAX_STEPS = 1000
#: Steps per epoch (per row of ``model.history``) by default.
DEFAULT_STEPS_PER_EPOCH = 50
#: Cells per forward pass of both models' inference methods (``get_latent_representation``, ...) when
#: ``batch_size=None``.
INFERENCE_BATCH_SIZE = 1024
#: Lightning warnings that say nothing about the user's training (checked as regular expressions).
_LIGHTNING_NOISE = (
    r".*`validation_step` but have no `val_dataloader`",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Your `IterableDataset` has `__len__` defined",
    r"The number of training batches .* is smaller than the logging interval",
    r"early_stopping was automatically disabled due to the use of DDP",
)
#: Keywords that ``train`` took directly before ``plan_kwargs`` (accepted with a DeprecationWarning).
_PLAN_KEYWORDS = ("optimizer", "lr", "weight_decay", "warmup_steps")
#: Trainer keywords (scvi-tools' and Lightning's) that act on a validation loop, which the models do not run.
_VALIDATION_LOOP_KEYWORDS = (
    *("early_stopping", "early_stopping_monitor", "early_stopping_min_delta", "early_stopping_patience"),
    *("early_stopping_warmup_epochs", "early_stopping_mode", "check_val_every_n_epoch", "val_check_interval"),
    *("limit_val_batches", "num_sanity_val_steps"),
)
#: Constructor arguments that hand a model its data, never its settings: not saved (files of earlier versions that
#: hold ``"mdata": null`` load all the same).
_DATA_ARGUMENTS = ("mdata", "adata", "registry")


class TrainingDivergedError(ValueError):
    """Training diverged (the loss or the weights became NaN or infinite), usually from too high a learning rate."""


def resolve_steps(
    max_epochs: int | None, max_steps: int | None, steps_per_epoch: int
) -> tuple[int, Literal["epoch", "step"]]:
    """Training length in steps, and the unit the user counts in.

    Parameters
    ----------
    max_epochs
        Epochs of ``steps_per_epoch`` steps, or None.
    max_steps
        Steps, or None.
    steps_per_epoch
        Steps per epoch.

    Returns
    -------
    ``(n_steps, unit)``: ``max_epochs * steps_per_epoch`` and ``"epoch"`` when ``max_epochs`` is
    given, ``max_steps`` and ``"step"`` when it is given, :data:`DEFAULT_MAX_STEPS` and ``"step"``
    when neither is.

    Raises
    ------
    ValueError
        When both are given, or when a count is not a positive integer (``max_steps=0`` trains
        nothing and is refused).
    """
    check_count("steps_per_epoch", steps_per_epoch)
    if max_epochs is not None and max_steps is not None:
        raise ValueError(
            f"Pass max_epochs or max_steps, not both (got max_epochs={max_epochs!r}, max_steps={max_steps!r}): "
            f"one epoch is steps_per_epoch={steps_per_epoch} steps."
        )
    if max_epochs is not None:
        check_count("max_epochs", max_epochs)
        return int(max_epochs) * steps_per_epoch, "epoch"
    if max_steps is not None:
        check_count("max_steps", max_steps)
        return int(max_steps), "step"
    return DEFAULT_MAX_STEPS, "step"


class StepProgressBar(ProgressBar):
    """Progress bar that counts what ``train`` was asked for: steps, or epochs when given ``max_epochs``.

    It shows the mean training loss of the last finished epoch, and nothing else.
    """

    def __init__(self, total: int, unit: Literal["epoch", "step"]):
        super().__init__()
        self.total, self.unit = total, unit
        self.bar = None
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _show_loss(self, trainer) -> None:
        loss = trainer.callback_metrics.get("train_loss")
        if loss is not None:
            self.bar.set_postfix(train_loss=f"{float(loss):.4g}", refresh=False)

    def on_train_start(self, trainer, pl_module):
        if self.is_enabled:
            self.bar = track(None, total=self.total, description="Training", style="tqdm", unit=self.unit)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.bar is not None and self.unit == "step":
            self.bar.update(1)

    def on_train_epoch_start(self, trainer, pl_module):
        if self.bar is not None:
            self._show_loss(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        if self.bar is not None and self.unit == "epoch":
            self.bar.update(1)

    def on_train_end(self, trainer, pl_module):
        if self.bar is not None:
            self._show_loss(trainer)
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _InterruptRecorder(Callback):
    """Keeps the KeyboardInterrupt that Lightning turns into ``SystemExit(1)``, to give it back to the caller."""

    def __init__(self):
        self.interrupt: KeyboardInterrupt | None = None

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, KeyboardInterrupt):
            self.interrupt = exception


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's information lines and its warnings about set-ups the models choose on purpose.

    The device summary and advertisements ("GPU available", "Tip: ...") are logged at INFO level;
    other warnings and errors still show.
    """
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            for message in _LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class StepTrainingMixin:
    """scvi-tools' ``train`` contract for models trained in steps from their own data module.

    A model using it sets ``_data_splitter_cls``, a :class:`~lightning.pytorch.LightningDataModule`
    built as ``cls(adata_manager, **model._training_inputs(), batch_size=..., steps_per_epoch=...,
    seed=..., **datasplitter_kwargs)`` (its other keyword-only parameters with defaults are the
    options users may pass in ``datasplitter_kwargs``), and implements :meth:`_training_inputs` and
    :meth:`_plan_defaults`; its public ``train`` documents its own knobs and calls :meth:`_train`.
    """

    _training_plan_cls = StepTrainingPlan
    _data_splitter_cls: type[LightningDataModule]

    @classmethod
    def check_train_kwargs(
        cls, train_kwargs: Mapping[str, Any] | None, *, tool_arguments: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Refuse, before any work, keywords that ``train`` and the trainers it passes them on to do not take.

        For tools that take a ``train_kwargs`` dict: valid keys are the parameters of the model's ``train``,
        of scvi-tools' :class:`~scvi.train.TrainRunner` and :class:`~scvi.train.Trainer` and of Lightning's trainer,
        and the former optimiser keywords; the ones sctransfer sets itself are refused, and so are the
        ``tool_arguments`` (the calling tool's own arguments that it passes to ``train``, such as
        ``random_state``: a copy in ``train_kwargs`` would silently win over them).

        Returns
        -------
        A new dict of the keywords (empty for ``None``).

        Raises
        ------
        TypeError
            ``train_kwargs`` is not a dict, or holds a key that cannot be passed (the closest valid one is named).
        ValueError
            ``datasplitter_kwargs`` that the model's data module does not take (train() arguments named as such).
        """
        no_loop = "needs a validation loop, which sctransfer's training (a fixed number of steps) does not run"
        unsupported = dict.fromkeys(_VALIDATION_LOOP_KEYWORDS, no_loop)
        unsupported |= {key: f"is an argument of the tool itself: pass {key}= to it" for key in tool_arguments}
        if "train_size" not in inspect.signature(cls.train).parameters:
            no_split = f"is not an option: {cls.__name__} trains on all its cells (it holds none out)"
            unsupported |= dict.fromkeys(("train_size", "validation_size", "shuffle_set_split"), no_split)
        checked = check_kwargs(
            train_kwargs,
            (cls.train, *trainer_targets()),
            argument="train_kwargs",
            reserved=TRAINER_RESERVED,
            extra=_PLAN_KEYWORDS,
            unsupported=unsupported,
        )
        if isinstance(checked.get("datasplitter_kwargs"), Mapping):
            cls._check_datasplitter_kwargs(dict(checked["datasplitter_kwargs"]))
        return checked

    #: Keywords of the module that the model fills in from the data (never ``model_kwargs``).
    _module_arguments_set: tuple[str, ...] = ()
    #: Keywords the model reads from its ``**module_kwargs`` itself (valid although the module lacks them).
    _model_keywords: tuple[str, ...] = ()

    @classmethod
    def check_model_kwargs(
        cls, model_kwargs: Mapping[str, Any] | None, *, set_by_caller: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Refuse, before any work, keywords that neither the model nor its module (``_module_cls``) take.

        For tools that take a ``model_kwargs`` dict: valid keys are the parameters of the model's constructor
        and of its module's; the data arguments, what the model fills in for its module and the caller's
        ``set_by_caller`` (the tool's own arguments, e.g. ``random_state``) are refused, so that no key is
        silently overridden or overrides an argument.

        Returns
        -------
        A new dict of the keywords (empty for ``None``).

        Raises
        ------
        TypeError
            ``model_kwargs`` is not a dict, or holds a key that cannot be passed (the closest valid one is named).
        """
        return check_kwargs(
            model_kwargs,
            (cls.__init__, cls._module_cls.__init__),
            argument="model_kwargs",
            reserved=("mdata", "registry", *cls._module_arguments_set, *set_by_caller),
            extra=cls._model_keywords,
        )

    @abstractmethod
    def _training_inputs(self) -> dict[str, Any]:
        """What the data module needs from the model (encoder inputs, scaling, neighbours...)."""

    @abstractmethod
    def _plan_defaults(self, n_steps: int) -> dict[str, Any]:
        """The model's default optimiser settings (``plan_kwargs``) for a training of ``n_steps`` steps."""

    def _train(
        self,
        max_epochs: int | None,
        max_steps: int | None,
        *,
        batch_size: int,
        steps_per_epoch: int,
        random_state: int,
        accelerator: str,
        devices: int | list[int] | str,
        plan_kwargs: dict[str, Any] | None,
        datasplitter_kwargs: dict[str, Any] | None,
        trainer_kwargs: dict[str, Any],
        model_params: Mapping[str, Any] | None = None,
        data_inputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Check the arguments, then train; see a model's ``train`` for the parameters.

        ``model_params`` are the model's own training settings, recorded in ``train_params_``; ``data_inputs`` are
        passed to the data module with :meth:`_training_inputs` (settings of this call, such as the split).
        Every argument is checked before any work; a KeyboardInterrupt (Ctrl-C) during training
        reaches the caller as such (Lightning would turn it into ``SystemExit``), with the SIGINT
        handler restored. A training that diverges (an epoch's mean loss, or a weight, not finite)
        stops at the end of that epoch and raises :class:`TrainingDivergedError`, with the weights
        and ``is_trained_`` put back as they were before the call.
        """
        n_steps, unit = resolve_steps(max_epochs, max_steps, steps_per_epoch)
        check_count("batch_size", batch_size)
        self.check_train_kwargs(trainer_kwargs)  # the trainer's keywords: a typo fails here, not in Lightning
        plan_kwargs = self._resolved_plan_kwargs(plan_kwargs, trainer_kwargs, n_steps)
        datasplitter_kwargs = dict(datasplitter_kwargs or {})
        self._check_datasplitter_kwargs(datasplitter_kwargs)
        plan = self._training_plan_cls(self.module, **plan_kwargs, max_steps=n_steps)

        inputs = {**self._training_inputs(), **(data_inputs or {})}
        clash = sorted(set(inputs) & set(datasplitter_kwargs))
        if clash:
            raise ValueError(f"datasplitter_kwargs {clash} are set by {type(self).__name__} itself.")
        data_module = self._data_splitter_cls(
            self.adata_manager,
            **inputs,
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            seed=random_state,
            **datasplitter_kwargs,
        )
        recorder = _InterruptRecorder()
        callbacks = [*trainer_kwargs.pop("callbacks", []), recorder]
        if trainer_kwargs.get("enable_progress_bar", True):
            callbacks.append(StepProgressBar(max_epochs if unit == "epoch" else n_steps, unit))
        trainer_kwargs = {
            "logger": SimpleLogger(),  # history in memory: nothing written into the working directory
            "enable_checkpointing": False,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": min(10, steps_per_epoch),
            **trainer_kwargs,
            "simple_progress_bar": False,
            "callbacks": callbacks,
        }
        in_main_thread = threading.current_thread() is threading.main_thread()
        sigint = signal.getsignal(signal.SIGINT) if in_main_thread else None
        before = {name: value.detach().clone() for name, value in self.module.state_dict().items()}
        was_trained = self.is_trained_
        try:
            with quiet_lightning(), torch.random.fork_rng():
                torch.manual_seed(random_state)
                runner = TrainRunner(
                    self,
                    training_plan=plan,
                    data_splitter=data_module,
                    max_epochs=math.ceil(n_steps / steps_per_epoch),
                    max_steps=n_steps,
                    accelerator=accelerator,
                    devices=devices,
                    **trainer_kwargs,
                )
                runner()
        except SystemExit:
            if recorder.interrupt is not None:
                raise recorder.interrupt from None
            raise
        finally:
            if sigint is not None:  # Lightning ignores SIGINT after an interrupt
                signal.signal(signal.SIGINT, sigint)
        self._check_converged(plan, before, was_trained, steps_per_epoch)
        self.train_params_ = {
            "max_steps": n_steps,
            "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size,
            **plan.settings,
            **dict(model_params or {}),
            "random_state": random_state,
        }

    def _check_converged(
        self, plan: StepTrainingPlan, before: dict[str, torch.Tensor], was_trained: bool, steps_per_epoch: int
    ) -> None:
        """Raise :class:`TrainingDivergedError` when the training diverged, after restoring the weights ``before``."""
        finite = all(bool(torch.isfinite(p).all()) for p in self.module.parameters())
        if plan.diverged_at is None and finite:
            return
        self.module.load_state_dict(before)
        self.is_trained_ = was_trained
        if plan.diverged_at is not None:
            epoch, step, loss = plan.diverged_at
            where = f"the mean loss of epoch {epoch + 1} (steps {epoch * steps_per_epoch + 1}-{step}) is {loss}"
        else:
            where = "some weights are NaN or infinite after the last step"
        raise TrainingDivergedError(
            f"Training diverged: {where}. The model's weights are back as they were before train() and it is "
            f"{'still' if was_trained else 'not'} marked as trained. Lower the learning rate, e.g. "
            f"plan_kwargs={{'lr': {plan.lr / 10:.3g}}} (it was {plan.lr:.3g})."
        )

    def _resolved_plan_kwargs(
        self, plan_kwargs: dict[str, Any] | None, trainer_kwargs: dict[str, Any], n_steps: int
    ) -> dict[str, Any]:
        """The model's defaults updated with ``plan_kwargs`` and the former direct keywords (deprecated)."""
        given = dict(plan_kwargs or {})
        for key in _PLAN_KEYWORDS:
            if key in trainer_kwargs:
                value = trainer_kwargs.pop(key)
                if key in given:
                    raise ValueError(f"{key!r} is given twice, directly and in plan_kwargs; pass it in plan_kwargs.")
                warnings.warn(
                    f"train({key}=...) is deprecated; pass plan_kwargs={{{key!r}: ...}} (scvi-tools' convention).",
                    DeprecationWarning,
                    stacklevel=user_stacklevel(),
                )
                given[key] = value
        if given.get("optimizer") == "auto":  # the model's default optimiser
            del given["optimizer"]
        allowed = set(inspect.signature(self._training_plan_cls).parameters) - {"self", "module", "max_steps"}
        unknown = sorted(set(given) - allowed)
        if unknown:
            raise ValueError(
                f"Unknown plan_kwargs {unknown}; the training plan takes {sorted(allowed)} "
                "(Lightning's own options go to train() as keywords)."
            )
        return {**self._plan_defaults(n_steps), **given}

    @classmethod
    def _check_datasplitter_kwargs(cls, datasplitter_kwargs: dict[str, Any]) -> None:
        """Refuse options the data module does not take (its keyword-only parameters with defaults)."""
        parameters = inspect.signature(cls._data_splitter_cls).parameters.values()
        allowed = sorted(
            p.name
            for p in parameters
            if p.kind == p.KEYWORD_ONLY
            and p.default is not p.empty
            and p.name not in ("batch_size", "steps_per_epoch", "seed")
        )
        unknown = sorted(set(datasplitter_kwargs) - set(allowed))
        if unknown:
            of_train = [  # the data module's seed is train()'s random_state
                name
                for name in ({"seed": "random_state"}.get(key, key) for key in unknown)
                if name in inspect.signature(cls.train).parameters
            ]
            hint = f" Pass {', '.join(of_train)} to train() itself." if of_train else ""
            raise ValueError(
                f"Unknown datasplitter_kwargs {unknown}: {cls.__name__}'s data module "
                f"({cls._data_splitter_cls.__name__}) takes {allowed or 'no options'}.{hint}"
            )


class SaveLoadMixin:
    """Saves a model as weights-only files and loads it back (scvi-tools' ``save`` / ``load`` contract).

    A model using it lists in ``_saved_attributes`` the attributes that :meth:`load` cannot
    rebuild from the initialisation parameters (fitted inputs, reference embeddings...), in
    ``_saved_types`` the dataclasses these hold, and in ``_default_modalities`` the modality of
    each :meth:`setup_mudata` argument. :meth:`load` builds the model as
    ``cls(adata, registry=saved_registry, **init_params)``, then sets the saved attributes and
    weights: given a ``registry``, ``__init__`` need not fit what these restore.
    """

    _saved_attributes: tuple[str, ...] = ()
    _saved_types: tuple[type, ...] = ()

    @classmethod
    def _saved_init_params(cls, init_params: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments of a saved model, as this version must be given them.

        A model overrides this when the meaning of a saved argument changed between versions.
        """
        return init_params

    _default_modalities: dict[str, str] = {}
    #: what every model keeps from its training
    _training_attributes = ("is_trained_", "train_params_", "history_")

    def _get_init_params(self, locals: dict[str, Any]) -> dict[str, Any]:
        """scvi-tools' record of the constructor arguments, without the data arguments whatever their value.

        scvi-tools leaves out a MuData but keeps ``mdata=None`` (a model rebuilt by :meth:`load` without data), so a
        loaded model would save a ``model.json`` that differs from the one it was loaded from.
        """
        params = super()._get_init_params(locals)
        return {**params, "non_kwargs": {k: v for k, v in params["non_kwargs"].items() if k not in _DATA_ARGUMENTS}}

    @classmethod
    def _modality_names(cls, registry: Mapping[str, Any]) -> dict[str, str]:
        return {**cls._default_modalities, **(registry["setup_args"].get("modalities") or {})}

    @property
    def _modalities(self) -> dict[str, str]:
        """Modality of each :meth:`setup_mudata` argument (``{"rna_layer": "rna", ...}``)."""
        return self._modality_names(self.registry_)

    def _feature_names(self) -> dict[str, np.ndarray]:
        """Feature names of each modality the model reads, from its data (or as loaded, for a model without data)."""
        if self.adata is None:
            return dict(getattr(self, "_loaded_feature_names", {}))
        modalities = dict.fromkeys(self._modalities.values())
        return {m: self.adata.mod[m].var_names.to_numpy(dtype=str) for m in modalities if m in self.adata.mod}

    def save(
        self,
        dir_path: str | os.PathLike,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        **anndata_write_kwargs,
    ) -> None:
        """Save the model as files that cannot run code when loaded.

        The folder holds ``model.json`` (initialisation parameters, data registry, feature
        names, fitted attributes), ``arrays.npz`` (arrays, read without pickle) and
        ``weights.pt`` (the module's tensors only, read with ``torch.load(weights_only=True)``);
        with ``save_anndata=True`` also ``mdata.h5mu``. The optimiser state and the trainer are
        not saved.

        Parameters
        ----------
        dir_path
            Folder to write.
        prefix
            Prefix of the file names.
        overwrite
            Replace the model files of an existing folder; otherwise an existing folder is an error.
        save_anndata
            Also write the model's MuData (``mdata.h5mu``); :meth:`load` then uses it when given no data.
        **anndata_write_kwargs
            Passed to :meth:`mudata.MuData.write`.

        Raises
        ------
        ValueError
            When the folder exists and ``overwrite`` is False, or ``save_anndata=True`` for a model
            without data.
        """
        if save_anndata and self.adata is None:
            raise ValueError("save_anndata=True: this model has no data attached (it was loaded without data).")
        attributes = {
            name: getattr(self, name)
            for name in (*self._training_attributes, *self._saved_attributes)
            if hasattr(self, name)
        }
        try:
            sctransfer_version = version("sctransfer")
        except PackageNotFoundError:
            sctransfer_version = "unknown"
        data_path = write_model_files(
            dir_path,
            metadata={
                "model": type(self).__name__,
                "sctransfer_version": sctransfer_version,
                "init_params": self.init_params_,
                "registry": self.registry_,
                "feature_names": self._feature_names(),
                "attributes": attributes,
            },
            state_dict=self.module.state_dict(),
            allowed=self._saved_types,
            prefix=prefix,
            overwrite=overwrite,
        )
        if save_anndata:
            self.adata.write(data_path, **anndata_write_kwargs)

    @classmethod
    @renamed_argument("mdata", "adata")
    def load(
        cls,
        dir_path: str | os.PathLike,
        adata: MuData | None = None,
        accelerator: str = "auto",
        device: int | str = "auto",
        prefix: str | None = None,
        backup_url: str | None = None,
    ):
        """Load a saved model, without running anything from its files.

        Parameters
        ----------
        dir_path
            Folder given to :meth:`save`.
        adata
            The training MuData (or one with the same modalities and features), set up again from
            the saved registry. ``None``: the MuData saved with the model (``save_anndata=True``)
            when there is one, else the model alone, ready to embed and predict new data sets
            passed to its methods (features are matched by name there).
        accelerator, device
            Where to put the model (scvi-tools' device arguments; one device).
        prefix
            Prefix of the file names.
        backup_url
            URL of a folder holding the model files, downloaded when missing from ``dir_path``.

        Returns
        -------
        The model, in evaluation mode.

        Raises
        ------
        ValueError
            (``ModelFileError``) when ``dir_path`` holds no model of this format (a model saved by
            an earlier sctransfer, whose pickle-based ``model.pt`` is never opened), a model of
            another class, a damaged or unsafe file (refused before anything in it runs), or weights
            that do not fit the model the description builds (an edited ``model.json``); when
            ``adata`` lacks a modality of the model or its features differ from the saved model's
            (the message says which).
        """
        _, _, torch_device = parse_device_args(
            accelerator=accelerator, devices=device, return_device="torch", validate_single_device=True
        )
        metadata, state_dict, data_path = read_model_files(
            dir_path,
            model=cls.__name__,
            allowed=cls._saved_types,
            prefix=prefix,
            map_location=torch_device,
            backup_url=backup_url,
        )
        registry = metadata["registry"]
        if adata is None and data_path is not None:
            import mudata

            with mudata.set_options(pull_on_update=False):  # read as written, without the legacy pull
                adata = mudata.read_h5mu(data_path)
        if adata is not None:
            _check_feature_names(adata, metadata["feature_names"], cls.__name__)
            try:
                cls.setup_mudata(adata, source_registry=registry, **registry["setup_args"])
            except (KeyError, ValueError) as error:  # the data are not in the form the model was set up with
                raise type(error)(f"{_message(error)} {cls._set_up_as(registry['setup_args'])}") from error
        init = cls._saved_init_params(metadata["init_params"])
        non_kwargs = {k: v for k, v in init["non_kwargs"].items() if k not in _DATA_ARGUMENTS}
        kwargs = {k: v for group in init["kwargs"].values() for k, v in group.items()}
        model = cls(adata, registry=registry, **non_kwargs, **kwargs)
        for name, value in metadata["attributes"].items():
            setattr(model, name, value)
        if adata is None:
            model._loaded_feature_names = metadata["feature_names"]
        try:
            model.module.load_state_dict(state_dict)
        except RuntimeError as error:  # tensors missing, unexpected or of other shapes than the description builds
            lines = str(error).splitlines()  # "Error(s) in loading state_dict ...", then one line per tensor
            details = (lines[1] if len(lines) > 1 else lines[0]).strip().rstrip(".")
            raise ModelFileError(
                f"The model description ({prefix or ''}{METADATA_FILE}) and the weights ({prefix or ''}{WEIGHTS_FILE}) "
                f"in {dir_path} disagree ({details}): the folder is damaged or one of its files was edited or "
                "replaced. Save the model again from its source."
            ) from None
        model.to_device(torch_device)
        model.module.eval()
        return model

    #: The tool of :mod:`sctransfer.tl` that wraps the model (named in hints).
    _tool_name: str

    @classmethod
    def _set_up_as(cls, setup_args: Mapping[str, Any]) -> str:
        """How ``load(dir_path, adata=...)`` reads data: the set-up the model was saved with, and the alternative."""
        modalities = {**cls._default_modalities, **(setup_args.get("modalities") or {})}
        layers = {name: setup_args.get(name) for name in setup_args if name.endswith("_layer")}
        where = ", ".join(
            f"{modalities.get(name, name.removesuffix('_layer'))!r} ({'.X' if layer is None else f'layer {layer!r}'})"
            for name, layer in layers.items()
        )
        return (
            f"load(dir_path, adata=...) reads data as the model was set up: counts of the modalities {where} (a model "
            "trained by a tool was set up on the tool's working copy). Give the data in that form, or use the model "
            "on the data as they are through the tool's model= argument (e.g. "
            f"sctransfer.tl.{cls._tool_name}(mdata, model={cls.__name__}.load(dir_path)))."
        )

    @classmethod
    def load_registry(cls, dir_path: str | os.PathLike, prefix: str | None = None) -> dict:
        """The data registry saved with a model (read without running anything from the files)."""
        return read_model_files(dir_path, model=cls.__name__, allowed=cls._saved_types, prefix=prefix)[0]["registry"]

    @classmethod
    def view_setup_args(cls, dir_path: str | os.PathLike, prefix: str | None = None) -> None:
        """Print the arguments a saved model's data were set up with."""
        from scvi.data import AnnDataManager

        AnnDataManager.view_setup_method_args(cls.load_registry(dir_path, prefix))


def _message(error: BaseException) -> str:
    """An exception's message (a KeyError's without the quotes ``str`` adds)."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def _check_feature_names(adata: MuData, saved: Mapping[str, np.ndarray], model: str) -> None:
    """Refuse data whose modalities lack or reorder the saved model's features, saying what differs."""
    problems = []
    for modality, names in saved.items():
        names = np.asarray(names, dtype=str)
        if modality not in adata.mod:
            problems.append(f"modality {modality!r} is missing (the data have {list(adata.mod)})")
            continue
        new = adata.mod[modality].var_names.to_numpy(dtype=str)
        if np.array_equal(new, names):
            continue
        missing = names[~np.isin(names, new)]
        extra = new[~np.isin(new, names)]
        if not len(missing) and not len(extra):
            problems.append(f"modality {modality!r} has the model's {len(names)} features in another order")
            continue
        parts = []
        if len(missing):
            parts.append(f"lacks {len(missing)} of the model's {len(names)} features (e.g. {', '.join(missing[:3])})")
        if len(extra):
            parts.append(f"has {len(extra)} features the model does not know (e.g. {', '.join(extra[:3])})")
        problems.append(f"modality {modality!r} " + " and ".join(parts))
    if problems:
        raise ValueError(
            f"The data given to {model}.load are not laid out like the model's training data: "
            + "; ".join(problems)
            + f". load(dir_path, adata=...) re-attaches training data; to use the model on other data, load it alone "
            f"({model}.load(dir_path)) and pass the data to its methods (get_latent_representation, ...), which "
            "match features by name."
        )
