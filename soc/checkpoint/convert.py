"""Key renaming between the authors' SOC checkpoints, Kinetics Video-Swin checkpoints and our module tree.

Explicit rules, in the spirit of DETR's ``d2/converter.py``. Official SOC → ours:

- ``backbone.0.body.patch_embed.*`` → ``backbone.patch_embed.*``
- ``backbone.0.body.layers.{s}.blocks.{j}.*`` → ``backbone.features.{2s}.{j}.*``
- ``backbone.0.body.downsamples.{s}.*`` → ``backbone.features.{2s+1}.*``
- in Swin blocks, ``mlp.fc1.*`` / ``mlp.fc2.*`` → ``mlp.0.*`` / ``mlp.3.*``
- ``text_encoder.*`` (the Hugging Face model) → ``text_encoder.model.*``
- ``txt_proj.*`` → ``text_encoder.txt_proj.*``
- ``input_proj.*``, ``vlf.*``, ``lvf.*`` → ``neck.<same>``
- ``transformer.*``, ``query_embed.*``, ``voc.*``, ``class_embed.*``, ``bbox_embed.*`` → ``decoder.<same>``
- ``spatial_decoder.*`` → ``pixel_decoder.*``
- ``controller.*`` → ``mask_head.controller.*``

Dropped: ``transformer.decoder.bbox_embed.*`` (the same tensors as ``bbox_embed.*``; our decoder receives the
box heads as an argument instead of holding a second reference), ``text_encoder.embeddings.position_ids``
(a non-persistent buffer in current transformers) and thop's ``total_ops`` / ``total_params`` counters.

Kinetics Video-Swin (``state_dict`` with ``backbone.`` keys, mmaction layout) → our backbone: the same block
rules with ``layers.{s}.downsample.*`` → ``features.{2s+1}.*``, the final ``norm`` and the classifier dropped,
and the (2,4,4) patch kernel summed over time into (1,4,4), as the authors do.

torchvision's Kinetics ``SwinTransformer3d`` (``torchvision://Swin3D_*_Weights.*``) → our backbone: the same
module tree (our backbone is torchvision's), so the keys stay; the final ``norm`` and the classifier ``head``
are dropped and the patch kernel is summed over time in the same way.
"""

import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor

from .weights_io import atomic_write, load_weights_file

__all__ = [
    "apply_official_config",
    "convert_official_state_dict",
    "convert_to_official_state_dict",
    "convert_checkpoint_file",
    "convert_torchvision_swin3d",
    "convert_video_swin_kinetics",
    "extract_state_dict",
    "infer_variant",
    "is_converted_state_dict",
    "is_official_state_dict",
]

Rule = Tuple["re.Pattern[str]", Union[str, Callable[["re.Match[str]"], str]]]

_DROP = [
    re.compile(r"^transformer\.decoder\.bbox_embed\."),
    re.compile(r"^text_encoder\.embeddings\.position_ids$"),
    re.compile(r"(^|\.)total_(ops|params)$"),
]

# Prefixes renamed one for one, as (official, ours); both rule lists below are made from these pairs.
_RENAMED_PREFIXES: List[Tuple[str, str]] = [
    ("backbone.0.body.patch_embed.", "backbone.patch_embed."),
    ("text_encoder.", "text_encoder.model."),
    ("txt_proj.", "text_encoder.txt_proj."),
    *[(f"{m}.", f"neck.{m}.") for m in ("input_proj", "vlf", "lvf")],
    *[(f"{m}.", f"decoder.{m}.") for m in ("transformer", "query_embed", "voc", "class_embed", "bbox_embed")],
    ("spatial_decoder.", "pixel_decoder."),
    ("controller.", "mask_head.controller."),
]

# Official → ours, first matching rule wins.
_OFFICIAL_TO_OURS: List[Rule] = [
    (
        re.compile(r"^backbone\.0\.body\.layers\.(\d+)\.blocks\.(\d+)\."),
        lambda m: f"backbone.features.{2 * int(m.group(1))}.{m.group(2)}.",
    ),
    (
        re.compile(r"^backbone\.0\.body\.downsamples\.(\d+)\."),
        lambda m: f"backbone.features.{2 * int(m.group(1)) + 1}.",
    ),
    *[(re.compile("^" + re.escape(official)), ours) for official, ours in _RENAMED_PREFIXES],
]

