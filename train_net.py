#!/usr/bin/env python
"""SOC training and evaluation, the standard Detectron2 entry.

python train_net.py --config-file projects/SOC/configs/ref_ytvos/soc_swin_t_scratch.yaml --num-gpus 8
python train_net.py --config-file ... --eval-only MODEL.WEIGHTS path/to/model.pth
python train_net.py --config-file ... --resume
"""

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py on the import-time warnings)
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from soc.checkpoint import SOCCheckpointer
from soc.config import setup_cfg
from soc.engine import Trainer


def setup(args):
    """The frozen config of ``--config-file`` and the command-line overrides; logging and output folder."""
    cfg = setup_cfg(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="soc")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        checkpointer = SOCCheckpointer(model, cfg.OUTPUT_DIR, min_matched=cfg.MODEL.WEIGHTS_MIN_MATCHED)
        if not cfg.MODEL.WEIGHTS and not (args.resume and checkpointer.has_checkpoint()):
            raise ValueError(
                "--eval-only needs MODEL.WEIGHTS (a checkpoint file), or --resume with a checkpoint "
                f"in OUTPUT_DIR {cfg.OUTPUT_DIR}; refusing to evaluate a randomly initialised model"
            )
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        res = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, res)
        return res
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    from soc.utils.allocator import reexec_with_tcmalloc  # first: re-executes with tcmalloc (see there)

    reexec_with_tcmalloc()
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
