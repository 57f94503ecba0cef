#!/usr/bin/env python
"""
Times our SOC against the authors' implementation (RobertLuo1/NeurIPS2023_SOC) in one process, on the same
weights, on the CPU.

    python benchmarks/bench_vs_authors.py --authors-repo PATH --frames 8 --threads 2 --repeat 3 \\
        --json benchmarks/results_vs_authors.json

Getting the authors' code: ``git clone https://github.com/RobertLuo1/NeurIPS2023_SOC`` (a checkout, used in
place), or a bare mirror of it (``--authors-repo`` may be its git dir: the files the benchmark needs,
``misc.py``, ``utils.py``, ``configs/``, ``models/`` and ``datasets/transforms.py``, are exported from its
HEAD with ``git archive`` into a temporary folder). Their code is imported from there at run time
(``sys.path``); nothing of it is copied into this repository. Their extra dependencies: ``timm``, ``einops``,
``scipy``, ``pycocotools``, ``opencv-python`` (``--extra-path`` adds a folder such as a ``pip install
--target`` one to ``sys.path``), and transformers < 5 (their tokenisation calls ``batch_encode_plus``).

The authors' model is built as in their ``main.py``: ``models.build_model(args)`` with ``args`` their
``configs/joint.yaml`` (the recipe of our ``soc_swin_t_joint.yaml``), Video Swin-T (the module-level
``configs["video-swin-t"]`` dict replaced by our config's Swin-T arguments), no pretrained files. Their
compiled ``MultiScaleDeformableAttention`` extension has no CPU kernel, so a stand-in module of that name
routes it to the repo's own pure-PyTorch reference ``ms_deform_attn_core_pytorch`` (forward; backward by
autograd through the same function, recomputing the sampling as the CUDA kernel's backward does): that is
how their code runs on a CPU, hence the fair comparison; ours runs its CPU kernel. The text encoder is a
randomly initialised RoBERTa-base (``RobertaConfig`` with roberta-base's sizes) saved with a RoBERTa
tokenizer (``--tokenizer``) into a temporary folder that both models load.

Same weights: the authors' model is built under ``--seed``, its ``state_dict`` converted with
:func:`soc.checkpoint.convert_official_state_dict` and loaded (strict) into ours, built from
``soc_swin_t_joint.yaml`` with every hyper-parameter taken from the authors' args. Before timing, one eval
forward of each on the same clip is compared (class logits, boxes, mask logits, selected query) and the
end-to-end masks of both.

Timed (``torch.set_num_threads(--threads)``, one clip of ``--frames`` random frames of ``--orig-height`` ×
``--orig-width`` resized to ``--height`` × ``--width``, the two implementations interleaved, order alternating
per round, best of ``--repeat`` after a warm-up call of each, the agreement check for the inference rows;
the ratio of the bests, and per round, whose spread shows the noise of a loaded machine):

* network forward (eval, no_grad) on the normalised clip;
* end to end: uint8 frames → binary masks at the original size: ours = detectron2's ``ResizeShortestEdge`` (as
  :class:`soc.engine.SOCPredictor`) + ``model([input])``; theirs = their ``RandomResize([360], 640)``,
  ``ToTensor``/``Normalize``, ``nested_tensor_from_videos_list``, forward and ``ReferYoutubeVOSPostProcess``;
* a training step: forward + weighted loss + backward with one random target (masks and boxes, the same for
  both), ours through ``model(batch)`` in train mode, theirs through their model and criterion;
* ours with ``MODEL.SOC.TEST.PRECISION bf16`` (autocast) end to end, and a training step under bf16 autocast
  (``SOLVER.AMP.DTYPE bf16``), each as a ratio to the authors' fp32 row.

Peak memory above the model: in the first (warm-up) end-to-end and training calls; before each, the garbage
is collected, ``malloc_trim(0)`` (glibc) or ``MallocExtension_ReleaseFreeMemory`` (tcmalloc, which the
benchmark runs under, see :mod:`soc.utils.allocator`) hands freed heap back to the system and the RSS
high-water mark is reset (``/proc/self/clear_refs`` ← 5); the peak is ``VmHWM`` after the call minus
``VmRSS`` before it (Linux), the same method for both implementations.
"""