# Ours → official (the inverse; used to export and to test that the rules are a bijection).
_OURS_TO_OFFICIAL: List[Rule] = [
    (
        re.compile(r"^backbone\.features\.(\d+)\."),
        lambda m: (
            f"backbone.0.body.layers.{int(m.group(1)) // 2}.blocks."
            if int(m.group(1)) % 2 == 0
            else f"backbone.0.body.downsamples.{int(m.group(1)) // 2}."
        ),
    ),
    *[(re.compile("^" + re.escape(ours)), official) for official, ours in _RENAMED_PREFIXES],
]

_SWIN_MLP = [(re.compile(r"\.mlp\.fc1\."), ".mlp.0."), (re.compile(r"\.mlp\.fc2\."), ".mlp.3.")]
_SWIN_MLP_INV = [(re.compile(r"\.mlp\.0\."), ".mlp.fc1."), (re.compile(r"\.mlp\.3\."), ".mlp.fc2.")]

# Prefixes that only exist in one of the two layouts (used to recognise a file's format).
_OURS_ONLY = (
    "neck.",
    "decoder.",
    "pixel_decoder.",
    "mask_head.",
    "backbone.features.",
    "text_encoder.model.",
)
_OFFICIAL_ONLY = ("backbone.0.body.", "txt_proj.", "spatial_decoder.", "controller.", "transformer.", "voc.")


def _apply(rules: List[Rule], key: str) -> Optional[str]:
    for pattern, repl in rules:
        new, n = pattern.subn(repl, key, count=1)
        if n:
            return new
    return None


def _dropped(key: str) -> bool:
    return any(p.search(key) for p in _DROP)


def extract_state_dict(obj: Any) -> Dict[str, Tensor]:
    """
    The model ``state_dict`` inside a loaded checkpoint: the authors' ``.pth.tar`` (``model_state_dict``),
    a detectron2 file (``model``) or a bare state_dict.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"checkpoint is a {type(obj).__name__}, expected a dict")
    for key in ("model_state_dict", "model", "state_dict"):
        if key in obj and isinstance(obj[key], Mapping):
            return dict(obj[key])
    if all(isinstance(v, Tensor) for v in obj.values()):
        return dict(obj)
    raise ValueError(
        "checkpoint holds neither 'model_state_dict', 'model' nor 'state_dict', and is not a bare state_dict "
        f"(top-level keys: {sorted(obj)[:10]})"
    )


def is_official_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """True when the keys follow the authors' layout (e.g. ``backbone.0.body.*``, ``txt_proj.*``)."""
    keys = list(state_dict)
    return any(k.startswith(_OFFICIAL_ONLY) for k in keys) and not any(k.startswith(_OURS_ONLY) for k in keys)


def is_converted_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """True when the keys already follow our layout (``neck.*``, ``decoder.*``, ``backbone.features.*``)."""
    return any(k.startswith(_OURS_ONLY) for k in state_dict)


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor],
) -> Tuple[Dict[str, Tensor], List[str], List[str]]:
    """
    Rename an official SOC ``state_dict`` to our module tree.

    Returns:
        converted: our keys → the same tensors;
        unplaced: official keys that no rule covers (a partial conversion if non-empty);
        dropped: keys deliberately left out (duplicates, ``position_ids``, thop counters).
    """
    converted: Dict[str, Tensor] = {}
    unplaced: List[str] = []
    dropped: List[str] = []
    for key, value in state_dict.items():
        if _dropped(key):
            dropped.append(key)
            continue
        new = _apply(_OFFICIAL_TO_OURS, key)
        if new is None:
            unplaced.append(key)
            continue
        if new.startswith("backbone."):
            new = _apply(_SWIN_MLP, new) or new
        if new in converted:
            raise ValueError(f"two official keys map to {new!r}")
        converted[new] = value
    return converted, unplaced, dropped


