"""SOC's config keys. ``add_soc_config(cfg)`` only adds keys; it never changes detectron2's defaults.

Defaults follow the authors' released configuration (``configs/refer_youtube_vos.yaml``, Video-Swin-T) unless
a comment says otherwise; where the paper and the code differ, the code's behaviour is the default and the
paper's variant sits behind a key (see README, "Paper vs the authors' code").
"""

import os
from typing import Callable, List, Sequence, Tuple

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .utils.precision import PRECISIONS


def add_soc_config(cfg: CN) -> None:
    """Add every SOC key, with its default, to a detectron2 config."""
    cfg.MODEL.WEIGHTS_MIN_MATCHED = 0.9  # min share of model tensors loaded; 0 = any partial (fine-tuning)

    # -------------------------------------------------------------- backbone: Video Swin (torchvision Swin3D)
    cfg.MODEL.VIDEO_SWIN = CN()
    cfg.MODEL.VIDEO_SWIN.PATCH_SIZE = [1, 4, 4]  # (t, h, w); 1 in time: no temporal downsampling
    cfg.MODEL.VIDEO_SWIN.EMBED_DIM = 96  # T/S: 96, B: 128
    cfg.MODEL.VIDEO_SWIN.DEPTHS = [2, 2, 6, 2]  # T: [2,2,6,2], S/B: [2,2,18,2]
    cfg.MODEL.VIDEO_SWIN.NUM_HEADS = [3, 6, 12, 24]  # T/S: [3,6,12,24], B: [4,8,16,32]
    cfg.MODEL.VIDEO_SWIN.WINDOW_SIZE = [8, 7, 7]  # (t, h, w) attention window
    cfg.MODEL.VIDEO_SWIN.MLP_RATIO = 4.0  # hidden width of the block MLPs, relative to the stage width
    cfg.MODEL.VIDEO_SWIN.DROP_PATH_RATE = 0.2  # stochastic depth, linear over blocks
    cfg.MODEL.VIDEO_SWIN.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # stage outputs before patch merging
    # Kinetics weights: a local file, hf://owner/repo/file or torchvision://Swin3D_T_Weights.KINETICS400_V1;
    # loaded into the backbone when MODEL.WEIGHTS is ""
    cfg.MODEL.VIDEO_SWIN.PRETRAINED = ""
    cfg.MODEL.VIDEO_SWIN.FROZEN_STAGES = -1  # freeze the patch embedding and stages < this index; -1 = none

    # -------------------------------------------------------------- backbone: a timm network per frame
    # (build_timm_frame_backbone; build_frame_resnet_backbone, detectron2's ResNet, reads MODEL.RESNETS)
    cfg.MODEL.TIMM = CN()
    cfg.MODEL.TIMM.NAME = "efficientnet_lite0"  # timm model, built with features_only=True and no weights
    cfg.MODEL.TIMM.OUT_INDICES = []  # timm's feature levels returned as res<log2 stride>; [] = strides 4..32
    cfg.MODEL.TIMM.FREEZE_BN = True  # BatchNorm -> frozen affine map (detectron2's FrozenBN): small batches
    cfg.MODEL.TIMM.FROZEN_STAGES = -1  # freeze the stem and the first k returned levels' stages; -1 = none
    cfg.MODEL.TIMM.PRETRAINED = ""  # ImageNet weights, loaded if MODEL.WEIGHTS is "" (soc.checkpoint)

    cfg.MODEL.SOC = CN()
    cfg.MODEL.SOC.HIDDEN_DIM = 256  # d_model of fusion, transformers and heads
    cfg.MODEL.SOC.NUM_FEATURE_LEVELS = 4  # s8, s16, s32 + one extra stride-2 conv on the last stage (s64)
    cfg.MODEL.SOC.NUM_CLASSES = 1  # K sigmoid classes; 1 = "is referred" (all released YAMLs)

    # ---------------------------------------------------------------- text encoder (Hugging Face)
    cfg.MODEL.SOC.TEXT_ENCODER = CN()
    cfg.MODEL.SOC.TEXT_ENCODER.NAME = "roberta-base"  # hub name or local folder for AutoModel/AutoTokenizer
    cfg.MODEL.SOC.TEXT_ENCODER.FREEZE = True  # requires_grad=False on the encoder (the resizer still trains)
    cfg.MODEL.SOC.TEXT_ENCODER.RESIZER_DROPOUT = 0.1  # dropout of the 768->d_model projection ("txt_proj")
    cfg.MODEL.SOC.TEXT_ENCODER.SENTENCE_FEATURE = (
        "pooler"  # "pooler" (code: pooler_output) | "mean" (mean of words)
    )

    # ---------------------------------------------------------------- neck: MMF (multi-modal fusion)
    cfg.MODEL.SOC.NECK = CN()
    cfg.MODEL.SOC.NECK.NAME = "MMF"  # in SOC_NECK_REGISTRY
    cfg.MODEL.SOC.NECK.NHEADS = 8  # heads of the cross-modal attention
    cfg.MODEL.SOC.NECK.RESIDUAL = False  # False: code (v * attn, no residual); True: adds the input back

    # ---------------------------------------------------------------- decoder: SIM (frame-level + VOC)
    cfg.MODEL.SOC.DECODER = CN()
    cfg.MODEL.SOC.DECODER.NAME = "SIM"  # in SOC_DECODER_REGISTRY
    cfg.MODEL.SOC.DECODER.NHEADS = 8  # heads of the deformable encoder/decoder
    cfg.MODEL.SOC.DECODER.ENC_LAYERS = 3  # deformable encoder layers (K)
    cfg.MODEL.SOC.DECODER.DEC_LAYERS = 3  # deformable decoder layers
    cfg.MODEL.SOC.DECODER.DIM_FEEDFORWARD = 2048  # FFN width of the deformable layers
    cfg.MODEL.SOC.DECODER.DROPOUT = 0.1  # dropout of the deformable layers
    cfg.MODEL.SOC.DECODER.ENC_N_POINTS = 4  # sampling points per head and level, encoder
    cfg.MODEL.SOC.DECODER.DEC_N_POINTS = 4  # sampling points per head and level, decoder
    cfg.MODEL.SOC.DECODER.NUM_QUERIES = 20  # N_q frame-level queries per frame
    cfg.MODEL.SOC.DECODER.WITH_BOX_REFINE = True  # iterative box refinement between decoder layers

    # ---------------------------------------------------------------- VOC: video-level object cluster
    cfg.MODEL.SOC.VOC = CN()
    cfg.MODEL.SOC.VOC.ENABLED = True  # False: heads read the frame queries only (ablation "w/o VOC")
    cfg.MODEL.SOC.VOC.NUM_QUERIES = (
        20  # N_v video queries; must equal DECODER.NUM_QUERIES (slot-aligned add-back)
    )
    cfg.MODEL.SOC.VOC.NHEADS = 8  # heads of the temporal encoder and grouping decoder
    cfg.MODEL.SOC.VOC.ENC_LAYERS = 3  # temporal self-attention layers over the T*N_q frame queries
    cfg.MODEL.SOC.VOC.DEC_LAYERS = 3  # object-grouping decoder layers
    cfg.MODEL.SOC.VOC.DIM_FEEDFORWARD = 2048  # FFN width
    cfg.MODEL.SOC.VOC.DROPOUT = 0.1  # hard-coded 0.1 in the authors' code

    # ---------------------------------------------------------------- heads
    cfg.MODEL.SOC.MASK_HEAD = CN()
    cfg.MODEL.SOC.MASK_HEAD.MASK_DIM = 8  # channels of the stride-4 mask features ("mask_kernels_dim")
    cfg.MODEL.SOC.MASK_HEAD.CONTROLLER_LAYERS = 3  # dynamic 1x1 conv layers
    cfg.MODEL.SOC.MASK_HEAD.DYNAMIC_MASK_CHANNELS = 8  # channels of the hidden dynamic conv layers
    cfg.MODEL.SOC.MASK_HEAD.REL_COORD = True  # append relative coordinates (pixels) to the mask features

    # ---------------------------------------------------------------- matcher and losses
    cfg.MODEL.SOC.MATCHER = CN()
    cfg.MODEL.SOC.MATCHER.COST_CLASS = 2.0  # focal-style class cost
    cfg.MODEL.SOC.MATCHER.COST_DICE = 5.0  # -dice over the trajectory
    cfg.MODEL.SOC.MATCHER.COST_BBOX = 2.0  # L1 on normalised cxcywh
    cfg.MODEL.SOC.MATCHER.COST_GIOU = 2.0  # -GIoU

    cfg.MODEL.SOC.LOSS = CN()
    cfg.MODEL.SOC.LOSS.CLASS_WEIGHT = 2.0  # sigmoid focal class loss
    cfg.MODEL.SOC.LOSS.BBOX_WEIGHT = 2.0  # L1 box loss
    cfg.MODEL.SOC.LOSS.GIOU_WEIGHT = 2.0  # GIoU box loss
    cfg.MODEL.SOC.LOSS.DICE_WEIGHT = 5.0  # mask dice loss (paper text says 2; the code uses 5)
    cfg.MODEL.SOC.LOSS.MASK_FOCAL_WEIGHT = 2.0  # mask sigmoid focal loss (paper text says 5; the code uses 2)
    cfg.MODEL.SOC.LOSS.CONTRASTIVE_WEIGHT = 1.0  # visual-linguistic contrastive loss; 0 disables it
    cfg.MODEL.SOC.LOSS.CONTRASTIVE_SCALE = "dim"  # "dim" (code: divide by D) | "sqrt_dim" (paper: by sqrt(D))
    cfg.MODEL.SOC.LOSS.FOCAL_ALPHA = 0.25  # alpha of every focal term
    cfg.MODEL.SOC.LOSS.FOCAL_GAMMA = 2.0  # gamma of every focal term
    cfg.MODEL.SOC.LOSS.DEEP_SUPERVISION = True  # losses on every decoder layer ("aux_loss")

    # ---------------------------------------------------------------- inference
    cfg.MODEL.SOC.TEST = CN()
    cfg.MODEL.SOC.TEST.HEAD_LAYER = 0  # decoder layer whose heads give the predictions (code: 0; paper: -1)
    cfg.MODEL.SOC.TEST.CLIP_LENGTH = 0  # frames per window (forward pass); 0 = the whole video (DAVIS: 36)
    cfg.MODEL.SOC.TEST.WINDOW_OVERLAP = 0  # frames shared by consecutive windows; 0 = authors' protocol
    cfg.MODEL.SOC.TEST.ASSOCIATION = "independent"  # a window's query: "independent" | "iou_embedding"
    # iou_embedding: weight of the expression score beside the continuity (0 = the score only breaks ties)
    cfg.MODEL.SOC.TEST.ASSOCIATION_SCORE_WEIGHT = 0.0
    cfg.MODEL.SOC.TEST.MASK_THRESHOLD = 0.5  # probability threshold of the binary masks
    cfg.MODEL.SOC.TEST.ALL_QUERY_MASKS = False  # also return every query's mask (A2D/JHMDB mAP)
    cfg.MODEL.SOC.TEST.NO_TARGET_THRESHOLD = 0.0  # empty masks when the clip score is below it; 0 = off
    cfg.MODEL.SOC.TEST.PRECISION = "fp32"  # inference autocast: "fp32" | "bf16" | "fp16" (CUDA only)
    cfg.TEST.MAX_EXPRESSIONS_PER_SAMPLE = 0  # expressions of a video decoded together; 0 = all, 1 = ungrouped
    # training: expressions of one video per clip, drawn at random, sharing one backbone pass (0 = all of the
    # video's; 1 = one record per sample, the authors' sampling)
    cfg.DATALOADER.EXPRESSIONS_PER_CLIP = 1

    # ---------------------------------------------------------------- input (clips)
    cfg.INPUT.SAMPLING_FRAME_NUM = 8  # frames per training clip (window)
    # training targets: the referred object only (authors), or also every other annotated object of the clip
    # (palette-PNG datasets), whose masks and boxes then train unreferred queries
    cfg.INPUT.ALL_OBJECT_TARGETS = False
    cfg.INPUT.FLIP_PROB = 0.5  # clip-level horizontal flip, swapping "left"/"right" (code: ~0.31)
    cfg.INPUT.TEST_WINDOW = 8  # A2D/JHMDB: frames of context around the annotated frame

    # ---------------------------------------------------------------- solver
    cfg.SOLVER.OPTIMIZER = "ADAMW"  # "ADAMW" | "SGD"
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1  # lr of the backbone (Video Swin, timm, ResNet) = BASE_LR * this
    cfg.SOLVER.TEXT_ENCODER_MULTIPLIER = 0.5  # lr of the text encoder (when trained) = BASE_LR * this
    cfg.SOLVER.LINEAR_PROJ_MULTIPLIER = 1.0  # lr of sampling_offsets / reference_points (SOC: no own group)
    cfg.SOLVER.AMP.DTYPE = "fp16"  # with SOLVER.AMP.ENABLED: "fp16" (CUDA, loss scaling) | "bf16"
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0  # weight decay of embeddings (queries, level/position embeddings)

    # ---------------------------------------------------------------- datasets
    cfg.DATASETS.TRAIN_RATIOS = []  # sampling ratio per training dataset (joint training); [] = by size