import argparse
import contextlib
import ctypes
import gc
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from argparse import Namespace
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "projects/SOC/configs/ref_ytvos/soc_swin_t_joint.yaml")
AUTHORS_CONFIG = "configs/joint.yaml"
AUTHORS_FILES = ["misc.py", "utils.py", "configs", "models", "datasets/transforms.py"]
EXPRESSION = "a person riding a bike on the left side of the road"
# the issue's goals (ratios to the authors' fp32 time) and our earlier peak memory (GB above the model)
GOALS = {"end to end": 0.5, "end to end bf16": 0.15, "training step": 0.6, "training step bf16": 0.6}
MEMORY_GOALS_GB = {"inference": 1.5, "training": 10.3}
EARLIER = {
    "network forward": (15.2, 22.2),
    "end to end": (16.0, 21.0),
    "training step": (59.8, 73.3),
    "peak memory inference (GB)": (1.5, 2.4),
    "peak memory training (GB)": (10.3, 12.2),
}


# ------------------------------------------------------------------------------------------ the authors' code
def authors_source(path: str, tmp: str) -> Tuple[str, Optional[str]]:
    """The folder to import the authors' code from, and its commit: ``path`` itself for a checkout, else an
    export of the bare git dir's HEAD into ``tmp``."""
    if os.path.isfile(os.path.join(path, "models", "soc.py")):
        rev = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True)
        return path, rev.stdout.strip() or None
    git = ["git", f"--git-dir={path}"]
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    excludes = [":(exclude)models/ops/build", ":(exclude)models/ops/dist"]  # binaries, absent in mirrors
    tar = subprocess.run(git + ["archive", "--format=tar", "HEAD", "--"] + AUTHORS_FILES + excludes,
                         capture_output=True, check=True).stdout  # fmt: skip
    dest = os.path.join(tmp, "authors")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    return dest, commit.strip()


def install_deform_attn_standin() -> None:
    """A ``MultiScaleDeformableAttention`` module routing to the authors' ``ms_deform_attn_core_pytorch``."""
    import torch

    def core():
        from models.ops.functions.ms_deform_attn_func import ms_deform_attn_core_pytorch

        return ms_deform_attn_core_pytorch

    def forward(value, shapes, level_start, locations, weights, im2col_step):
        return core()(value, shapes, locations, weights)

    def backward(value, shapes, level_start, locations, weights, grad_output, im2col_step):
        inputs = [t.detach().requires_grad_() for t in (value, locations, weights)]
        with torch.enable_grad():
            out = core()(inputs[0], shapes, inputs[1], inputs[2])
        return torch.autograd.grad(out, inputs, grad_output)

    module = types.ModuleType("MultiScaleDeformableAttention")
    module.ms_deform_attn_forward, module.ms_deform_attn_backward = forward, backward
    sys.modules["MultiScaleDeformableAttention"] = module


def authors_args(src: str, text_encoder: str, size: Tuple[int, int]) -> Dict[str, Any]:
    """Their ``configs/joint.yaml`` (the ``value`` of each key), on the CPU, Swin-T, no pretrained files, the
    eval resize (short side, long side) ``size`` (theirs: 360, 640)."""
    import yaml

    with open(os.path.join(src, AUTHORS_CONFIG)) as f:
        raw = yaml.safe_load(f)
    args = {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in raw.items()}
    args.update(
        backbone="video-swin-t",
        backbone_pretrained_path=None,
        use_checkpoint=False,
        device="cpu",
        text_encoder_type=text_encoder,
        eval_short_size=min(size),
        eval_max_size=max(size),
    )
    return args


def swin_t_args(cfg) -> Dict[str, Any]:
    """Our config's Video Swin arguments in the authors' ``configs["video-swin-t"]`` form."""
    v = cfg.MODEL.VIDEO_SWIN
    return dict(
        patch_size=tuple(v.PATCH_SIZE), embed_dim=v.EMBED_DIM, depths=list(v.DEPTHS),
        num_heads=list(v.NUM_HEADS), window_size=tuple(v.WINDOW_SIZE), mlp_ratio=v.MLP_RATIO,
        qkv_bias=True, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=v.DROP_PATH_RATE,
        patch_norm=True, use_checkpoint=False,
    )  # fmt: skip


