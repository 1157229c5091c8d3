"""Lightning callbacks: evaluation figures (confusion matrix, prediction grid)."""

from transferlab.callbacks.figures import EvaluationFigures

__all__ = ["EvaluationFigures"]