def convert_to_official_state_dict(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """
    The inverse of :func:`convert_official_state_dict`: our keys → the authors' (loadable by their ``SOC``
    with ``strict=True``, which also expects ``transformer.decoder.bbox_embed.*``, re-added here).

    Raises:
        ValueError: for a key no rule covers.
    """
    out: Dict[str, Tensor] = {}
    for key, value in state_dict.items():
        new = _apply(_OURS_TO_OFFICIAL, key)
        if new is None:
            raise ValueError(f"no official counterpart for {key!r}")
        if new.startswith("backbone."):
            new = _apply(_SWIN_MLP_INV, new) or new
        out[new] = value
        if new.startswith("bbox_embed."):
            out["transformer.decoder." + new] = value
    return out


def _sum_over_time(patch_kernel: Tensor) -> Tensor:
    """A patch-embedding kernel ``(C, 3, t, 4, 4)`` → ``(C, 3, 1, 4, 4)``: on a clip whose ``t`` consecutive
    frames are equal, the summed kernel gives per frame what the ``t``-frame kernel gives per tube."""
    if patch_kernel.dim() == 5 and patch_kernel.shape[2] > 1:
        return patch_kernel.sum(dim=2, keepdim=True)
    return patch_kernel


def convert_video_swin_kinetics(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """
    A Kinetics Video-Swin ``state_dict`` (keys ``backbone.patch_embed.*``,
    ``backbone.layers.{s}.blocks.{j}.*``, ``backbone.layers.{s}.downsample.*``, ``backbone.norm.*``,
    ``cls_head.*``) → the keys of :class:`soc.modeling.backbone.video_swin.VideoSwinTransformer` (no
    ``backbone.`` prefix).

    Only keys containing ``backbone.`` are kept (as the authors do); the final ``norm`` is dropped (SOC taps
    the stages before it), and a patch kernel with temporal extent > 1 is summed over time.
    """
    out: Dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if "backbone." not in key:
            continue
        key = key[key.index("backbone.") + len("backbone.") :]
        if key.startswith("norm."):
            continue
        m = re.match(r"^layers\.(\d+)\.blocks\.(\d+)\.(.*)$", key)
        if m:
            key = f"features.{2 * int(m.group(1))}.{m.group(2)}.{m.group(3)}"
            key = _apply(_SWIN_MLP, key) or key
        m = re.match(r"^layers\.(\d+)\.downsample\.(.*)$", key)
        if m:
            key = f"features.{2 * int(m.group(1)) + 1}.{m.group(2)}"
        if key == "patch_embed.proj.weight":
            value = _sum_over_time(value)
        out[key] = value
    return out


def convert_torchvision_swin3d(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """
    A torchvision ``SwinTransformer3d`` ``state_dict`` (keys ``patch_embed.*``, ``features.*``, ``norm.*``,
    ``head.*``; e.g. ``Swin3D_T_Weights.KINETICS400_V1``) → the keys of
    :class:`soc.modeling.backbone.video_swin.VideoSwinTransformer`, which are torchvision's: the final
    ``norm`` and the classifier ``head`` are dropped, and the (C, 3, 2, 4, 4) patch kernel is summed over
    time into (C, 3, 1, 4, 4).
    """
    return {
        key: _sum_over_time(value) if key == "patch_embed.proj.weight" else value
        for key, value in state_dict.items()
        if not key.startswith(("norm.", "head."))
    }


def infer_variant(state_dict: Mapping[str, Tensor]) -> Dict[str, Any]:
    """
    What model a state_dict (official or ours) describes, read from tensor shapes.

    Returns:
        dict with ``swin`` ("T", "S", "B" or "custom"), ``embed_dim``, ``depths``, ``num_heads``,
        ``hidden_dim`` (d_model), ``num_classes``, ``text_hidden_size``, ``num_queries``.
    """
    sd = state_dict if is_converted_state_dict(state_dict) else convert_official_state_dict(state_dict)[0]
    embed_dim = int(sd["backbone.patch_embed.proj.weight"].shape[0])
    depths: Dict[int, int] = {}
    heads: Dict[int, int] = {}
    for key, value in sd.items():
        m = re.match(r"^backbone\.features\.(\d+)\.(\d+)\.attn\.relative_position_bias_table$", key)
        if m:
            stage = int(m.group(1)) // 2
            depths[stage] = max(depths.get(stage, 0), int(m.group(2)) + 1)
            heads[stage] = int(value.shape[1])
    depth_list = [depths[s] for s in sorted(depths)]
    head_list = [heads[s] for s in sorted(heads)]
    known = {
        (96, (2, 2, 6, 2)): "T",
        (96, (2, 2, 18, 2)): "S",
        (128, (2, 2, 18, 2)): "B",
    }
    return {
        "swin": known.get((embed_dim, tuple(depth_list)), "custom"),
        "embed_dim": embed_dim,
        "depths": depth_list,
        "num_heads": head_list,
        "hidden_dim": int(sd["decoder.query_embed.weight"].shape[1]),
        "num_queries": int(sd["decoder.query_embed.weight"].shape[0]),
        "num_classes": int(sd["decoder.class_embed.0.weight"].shape[0]),
        "text_hidden_size": int(sd["text_encoder.txt_proj.fc.weight"].shape[1]),
    }


def apply_official_config(cfg, args: Mapping[str, Any]) -> None:
    """
    Set in ``cfg`` (unfrozen) every model hyper-parameter of the authors' run arguments ``args`` (their
    ``configs/*.yaml`` values, e.g. ``official_tiny.pt['config']``): width, levels, classes, text encoder,
    deformable transformer, VOC, mask head, matcher costs, loss weights, and the authors' eval heads (decoder
    layer 0). The dropouts of the text resizer and VOC, hard-coded to 0.1 upstream, are set to 0.1; values
    take the type of the key's default (an int cost becomes a float).
    """
    dt, voc = args["DeformTransformer"], args["VOC"]
    values = {
        "MODEL.SOC.HIDDEN_DIM": dt["d_model"],
        "MODEL.SOC.NUM_FEATURE_LEVELS": dt["num_feature_levels"],
        "MODEL.SOC.NUM_CLASSES": args["num_classes"],
        "MODEL.SOC.TEXT_ENCODER.NAME": args["text_encoder_type"],
        "MODEL.SOC.TEXT_ENCODER.FREEZE": args["freeze_text_encoder"],
        "MODEL.SOC.TEXT_ENCODER.SENTENCE_FEATURE": "pooler",
        "MODEL.SOC.TEXT_ENCODER.RESIZER_DROPOUT": 0.1,
        "MODEL.SOC.DECODER.NHEADS": dt["nheads"],
        "MODEL.SOC.DECODER.ENC_LAYERS": dt["enc_layers"],
        "MODEL.SOC.DECODER.DEC_LAYERS": dt["dec_layers"],
        "MODEL.SOC.DECODER.DIM_FEEDFORWARD": dt["dim_feedforward"],
        "MODEL.SOC.DECODER.DROPOUT": dt["dropout"],
        "MODEL.SOC.DECODER.ENC_N_POINTS": dt["enc_n_points"],
        "MODEL.SOC.DECODER.DEC_N_POINTS": dt["dec_n_points"],
        "MODEL.SOC.DECODER.NUM_QUERIES": dt["num_queries"],
        "MODEL.SOC.DECODER.WITH_BOX_REFINE": args["with_box_refine"],
        "MODEL.SOC.VOC.NUM_QUERIES": voc["num_queries"],
        "MODEL.SOC.VOC.NHEADS": voc["nheads"],
        "MODEL.SOC.VOC.ENC_LAYERS": voc["enc_layers"],
        "MODEL.SOC.VOC.DEC_LAYERS": voc["dec_layers"],
        "MODEL.SOC.VOC.DIM_FEEDFORWARD": voc["dim_feedforward"],
        "MODEL.SOC.VOC.DROPOUT": 0.1,
        "MODEL.SOC.MASK_HEAD.MASK_DIM": args["mask_kernels_dim"],
        "MODEL.SOC.MASK_HEAD.CONTROLLER_LAYERS": args["controller_layers"],
        "MODEL.SOC.MASK_HEAD.DYNAMIC_MASK_CHANNELS": args["dynamic_mask_channels"],
        "MODEL.SOC.MASK_HEAD.REL_COORD": args["rel_coord"],
        "MODEL.SOC.MATCHER.COST_CLASS": args["set_cost_cls"],
        "MODEL.SOC.MATCHER.COST_DICE": args["set_cost_dice"],
        "MODEL.SOC.MATCHER.COST_BBOX": args["set_costs_box"],
        "MODEL.SOC.MATCHER.COST_GIOU": args["set_costs_giou"],
        "MODEL.SOC.LOSS.CLASS_WEIGHT": args["class_loss_coef"],
        "MODEL.SOC.LOSS.BBOX_WEIGHT": args["box_loss_coef"],
        "MODEL.SOC.LOSS.GIOU_WEIGHT": args["giou_coef"],
        "MODEL.SOC.LOSS.DICE_WEIGHT": args["dice_loss_coef"],
        "MODEL.SOC.LOSS.MASK_FOCAL_WEIGHT": args["sigmoid_focal_loss_coef"],
        "MODEL.SOC.LOSS.CONTRASTIVE_WEIGHT": args["con_loss_coef"] if args["vl_loss"] else 0.0,
        "MODEL.SOC.LOSS.DEEP_SUPERVISION": args["aux_loss"],
        "MODEL.SOC.TEST.HEAD_LAYER": 0,
    }
    for key, value in values.items():
        *path, leaf = key.split(".")
        node = cfg
        for part in path:
            node = node[part]
        default = node[leaf]
        node[leaf] = type(default)(value) if isinstance(default, (bool, int, float)) else value


def convert_checkpoint_file(src: str, dst: str, allow_partial: bool = False) -> Dict[str, Any]:
    """
    Convert the authors' checkpoint ``src`` (``.pth.tar`` with ``model_state_dict``, or a bare state_dict)
    into a detectron2 checkpoint ``dst`` (``{"model": ...}``) that ``SOCCheckpointer`` /
    ``DetectionCheckpointer`` load with no missing or unexpected key.

    Returns:
        a report: ``variant`` (see :func:`infer_variant`), ``num_tensors``, ``dropped`` and ``unplaced`` keys.

    Raises:
        WeightsFileError: ``src`` is not a checkpoint at all, or asks for code to run (it is read by
            :func:`~soc.checkpoint.weights_io.load_weights_file`).
        ValueError: ``src`` is already converted, is not an SOC checkpoint, or has keys no rule places (unless
            ``allow_partial``, which writes the placed keys only).
        OSError: ``src`` cannot be read or ``dst`` written (``dst`` is then left as it was).
    """
    loaded = load_weights_file(src)
    try:
        state_dict = extract_state_dict(loaded)
    except ValueError as e:
        raise ValueError(f"{src}: {e}") from e
    if is_converted_state_dict(state_dict):
        raise ValueError(
            f"{src} is already in our layout (keys such as 'neck.*', 'decoder.*'); nothing to convert"
        )
    if not is_official_state_dict(state_dict):
        raise ValueError(f"{src} does not look like an SOC checkpoint (first keys: {list(state_dict)[:5]})")
    converted, unplaced, dropped = convert_official_state_dict(state_dict)
    if unplaced and not allow_partial:
        raise ValueError(
            f"{len(unplaced)} keys of {src} cannot be placed: {unplaced[:20]}; refusing to write a partial "
            "conversion (pass allow_partial / --allow-partial to write the rest anyway)"
        )
    variant = infer_variant(converted)
    checkpoint = {
        "model": converted,
        "__author__": "SOC authors (converted by soc.checkpoint)",
        "matching_heuristics": False,
    }
    atomic_write(dst, lambda f: torch.save(checkpoint, f))
    return {"variant": variant, "num_tensors": len(converted), "dropped": dropped, "unplaced": unplaced}
