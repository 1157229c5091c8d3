"""transferlab: transfer learning for computer vision on PyTorch Lightning + Hydra."""

from transferlab.contracts.errors import TransferlabError

__version__ = "0.1.0"
__all__ = ["TransferlabError", "__version__"]
