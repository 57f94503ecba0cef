"""Convert an authors' SOC checkpoint (``*.pth.tar`` / bare state_dict) to a detectron2 checkpoint.

    soc-convert-checkpoint ytb_joint_train_swin_b.pth.tar soc_swin_b_joint.pth

(``python tools/convert_soc_checkpoint.py ...`` runs the same.) The output loads with ``MODEL.WEIGHTS`` (no
missing/unexpected keys). ``SOCCheckpointer`` can also read the authors' file directly, converting on the fly;
this command makes the conversion explicit and reports it. The input is read without running any code it may
ask for (``soc.checkpoint.load_weights_file``).
"""

import argparse
import sys
from typing import List, Optional

from soc.checkpoint.convert import convert_checkpoint_file

__all__ = ["get_parser", "main"]


def get_parser() -> argparse.ArgumentParser:
    """The arguments of ``soc-convert-checkpoint``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "input", help="the authors' checkpoint (.pth.tar with model_state_dict, or a state_dict)"
    )
    parser.add_argument("output", help="where to write the converted checkpoint ({'model': ...})")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="write even if some keys cannot be placed (they are listed)",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Convert and report; returns 0, or 1 after printing ``error: <message>`` (naming the file) to stderr."""
    args = get_parser().parse_args(argv)
    try:
        report = convert_checkpoint_file(args.input, args.output, allow_partial=args.allow_partial)
    except (ValueError, OSError) as e:  # the message names the file; no traceback to decode
        print(f"error: {e}", file=sys.stderr)
        return 1
    v = report["variant"]
    print(
        f"wrote {args.output}: {report['num_tensors']} tensors; Video-Swin-{v['swin']} "
        f"(embed {v['embed_dim']}, depths {v['depths']}), d_model {v['hidden_dim']}, "
        f"{v['num_queries']} queries, num_classes {v['num_classes']}, text width {v['text_hidden_size']}"
    )
    print(f"dropped {len(report['dropped'])} keys (duplicates / position_ids / thop counters)")
    if report["unplaced"]:
        print(f"WARNING: {len(report['unplaced'])} keys left out: {report['unplaced']}", file=sys.stderr)
    return 0
