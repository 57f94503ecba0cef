"""Evaluation: pure metrics (``metrics``), the benchmarks' evaluators and ``build_evaluator``."""

from .a2d_evaluator import A2DSentencesEvaluator, JHMDBSentencesEvaluator
from .build import build_evaluator
from .ref_davis_evaluator import RefDAVISEvaluator
from .refvos_evaluator import RefVOSEvaluator

__all__ = [
    "build_evaluator",
    "RefVOSEvaluator",
    "RefDAVISEvaluator",
    "A2DSentencesEvaluator",
    "JHMDBSentencesEvaluator",
]