def build_authors(src: str, args: Dict[str, Any], swin: Dict[str, Any], seed: int):
    """Their (model, criterion, post-processor) from ``models.build_model``, built under ``seed``."""
    import torch

    install_deform_attn_standin()
    sys.path.insert(0, src)
    import models
    import models.video_swin_transformer as vst

    official = vst.configs["video-swin-t"]
    changed = {k: (official.get(k), v) for k, v in swin.items() if official.get(k) != v}
    if changed:
        print(f"authors' Swin-T dict: replaced {changed}")
    official.clear()
    official.update(swin)
    torch.manual_seed(seed)
    return models.build_model(Namespace(**args))


def authors_module(src: str, relpath: str, name: str) -> types.ModuleType:
    """One file of their repo as a module, without running its package's ``__init__``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(src, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- ours
def our_cfg(args: Dict[str, Any]):
    """``soc_swin_t_joint.yaml`` with every hyper-parameter of the authors' ``args``
    (:func:`soc.checkpoint.apply_official_config`), on the CPU in float32, no weight files, their eval size.
    """
    from soc.checkpoint import apply_official_config
    from soc.config import check_soc_config, setup_cfg

    cfg = setup_cfg(CONFIG)
    cfg.defrost()
    apply_official_config(cfg, args)
    cfg.merge_from_list(
        ["MODEL.WEIGHTS", "", "MODEL.VIDEO_SWIN.PRETRAINED", "", "MODEL.DEVICE", "cpu"]
        + ["MODEL.SOC.TEST.PRECISION", "fp32"]
        + ["INPUT.MIN_SIZE_TEST", args["eval_short_size"], "INPUT.MAX_SIZE_TEST", args["eval_max_size"]]
    )
    check_soc_config(cfg)
    cfg.freeze()
    return cfg


def make_text_encoder(folder: str, tokenizer: str) -> None:
    """A randomly initialised RoBERTa-base and a RoBERTa tokenizer in ``folder``."""
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    # roberta-base's sizes (RobertaConfig() keeps BERT's vocabulary, positions and epsilon)
    config = RobertaConfig(
        vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5
    )
    RobertaModel(config).save_pretrained(folder)
    tok = RobertaTokenizerFast.from_pretrained(tokenizer)
    assert len(tok) <= config.vocab_size, "tokenizer ids beyond the vocabulary"
    tok.save_pretrained(folder)


# ---------------------------------------------------------------------------------------------- memory
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_above(fn: Callable[[], Any]) -> Tuple[Any, Optional[float]]:
    """``fn()`` and the peak resident set size above the one before it, in bytes (None if not measurable)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError, AttributeError):  # the same under tcmalloc (soc.utils.allocator)
        ctypes.CDLL(None).MallocExtension_ReleaseFreeMemory()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = _status_kb("VmRSS")
    except OSError:
        return fn(), None
    out = fn()
    return out, (_status_kb("VmHWM") - base) * 1024.0