def _ints(v) -> List[int]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


# (key, test, what the test requires): the ranges that the code needs and YAML types cannot express.
_RULES: List[Tuple[str, Callable[[object], bool], str]] = [
    (
        "MODEL.SOC.HIDDEN_DIM",
        lambda v: v > 0 and v % 128 == 0,
        "a positive multiple of 128 (MMF's GroupNorm(32) "
        "and the pixel decoder's GroupNorm(8) over HIDDEN_DIM / 16 channels)",
    ),
    ("MODEL.WEIGHTS_MIN_MATCHED", lambda v: 0 <= v <= 1, "a share in [0, 1]"),
    ("MODEL.TIMM.FROZEN_STAGES", lambda v: v >= -1, ">= -1 (-1 = nothing frozen)"),
    ("MODEL.SOC.NUM_FEATURE_LEVELS", lambda v: v >= 1, ">= 1"),
    ("MODEL.SOC.NUM_CLASSES", lambda v: v >= 1, ">= 1"),
    ("MODEL.SOC.NECK.NHEADS", lambda v: v >= 1, ">= 1"),
    ("MODEL.SOC.DECODER.NHEADS", lambda v: v >= 1, ">= 1"),
    ("MODEL.SOC.DECODER.ENC_LAYERS", lambda v: v >= 1, ">= 1"),
    ("MODEL.SOC.DECODER.DEC_LAYERS", lambda v: v >= 1, ">= 1"),
    ("MODEL.SOC.DECODER.NUM_QUERIES", lambda v: v >= 1, ">= 1"),
    ("MODEL.SOC.DECODER.DROPOUT", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("MODEL.SOC.VOC.DROPOUT", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("MODEL.SOC.TEXT_ENCODER.RESIZER_DROPOUT", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("MODEL.SOC.TEST.CLIP_LENGTH", lambda v: v >= 0, ">= 0 (0 = the whole video at once)"),
    ("MODEL.SOC.TEST.MASK_THRESHOLD", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("MODEL.SOC.TEST.NO_TARGET_THRESHOLD", lambda v: 0 <= v <= 1, "a score in [0, 1] (0 = off)"),
    ("TEST.MAX_EXPRESSIONS_PER_SAMPLE", lambda v: v >= 0, ">= 0 (0 = all of a video's expressions)"),
    ("MODEL.SOC.TEST.WINDOW_OVERLAP", lambda v: v >= 0, ">= 0 frames (and < the window length)"),
    ("MODEL.SOC.TEST.PRECISION", lambda v: v in PRECISIONS, "fp32 | bf16 | fp16"),
    ("MODEL.SOC.TEST.ASSOCIATION_SCORE_WEIGHT", lambda v: v >= 0, ">= 0 (0 = the score only breaks ties)"),
    ("SOLVER.AMP.DTYPE", lambda v: v in PRECISIONS and v != "fp32", "fp16 | bf16"),
    (
        "MODEL.SOC.TEST.ASSOCIATION",
        lambda v: v in ("independent", "iou_embedding"),
        "independent | iou_embedding",
    ),
    ("INPUT.MIN_SIZE_TRAIN", lambda v: len(_ints(v)) > 0 and min(_ints(v)) >= 1, "sizes >= 1 pixel"),
    ("INPUT.MAX_SIZE_TRAIN", lambda v: v >= 1, ">= 1 pixel"),
    (
        "INPUT.MIN_SIZE_TEST",
        lambda v: v >= 1,
        ">= 1 pixel (every frame is resized; 0, detectron2's 'no resize', " "is not supported)",
    ),
    ("INPUT.MAX_SIZE_TEST", lambda v: v >= 1, ">= 1 pixel"),
    ("INPUT.SAMPLING_FRAME_NUM", lambda v: v >= 1, ">= 1 frame"),
    ("INPUT.TEST_WINDOW", lambda v: v >= 1, ">= 1 frame"),
    ("INPUT.FLIP_PROB", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("SOLVER.IMS_PER_BATCH", lambda v: v >= 1, ">= 1 clip"),
    ("SOLVER.BASE_LR", lambda v: v >= 0, ">= 0"),
    ("SOLVER.MAX_ITER", lambda v: v >= 0, ">= 0"),
    ("SOLVER.CHECKPOINT_PERIOD", lambda v: v >= 1, ">= 1 iteration"),
    ("DATALOADER.NUM_WORKERS", lambda v: v >= 0, ">= 0"),
    ("DATALOADER.EXPRESSIONS_PER_CLIP", lambda v: v >= 0, ">= 0 (0 = all of a video's expressions)"),
]


def check_soc_config(cfg: CN) -> None:
    """Raise ``ValueError`` naming the key, its value and the allowed range for every value the code cannot
    run with (``setup_cfg`` calls it; values of a wrong YAML type are already refused by the merge)."""
    errors = []
    for key, ok, requirement in _RULES:
        value = cfg
        for part in key.split("."):
            value = value[part]
        if not ok(value):
            errors.append(f"{key} = {value!r}: must be {requirement}")
    if cfg.MODEL.SOC.TEST.PRECISION == "fp16" and not cfg.MODEL.DEVICE.startswith("cuda"):
        errors.append(
            f"MODEL.SOC.TEST.PRECISION = 'fp16': needs CUDA, but MODEL.DEVICE = {cfg.MODEL.DEVICE!r} "
            "(use 'bf16' or 'fp32')"
        )
    if errors:
        raise ValueError("invalid config value(s):\n  " + "\n  ".join(errors))


def setup_cfg(config_file: str, opts: Sequence[str] = ()) -> CN:
    """A frozen, checked config: detectron2's defaults, SOC's keys, ``config_file`` (a YAML path, or a
    model-zoo name such as ``ref_ytvos/soc_swin_t_joint`` when no such file exists; with its ``_BASE_``
    chain), then the ``KEY VALUE`` overrides ``opts``; ``ValueError`` names any key out of its range,
    ``FileNotFoundError`` a config that is neither a file nor a model-zoo name."""
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.merge_from_file(resolve_config_file(config_file))
    cfg.merge_from_list(list(opts))
    check_soc_config(cfg)
    cfg.freeze()
    return cfg


def resolve_config_file(config_file: str) -> str:
    """``config_file`` if it is a file, else the path of the model-zoo config of that name
    (:func:`soc.model_zoo.get_config_file`); ``FileNotFoundError`` naming it when it is neither."""
    if os.path.isfile(config_file):
        return config_file
    from .model_zoo import get_config_file  # soc.model_zoo imports this module

    try:
        return get_config_file(config_file)
    except ValueError as e:
        raise FileNotFoundError(f"config file {config_file!r} does not exist, and {e}") from None
