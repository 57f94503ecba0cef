"""Per-expression J&F of predicted PNG masks against ground-truth PNGs (Ref-YouTube-VOS protocol).

    soc-eval-jf --pred out/Annotations --gt gt/Annotations [--json scores.json] [--missing empty]
    soc-eval-jf --pred out/Annotations --gt ref-youtube-vos/train/Annotations \\
        --meta-expressions ref-youtube-vos/meta_expressions/train/meta_expressions.json

(``python tools/eval_jf.py ...`` runs the same.) Layouts and scoring are those of
:mod:`soc.evaluation.folder_eval`: predictions ``<pred>/<video>/<exp_id>/<frame>.png`` (non-zero =
foreground); GT in the same binary layout, or palette PNGs ``<gt>/<video>/<frame>.png`` with
``--meta-expressions`` giving each expression's ``obj_id``. Prints a table in percent, how many (and which)
predicted sequences the GT lacks, and the means as fractions; a missing or inconsistent file, or a prediction
that is not a single-channel PNG, is an error naming it.
"""

import argparse
import json
import os
import sys
from typing import List, Optional

from soc.data.io import DataError
from soc.evaluation.folder_eval import MISSING_POLICIES, evaluate_folders, format_table

__all__ = ["get_parser", "main"]


def get_parser() -> argparse.ArgumentParser:
    """The arguments of ``soc-eval-jf``."""
    parser = argparse.ArgumentParser(description="per-expression J&F of PNG masks (Ref-YouTube-VOS protocol)")
    parser.add_argument("--pred", required=True, help="predictions: <pred>/<video>/<exp_id>/<frame>.png")
    parser.add_argument(
        "--gt",
        required=True,
        help="GT: <gt>/<video>/<exp_id>/<frame>.png, or palette "
        "<gt>/<video>/<frame>.png with --meta-expressions",
    )
    parser.add_argument(
        "--meta-expressions",
        metavar="FILE",
        help="meta_expressions.json with an obj_id per expression; selects the palette GT layout",
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        help="write {J, F, J&F, sequences: {<video>/<exp_id>: {J, F}}, unscored_predictions: [...]}",
    )
    parser.add_argument(
        "--missing",
        choices=MISSING_POLICIES,
        default="error",
        help="a missing prediction PNG: an error (default) or an empty mask",
    )
    parser.add_argument(
        "--bound-th",
        type=float,
        default=0.008,
        help="boundary tolerance: fraction of the diagonal (< 1) or pixels (>= 1)",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Score the folders and print the table; returns 0. A missing or malformed file exits with
    ``error: <message>`` (status 1)."""
    args = get_parser().parse_args(argv)
    try:
        scores = evaluate_folders(args.pred, args.gt, args.meta_expressions, args.missing, args.bound_th)
    except (DataError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(format_table(scores))
    n = len(scores["sequences"])
    print(f"{n} expressions: J&F {scores['J&F']:.6f}  J {scores['J']:.6f}  F {scores['F']:.6f}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=1)
    return 0