# ---------------------------------------------------------------------------------------------- benchmark
class Bench:
    """Both models, the clip, the target, and one callable per (row, implementation)."""

    def __init__(self, a: argparse.Namespace, tmp: str):
        import numpy as np
        import torch
        from detectron2.data import transforms as T
        from detectron2.modeling import build_model

        import soc.modeling  # noqa: F401  (registers SOC)
        from soc.checkpoint import convert_official_state_dict

        self.a = a
        src, self.authors_commit = authors_source(a.authors_repo, tmp)
        text_encoder = os.path.join(tmp, "roberta")
        torch.manual_seed(a.seed)
        make_text_encoder(text_encoder, a.tokenizer)
        self.args = authors_args(src, text_encoder, (a.height, a.width))
        self.cfg = our_cfg(self.args)
        t0 = time.perf_counter()
        self.theirs, self.criterion, self.post = build_authors(src, self.args, swin_t_args(self.cfg), a.seed)
        self.misc = sys.modules["misc"]
        tv = authors_module(src, "datasets/transforms.py", "authors_transforms")
        import torchvision.transforms as tvt

        self.their_resize = tv.RandomResize(
            sizes=[self.args["eval_short_size"]], max_size=self.args["eval_max_size"]
        )
        self.their_transform = tvt.Compose(
            [tvt.ToTensor(), tvt.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
        )
        self.ours = build_model(self.cfg)
        converted, unplaced, dropped = convert_official_state_dict(self.theirs.state_dict())
        if unplaced:
            raise RuntimeError(f"converter left official keys unplaced: {unplaced[:5]}")
        self.ours.load_state_dict(converted, strict=True)
        self.build_seconds = time.perf_counter() - t0
        self.params = sum(p.numel() for p in self.ours.parameters())
        self.ours.eval()
        self.theirs.eval()

        # the clip: random RGB frames at the original size, and the resized uint8 clip (ours: the predictor's
        # resize) the network forward and the training step start from
        g = np.random.default_rng(a.seed)
        self.video = g.integers(0, 256, (a.frames, a.orig_height, a.orig_width, 3), dtype=np.uint8)
        self.resize = T.ResizeShortestEdge(self.cfg.INPUT.MIN_SIZE_TEST, self.cfg.INPUT.MAX_SIZE_TEST)
        resized = self._our_resize(self.video)
        self.input_size = tuple(resized.shape[-2:])
        if self.input_size != (a.height, a.width):
            raise ValueError(
                f"{a.orig_height}x{a.orig_width} resizes to {self.input_size}, not {a.height}x{a.width}"
            )
        self.clip = resized  # (T, 3, H, W) uint8
        with torch.no_grad():
            self.images, self.pad_mask, self.sizes = self.ours.preprocess([self.clip])
        self.target = self._random_target(g)

    # -------------------------------------------------------------------- inputs
    def _our_resize(self, video):
        import numpy as np
        import torch

        tfm = self.resize.get_transform(video[0])
        return (
            torch.from_numpy(np.stack([tfm.apply_image(f) for f in video])).permute(0, 3, 1, 2).contiguous()
        )

    def _random_target(self, g) -> Dict[str, Any]:
        """One object in every frame: a random box (normalised cxcywh of its inclusive pixels), its mask."""
        import torch

        T, (H, W) = self.a.frames, self.input_size
        masks = torch.zeros(T, H, W, dtype=torch.bool)
        boxes = torch.zeros(T, 4)
        for t in range(T):
            h, w = int(g.integers(H // 8, H // 2)), int(g.integers(W // 8, W // 2))
            y, x = int(g.integers(0, H - h)), int(g.integers(0, W - w))
            masks[t, y : y + h, x : x + w] = True
            x1, y1, x2, y2 = x, y, x + w - 1, y + h - 1
            boxes[t] = torch.tensor([(x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H])
        return {"masks": masks, "boxes": boxes, "is_visible": torch.ones(T, dtype=torch.bool)}

    def _their_samples(self, images):
        """Their NestedTensor (T, B=1, 3, H, W) from (T, 3, H, W) normalised frames (no padding)."""
        import torch

        T, _, H, W = images.shape
        return self.misc.NestedTensor(images[:, None], torch.zeros(T, 1, H, W, dtype=torch.bool))

    def _their_normalise(self, clip):
        """The clip as their transform produces it from PIL frames (ToTensor, Normalize)."""
        from PIL import Image

        import torch

        return torch.stack([self.their_transform(Image.fromarray(f.permute(1, 2, 0).numpy())) for f in clip])

    def _their_targets(self, train: bool) -> List[Tuple[Dict[str, Any]]]:
        import torch

        size = torch.tensor(self.input_size)
        if not train:
            return [({"size": size},) for _ in range(self.a.frames)]
        tg = self.target
        return [
            (
                {
                    "masks": tg["masks"][t][None], "boxes": tg["boxes"][t][None],
                    "referred_instance_idx": torch.tensor(0), "is_ref_inst_visible": torch.tensor(True),
                    "labels": torch.tensor([0]), "size": size, "orig_size": size,
                    "iscrowd": torch.tensor([0]),
                },
            )
            for t in range(self.a.frames)
        ]  # fmt: skip

    # -------------------------------------------------------------------- the timed calls
    def forward_ours(self):
        import torch

        with torch.no_grad():
            return self.ours.forward_network(self.images, self.pad_mask, [EXPRESSION], self.sizes)

    def forward_theirs(self):
        import torch

        images = self.images[0]  # (T, 3, H, W), the same normalised frames
        with torch.no_grad():
            return self.theirs(self._their_samples(images), None, [EXPRESSION], self._their_targets(False))

    def e2e_ours(self):
        clip = self._our_resize(self.video)
        x = {
            "frames": clip,
            "expression": EXPRESSION,
            "height": self.a.orig_height,
            "width": self.a.orig_width,
        }
        return self.ours([x])[0]["pred_masks"]

    def e2e_ours_bf16(self):
        previous, self.ours.precision = self.ours.precision, "bf16"  # what MODEL.SOC.TEST.PRECISION sets
        try:
            return self.e2e_ours()
        finally:
            self.ours.precision = previous

    def e2e_theirs(self):
        import torch
        from PIL import Image

        imgs = [self.their_transform(self.their_resize(Image.fromarray(f))[0]) for f in self.video]
        imgs = torch.stack(imgs)
        samples = self.misc.nested_tensor_from_videos_list([imgs])
        h, w = imgs.shape[-2:]
        targets = [({"size": torch.tensor([h, w])},) for _ in range(len(imgs))]
        with torch.no_grad():
            outputs = self.theirs(samples, None, [EXPRESSION], targets)
        meta = [
            {"resized_frame_size": (h, w), "original_frame_size": (self.a.orig_height, self.a.orig_width)}
        ]
        return self.post(outputs, meta, samples.tensors.shape[-2:])[0]["pred_masks"][:, 0].bool()

    def train_ours(self, precision: str = "fp32") -> float:
        """One training step of ours; ``precision`` "bf16" runs the forward under the trainer's
        ``AutocastForward`` (what ``SOLVER.AMP.ENABLED`` with ``SOLVER.AMP.DTYPE bf16`` trains with)."""
        from soc.engine.trainer import AutocastForward
        from soc.utils.precision import PRECISIONS

        dtype = PRECISIONS[precision]
        model = self.ours if dtype is None else AutocastForward(self.ours, "cpu", dtype)
        model.train()
        try:
            batch = [
                {"frames": self.clip, "expression": EXPRESSION, "height": self.input_size[0],
                 "width": self.input_size[1], "targets": self.target}
            ]  # fmt: skip
            total = sum(model(batch).values())
            total.backward()
            return float(total.detach())
        finally:
            self.ours.eval()

    def train_theirs(self) -> float:
        self.theirs.train()
        self.criterion.train()
        try:
            targets = self._their_targets(True)
            samples = self._their_samples(self._their_normalise(self.clip))
            outputs = self.theirs(samples, None, [EXPRESSION], targets)
            losses = self.criterion(outputs, targets)
            weights = self.criterion.weight_dict
            total = sum(losses[k] * weights[k] for k in losses if k in weights)
            total.backward()
            return float(total.detach())
        finally:
            self.theirs.eval()

    def clear_grads(self) -> None:
        for m in (self.ours, self.theirs):
            m.zero_grad(set_to_none=True)

    # -------------------------------------------------------------------- agreement
    def agreement(self) -> Dict[str, Any]:
        """Max differences of one eval forward on the same normalised clip, and of the end-to-end masks."""
        from soc.modeling.postprocessing import select_query

        ours, theirs = self.forward_ours(), self.forward_theirs()
        out: Dict[str, Any] = {}
        for key in ("pred_cls", "pred_boxes", "pred_masks"):
            o, t = ours[key].double(), theirs[key].double()
            if o.shape != t.shape:
                raise RuntimeError(f"{key}: shape {tuple(o.shape)} vs {tuple(t.shape)}")
            out[f"{key} max abs diff"] = (o - t).abs().max().item()
            out[f"{key} max abs"] = t.abs().max().item()
        out["selected query (ours, authors)"] = [
            select_query(ours["pred_cls"][:, 0])[1],
            select_query(theirs["pred_cls"][:, 0])[1],
        ]
        memory: Dict[str, Optional[float]] = {}
        m_ours, memory["ours"] = peak_above(self.e2e_ours)
        m_theirs, memory["authors"] = peak_above(self.e2e_theirs)
        m_bf16 = self.e2e_ours_bf16()
        out["peak memory inference (bytes)"] = memory
        out["end-to-end masks: pixels differing"] = int((m_ours != m_theirs).sum())
        out["end-to-end masks: pixels"] = m_ours.numel()
        out["end-to-end masks: IoU ours/authors"] = _iou(m_ours, m_theirs)
        out["end-to-end masks: IoU ours bf16/ours fp32"] = _iou(m_bf16, m_ours)
        return out


def _iou(a, b) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def run(a: argparse.Namespace) -> Dict[str, Any]:
    import torch

    torch.set_num_threads(a.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="soc_bench_authors_") as tmp:
        b = Bench(a, tmp)
        print(f"built both models in {b.build_seconds:.1f} s ({b.params / 1e6:.1f} M parameters each)")
        agreement = b.agreement()
        print("agreement (eval forward on the same clip; end-to-end masks):")
        for k, v in agreement.items():
            if k.startswith("peak memory"):
                continue
            print(f"  {k}: {v:.3g}" if isinstance(v, float) else f"  {k}: {v}")

        rows: Dict[str, Dict[str, Callable[[], Any]]] = {
            "network forward": {"ours": b.forward_ours, "authors": b.forward_theirs},
            "end to end": {"ours": b.e2e_ours, "authors": b.e2e_theirs},
            "training step": {"ours": b.train_ours, "authors": b.train_theirs},
            "end to end bf16": {"ours": b.e2e_ours_bf16},
            "training step bf16": {"ours": lambda: b.train_ours("bf16")},
        }
        # the agreement check was the warm-up of the inference rows (and measured their peak memory); the
        # training steps' warm-up measures theirs
        memory = {"inference": agreement.pop("peak memory inference (bytes)"), "training": {}}
        for name, fn in (("ours", b.train_ours), ("authors", b.train_theirs)):
            b.clear_grads()
            memory["training"][name] = peak_above(fn)[1]
        times: Dict[str, Dict[str, List[float]]] = {
            row: {name: [] for name in fns} for row, fns in rows.items()
        }
        loads = []
        for r in range(a.repeat):
            for row, fns in rows.items():
                order = list(fns.items()) if r % 2 == 0 else list(fns.items())[::-1]
                for name, fn in order:
                    b.clear_grads()
                    t0 = time.perf_counter()
                    fn()
                    dt = time.perf_counter() - t0
                    times[row][name].append(dt)
                    print(f"  round {r + 1} {row:16} {name:8} {dt:7.2f} s", flush=True)
            loads.append(os.getloadavg())
        b.clear_grads()
        stages = our_stages(b) if a.stages else None
    return report(a, b, times, memory, agreement, stages, [load_before] + loads)


def our_stages(b: Bench) -> Dict[str, float]:
    """Seconds per stage of one fp32 end-to-end run of ours (bench_inference's forward hooks)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_inference import StageClock

    clock = StageClock(b.ours)
    t0 = time.perf_counter()
    b.e2e_ours()
    total = time.perf_counter() - t0
    clock.remove()
    stages = dict(clock.seconds)
    stages["other (resize, normalisation, post-processing)"] = total - sum(stages.values())
    stages["total"] = total
    return stages


def report(a, b: Bench, times, memory, agreement, stages, loads) -> Dict[str, Any]:
    """The table (best of the rounds; ratios also per round), the goals, and the JSON record."""
    import torch
    import transformers

    from soc.layers import ms_deform_attn_backend

    table = []
    for row, t in times.items():
        # bf16 rows: ratios to the authors' fp32 row of the same kind
        theirs = t.get("authors", times[row.replace(" bf16", "")]["authors"])
        ours, best = t["ours"], min(theirs)
        table.append(
            {
                "row": row, "unit": "s", "ours": min(ours), "authors": best, "ratio": min(ours) / best,
                "ratio_per_round": [o / x for o, x in zip(ours, theirs)],
                "ours_per_round": ours, "authors_per_round": theirs,
            }
        )  # fmt: skip
    gb = 2.0**30
    for kind, m in memory.items():
        o, t = m["ours"], m["authors"]
        table.append(
            {
                "row": f"peak memory {kind} (GB)",
                "unit": "GB",
                "ours": None if o is None else o / gb,
                "authors": None if t is None else t / gb,
                "ratio": None if o is None or t is None else o / t,
            }
        )
    goals = {}
    ratios = {r["row"]: r["ratio"] for r in table}
    for row, goal in GOALS.items():
        goals[f"{row} <= {goal}x authors' fp32"] = ratios[row] <= goal
    for kind, limit in MEMORY_GOALS_GB.items():
        o = memory[kind]["ours"]
        goals[f"peak memory {kind} <= {limit} GB"] = None if o is None else o / gb <= limit

    print(
        f"\n{a.frames} frames {a.orig_height}x{a.orig_width} -> {a.height}x{a.width}, {a.threads} threads, "
        f"best of {a.repeat}; load average (1/5/15 min) before and after each round "
        f"{', '.join(_fmt_load(x) for x in loads)}"
    )
    print(f"{'':38} {'ours':>9} {'authors':>9} {'ratio':>8}   per round   earlier (ours / authors)")
    for r in table:
        earlier = EARLIER.get(r["row"])
        e = f"{earlier[0]:.1f} / {earlier[1]:.1f}" if earlier else ""
        label = r["row"] + (" (vs authors' fp32)" if r["row"].endswith(" bf16") else "")
        ours, theirs, ratio = _fmt(r["ours"]), _fmt(r["authors"]), _fmt(r["ratio"], 3)
        rounds = "/".join(f"{x:.2f}" for x in r.get("ratio_per_round", []))
        print(f"{label:38} {ours} {theirs} {ratio}x   {rounds:11} {e}")
    print("goals:")
    for k, v in goals.items():
        print(f"  {k}: {'met' if v else 'NOT met' if v is not None else 'not measured'}")
    if stages:
        print("ours, fp32 end to end per stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    return {
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "authors_commit": b.authors_commit,
        "frames": a.frames,
        "original_size": [a.orig_height, a.orig_width],
        "input_size": [a.height, a.width],
        "threads": a.threads,
        "repeat": a.repeat,
        "load_average_before_and_after_each_round": [list(x) for x in loads],
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},  # fmt: skip
        "our_ms_deform_attn": ms_deform_attn_backend(torch.device("cpu")),
        "authors_ms_deform_attn": "ms_deform_attn_core_pytorch (their pure-PyTorch reference) via a stand-in",
        "parameters": b.params,
        "seconds_and_ratios": table,
        "memory_method": "VmHWM after the warm-up call minus VmRSS before it; gc + malloc_trim / tcmalloc "
        "release + clear_refs=5 before each",
        "goals": goals,
        "agreement": agreement,
        "our_stages_seconds": stages,
        "earlier": {k: list(v) for k, v in EARLIER.items()},
    }


def _fmt(v: Optional[float], digits: int = 2) -> str:
    return f"{'n/a':>9}" if v is None else f"{v:9.{digits}f}"


def _fmt_load(load) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--authors-repo", required=True, help="checkout of NeurIPS2023_SOC, or its bare git dir")
    p.add_argument("--tokenizer", default="/work/shared/parity/tokenizer", help="a RoBERTa tokenizer folder")
    p.add_argument("--extra-path", action="append", default=[], help="folder added to sys.path (e.g. einops)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--height", type=int, default=360, help="model input height (the authors' eval resize)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--orig-height", type=int, help="original frame height (default 2 x --height)")
    p.add_argument("--orig-width", type=int, help="original frame width (default 2 x --width)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-stages", dest="stages", action="store_false", help="skip our per-stage times")
    p.add_argument("--json", metavar="FILE")
    a = p.parse_args()
    a.orig_height = a.orig_height or 2 * a.height
    a.orig_width = a.orig_width or 2 * a.width
    for path in a.extra_path:
        sys.path.insert(0, os.path.abspath(path))
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    result = run(a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    from soc.utils.allocator import reexec_with_tcmalloc  # first: re-executes with tcmalloc (see there)

    reexec_with_tcmalloc()
    main()
