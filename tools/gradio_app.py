#!/usr/bin/env python
"""A web demo: upload a video, type expressions (one per line), set the presence threshold → the overlay video
and a zip of the masks (the Ref-YouTube-VOS ``Annotations`` layout).

    pip install 'soc-detectron2[app]'
    python tools/gradio_app.py --config-file projects/SOC/configs/ref_ytvos/soc_swin_t_joint.yaml \\
        --opts MODEL.WEIGHTS model.pth

:func:`segment` does the work and is a plain function (a test calls it without gradio or a server); only
:func:`main` imports gradio.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Optional, Sequence, Tuple

from soc.cli.demo import segment_video
from soc.config import setup_cfg
from soc.engine.predictor import SOCPredictor


def segment(
    predictor: SOCPredictor, video: str, expressions: str, threshold: float, out_dir: str
) -> Tuple[str, str]:
    """Segment ``video`` for each non-blank line of ``expressions``.

    Returns:
        the overlay mp4's path and the path of a zip holding ``Annotations/<video>/<k>/<frame>.png`` and
        ``predictions.json``, both under ``out_dir``.
    """
    texts = [line.strip() for line in (expressions or "").splitlines() if line.strip()]
    if not texts:
        raise ValueError("type at least one expression (one per line)")
    if video is None or not os.path.exists(video):
        raise ValueError("upload a video first")
    if not 0 <= threshold <= 1:
        raise ValueError(f"the presence threshold must be in [0, 1], got {threshold}")
    # the demo's per-video options: every frame, the source's frame rate, no GIF
    args = argparse.Namespace(output=out_dir, every=1, fps=None, score_threshold=threshold, gif=False)
    name = os.path.splitext(os.path.basename(video))[0]
    record = segment_video(predictor, name, video, {str(k): t for k, t in enumerate(texts)}, args)
    with open(os.path.join(out_dir, "predictions.json"), "w") as f:
        json.dump({name: record}, f)
    archive = os.path.join(out_dir, "masks.zip")
    shutil.make_archive(archive[: -len(".zip")], "zip", out_dir, "Annotations")
    return os.path.join(out_dir, "overlays", f"{name}.mp4"), archive


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="SOC web demo (gradio)")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    try:
        import gradio as gr
    except ImportError:
        sys.exit("the web demo needs gradio: pip install 'soc-detectron2[app]'")
    predictor = SOCPredictor(setup_cfg(args.config_file, args.opts))

    def handler(video, expressions, threshold):
        return segment(predictor, video, expressions, threshold, tempfile.mkdtemp(prefix="soc_app_"))

    gr.Interface(
        fn=handler,
        inputs=[
            gr.Video(label="video"),
            gr.Textbox(lines=3, label="expressions, one per line"),
            gr.Slider(0.0, 1.0, value=0.0, label="presence threshold"),
        ],
        outputs=[gr.Video(label="overlay"), gr.File(label="masks (zip)")],
        title="SOC: referring video object segmentation",
    ).launch(server_port=args.port)
    return 0


if __name__ == "__main__":
    from soc.utils.allocator import reexec_with_tcmalloc  # first: re-executes with tcmalloc (see there)

    reexec_with_tcmalloc()
    sys.exit(main())
