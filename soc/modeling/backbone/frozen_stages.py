"""A backbone whose first stages can be frozen: no gradients, and eval mode (norm statistics, dropout) even
while the rest of the model trains."""

from typing import List

from detectron2.modeling import Backbone
from torch import nn

__all__ = ["FrozenStagesBackbone"]


class FrozenStagesBackbone(Backbone):
    """Subclasses name the frozen modules (:meth:`_frozen_modules`) and call :meth:`freeze` when built."""

    def _frozen_modules(self) -> List[nn.Module]:
        """The frozen modules (with their submodules); empty when nothing is frozen."""
        raise NotImplementedError

    def freeze(self) -> None:
        """Stop the gradients of the frozen modules and put them in eval mode."""
        for module in self._frozen_modules():
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenStagesBackbone":
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self
