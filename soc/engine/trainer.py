"""SOC's ``Trainer``: detectron2's ``DefaultTrainer`` with clip loaders and SOC's evaluators, optimizer and
checkpointer."""

import logging
import os
import weakref

import torch
from detectron2.data import DatasetCatalog, build_detection_test_loader, get_detection_dataset_dicts
from detectron2.engine import (
    AMPTrainer,
    DefaultTrainer,
    SimpleTrainer,
    TrainerBase,
    create_ddp_model,
    hooks,
)
from detectron2.utils import comm
from torch import nn

from soc.checkpoint import SOCCheckpointer, load_pretrained_weights
from soc.data import build_soc_mapper
from soc.data.build import group_expressions
from soc.evaluation import build_evaluator
from soc.utils.precision import PRECISIONS, warn_if_bf16_is_emulated

from .optimizer import build_soc_optimizer
from .train_loader import build_clip_train_loader, step_seed

__all__ = ["AutocastForward", "Trainer"]


class AutocastForward(nn.Module):
    """
    Runs the training forward of ``model`` (network and losses) under ``torch.autocast(device_type, dtype)``;
    the backward runs outside it, as autocast wants. In eval mode it calls ``model`` as is (the inference
    precision is the model's own, ``MODEL.SOC.TEST.PRECISION``).

    detectron2's ``AMPTrainer`` asserts CUDA and scales the loss for float16; bfloat16 has float32's range and
    needs no scaling, so ``SimpleTrainer`` around this wrapper trains in bfloat16 on the CPU and on CUDA.
    """

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.model = model
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, batched_inputs):
        if not self.training:
            return self.model(batched_inputs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(batched_inputs)


class Trainer(DefaultTrainer):
    """DefaultTrainer with SOC's clip loaders, evaluators, optimizer and checkpointer.

    Args:
        cfg: a config with SOC's keys (``add_soc_config``).
        final_eval: evaluate ``DATASETS.TEST`` when training ends (detectron2's ``EvalHook``); callers that
            evaluate themselves, such as the SynthRVOS demo pipeline, pass False.
    """

    def __init__(self, cfg, final_eval: bool = True):
        # DefaultTrainer.__init__ with two changes: DDP gets no device_ids on the CPU (gloo), where detectron2
        # passes the local rank, and the checkpointer is SOC's (atomic writes, the authors' weight files).
        TrainerBase.__init__(self)
        self.final_eval = final_eval
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        on_gpu = next(model.parameters()).device.type == "cuda"
        model = create_ddp_model(model, broadcast_buffers=False, **({} if on_gpu else {"device_ids": None}))
        self._trainer = self.build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SOCCheckpointer(
            model, cfg.OUTPUT_DIR, min_matched=cfg.MODEL.WEIGHTS_MIN_MATCHED, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @staticmethod
    def build_step_trainer(cfg, model: nn.Module, data_loader, optimizer) -> SimpleTrainer:
        """The loop that runs one step: ``SimpleTrainer`` in float32; with ``SOLVER.AMP.ENABLED``,
        detectron2's ``AMPTrainer`` (autocast + loss scaling) for float16 on CUDA, ``SimpleTrainer`` around
        :class:`AutocastForward` for bfloat16 (CPU or CUDA)."""
        if not cfg.SOLVER.AMP.ENABLED:
            return SimpleTrainer(model, data_loader, optimizer)
        device_type = next(model.parameters()).device.type
        dtype = PRECISIONS[cfg.SOLVER.AMP.DTYPE]
        if dtype == torch.float16:
            if device_type != "cuda":
                raise ValueError(
                    f"SOLVER.AMP.DTYPE = 'fp16' needs CUDA (the model is on {device_type}); use 'bf16'"
                )
            return AMPTrainer(model, data_loader, optimizer, precision=dtype)
        logging.getLogger(__name__).info("training under %s autocast on %s", dtype, device_type)
        warn_if_bf16_is_emulated(device_type, "SOLVER.AMP.DTYPE")
        return SimpleTrainer(AutocastForward(model, device_type, dtype), data_loader, optimizer)

    def build_hooks(self):
        seed = self.cfg.SEED if self.cfg.SEED >= 0 else 0
        step_seeder = hooks.CallbackHook(
            before_step=lambda trainer: torch.manual_seed(step_seed(seed, trainer.iter, comm.get_rank()))
        )
        built = super().build_hooks()
        if not self.final_eval:
            built = [h for h in built if not isinstance(h, hooks.EvalHook)]
        return [step_seeder] + built

    def resume_or_load(self, resume: bool = True):
        super().resume_or_load(resume=resume)
        # The data stream continues where the checkpoint left it (a fresh run starts at 0).
        self._trainer.reset_data_loader(lambda: self.build_train_loader(self.cfg, start_iter=self.start_iter))

    @classmethod
    def build_model(cls, cfg):
        """The model of ``cfg``, with the backbone's pretrained weights (``MODEL.VIDEO_SWIN.PRETRAINED`` or
        ``MODEL.TIMM.PRETRAINED``) when ``MODEL.WEIGHTS`` is empty; ``MODEL.WEIGHTS`` and resumed checkpoints
        are loaded later by the checkpointer."""
        model = super().build_model(cfg)
        load_pretrained_weights(model, cfg)
        return model

    @classmethod
    def build_train_loader(cls, cfg, start_iter: int = 0):
        """Training clips of ``DATASETS.TRAIN``: one per record, or with ``DATALOADER.EXPRESSIONS_PER_CLIP``
        ≠ 1 one per video, the group of its expressions (:func:`soc.data.build.group_expressions`) of which
        the mapper draws that many per clip (0: all)."""
        names = cfg.DATASETS.TRAIN
        per_clip = cfg.DATALOADER.EXPRESSIONS_PER_CLIP
        return build_clip_train_loader(
            [
                DatasetCatalog.get(name) if per_clip == 1 else group_expressions(DatasetCatalog.get(name))
                for name in names
            ],
            [build_soc_mapper(cfg, name, is_train=True) for name in names],
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
            seed=cfg.SEED if cfg.SEED >= 0 else 0,
            start_iter=start_iter,
            ratios=cfg.DATASETS.TRAIN_RATIOS,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        """Test samples of ``dataset_name``: the expressions of a clip grouped into one sample (at most
        ``TEST.MAX_EXPRESSIONS_PER_SAMPLE``; see :func:`soc.data.build.group_expressions`), so that the model
        encodes the clip once for all of them; ``TEST.MAX_EXPRESSIONS_PER_SAMPLE`` 1 gives one sample per
        record. Every evaluator of ``build_evaluator`` scores both (``expression_pairs``)."""
        records = get_detection_dataset_dicts(dataset_name, filter_empty=False)
        return build_detection_test_loader(
            group_expressions(records, cfg.TEST.MAX_EXPRESSIONS_PER_SAMPLE),
            mapper=build_soc_mapper(cfg, dataset_name, is_train=False),
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_soc_optimizer(cfg, model)
