#!/usr/bin/env python
"""Select ``MODEL.SOC.TEST.NO_TARGET_THRESHOLD`` (MeViS no-target decision) on a held-out split with masks.

    python tools/select_no_target_threshold.py --dataset mevis2_valid_u \\
        --config-file projects/SOC/configs/mevis/soc_swin_t_scratch.yaml MODEL.WEIGHTS model_final.pth

See :mod:`soc.cli.select_no_target_threshold`.
"""

import sys

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py)
from soc.cli.select_no_target_threshold import main

if __name__ == "__main__":
    from soc.utils.allocator import reexec_with_tcmalloc  # first: re-executes with tcmalloc (see there)

    reexec_with_tcmalloc()
    sys.exit(main())
