"""The preprocessing a backbone's weights expect; DataModules build their transforms from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing the weights were trained with (timm's ``pretrained_cfg`` subset)."""

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_size: int = 224
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    def to_dict(self) -> dict:
        return asdict(self)
