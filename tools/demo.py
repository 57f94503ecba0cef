#!/usr/bin/env python
"""Segment what expressions refer to in one or several videos; also installed as ``soc-demo``.

    python tools/demo.py --config-file projects/SOC/configs/ref_ytvos/soc_swin_t_joint.yaml \\
        --input video.mp4 --text "the dog on the left" --text "a man in red" --output out/ \\
        --opts MODEL.WEIGHTS model.pth

See :mod:`soc.cli.demo` (``--help``) for the inputs, the outputs and the options.
"""

import sys

from soc.cli.demo import main

if __name__ == "__main__":
    from soc.utils.allocator import reexec_with_tcmalloc  # first: re-executes with tcmalloc (see there)

    reexec_with_tcmalloc()
    sys.exit(main())
