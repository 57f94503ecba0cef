#!/usr/bin/env python
"""SOC training and evaluation script, the standard Detectron2 entry.

    python train_net.py --config-file projects/SOC/configs/ref_ytvos/soc_swin_t_scratch.yaml --num-gpus 8
    python train_net.py --config-file ... --eval-only MODEL.WEIGHTS path/to/model.pth
    python train_net.py --config-file ... --resume
"""
import logging
import os
import weakref

import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.engine import (
    AMPTrainer,
    DefaultTrainer,
    SimpleTrainer,
    TrainerBase,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    hooks,
    launch,
)
from detectron2.evaluation import verify_results
from detectron2.utils import comm

import soc  # noqa: F401  (registers the model, datasets and evaluators)
from soc import add_soc_config
from soc.checkpoint import SOCCheckpointer
from soc.data import build_soc_mapper
from soc.engine import build_soc_optimizer
from soc.engine.train_loader import build_clip_train_loader, step_seed
from soc.evaluation import build_evaluator


class Trainer(DefaultTrainer):
    """DefaultTrainer with SOC's clip loaders, evaluators, optimizer and checkpointer."""

    def __init__(self, cfg):
        # DefaultTrainer.__init__ with two changes: DDP gets no device_ids on the CPU (gloo), where detectron2
        # passes the local rank, and the checkpointer is SOC's (atomic writes, the authors' weight files).
        TrainerBase.__init__(self)
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
        self.checkpointer = SOCCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        seed = self.cfg.SEED if self.cfg.SEED >= 0 else 0
        step_seeder = hooks.CallbackHook(
            before_step=lambda trainer: torch.manual_seed(step_seed(seed, trainer.iter, comm.get_rank()))
        )
        return [step_seeder] + super().build_hooks()

    def resume_or_load(self, resume: bool = True):
        super().resume_or_load(resume=resume)
        # The data stream continues where the checkpoint left it (a fresh run starts at 0).
        self._trainer.reset_data_loader(lambda: self.build_train_loader(self.cfg, start_iter=self.start_iter))

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
        return build_detection_test_loader(
            cfg, dataset_name, mapper=build_soc_mapper(cfg, dataset_name, is_train=False)
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_soc_optimizer(cfg, model)


def setup(args):
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        SOCCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        res = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, res)
        return res
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
