#!/usr/bin/env python
"""Convert an authors' SOC checkpoint to a detectron2 checkpoint (installed as ``soc-convert-checkpoint``).

    python tools/convert_soc_checkpoint.py ytb_joint_train_swin_b.pth.tar soc_swin_b_joint.pth

See :mod:`soc.cli.convert_checkpoint` (``--help``).
"""

import sys

from soc.cli.convert_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
