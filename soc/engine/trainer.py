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

from soc.checkpoint import SOCCheckpointer, load_pretrained_weights
from soc.data import build_soc_mapper
from soc.data.build import group_expressions
from soc.evaluation import build_evaluator

from .optimizer import build_soc_optimizer
from .train_loader import build_clip_train_loader, step_seed

__all__ = ["Trainer"]


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
        if cfg.SOLVER.AMP.ENABLED and not on_gpu:
            logging.getLogger(__name__).warning("SOLVER.AMP.ENABLED is ignored on the CPU")
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED and on_gpu else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SOCCheckpointer(
            model, cfg.OUTPUT_DIR, min_matched=cfg.MODEL.WEIGHTS_MIN_MATCHED, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

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
        names = cfg.DATASETS.TRAIN
        return build_clip_train_loader(
            [DatasetCatalog.get(name) for name in names],
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
