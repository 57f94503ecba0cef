#!/usr/bin/env python
"""Per-expression J&F of predicted PNG masks against ground-truth PNGs; also installed as ``soc-eval-jf``.

    python tools/eval_jf.py --pred out/Annotations --gt gt/Annotations [--json scores.json]

See :mod:`soc.cli.eval_jf` (``--help``) for the layouts and options.
"""

from soc.cli.eval_jf import main

if __name__ == "__main__":
    main()
