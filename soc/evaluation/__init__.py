"""Evaluation: pure metrics (``metrics``), the benchmarks' evaluators, ``build_evaluator`` and the
evaluation of PNG folders (``folder_eval``, behind ``tools/eval_jf.py``)."""

from .a2d_evaluator import A2DSentencesEvaluator, JHMDBSentencesEvaluator
from .build import build_evaluator
from .folder_eval import evaluate_folders
from .long_rvos import LongRVOSEvaluator, evaluate_long_rvos_folder
from .mevis_evaluator import MevisEvaluator, ReVOSEvaluator
from .ref_davis_evaluator import RefDAVISEvaluator
from .refvos_evaluator import RefVOSEvaluator

__all__ = [
    "build_evaluator",
    "RefVOSEvaluator",
    "RefDAVISEvaluator",
    "A2DSentencesEvaluator",
    "JHMDBSentencesEvaluator",
    "LongRVOSEvaluator",
    "MevisEvaluator",
    "ReVOSEvaluator",
    "evaluate_folders",
    "evaluate_long_rvos_folder",
]
