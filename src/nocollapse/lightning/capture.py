"""Embeddings read by forward hooks, for a module whose ``training_step`` returns only the loss.

``CollapseCallback(embeddings="projection_head")`` hooks the named submodule: each call of
it during one training step adds its output (detached: no copy, the graph untouched) to a
list; the first two calls are the two views (lightly's SimSiam and BYOL call
``forward`` once per view), one call on ``2B`` rows is split in half (a module that
concatenates the views). A hook on the module's ``criterion`` (lightly's name for the
loss) reads the loss's inputs: one that carries no gradient is the detached target, so
the stop-gradient is inferred as the callback infers it from returned embeddings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nocollapse.errors import ConfigError
from nocollapse.monitor import MonitorInputError

CRITERION_ATTRIBUTE = "criterion"  # lightly's name for the loss module


def submodule(module: nn.Module, name: str) -> nn.Module:
    """``module``'s submodule at the dotted ``name``; a ConfigError names what it has."""
    try:
        found = module.get_submodule(name)
    except AttributeError:
        children = ", ".join(n for n, _ in module.named_children()) or "none"
        raise ConfigError(f"embeddings={name!r}: the LightningModule {type(module).__name__} "
                          f"has no submodule {name!r} (its children: {children})") from None
    return found


class Capture:
    """Forward hooks that keep one training step's embeddings and the loss's inputs."""

    def __init__(self) -> None:
        self.embeddings: list[torch.Tensor] = []
        self.criterion_inputs: list[torch.Tensor] | None = None
        self.active = False
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.name = ""

    def attach(self, module: nn.Module, name: str) -> None:
        """Hook ``module``'s submodule ``name`` and, when there is one, its criterion."""
        self.remove()
        self.name = name
        self._handles.append(submodule(module, name).register_forward_hook(self._embedding))
        criterion = getattr(module, CRITERION_ATTRIBUTE, None)
        if isinstance(criterion, nn.Module):
            self._handles.append(criterion.register_forward_hook(self._criterion))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def start(self) -> None:
        """A training step begins: forget the previous one's tensors, record this one's."""
        self.embeddings, self.criterion_inputs, self.active = [], None, True

    def stop(self) -> None:
        """The step ended: record nothing until the next one (validation, prediction)."""
        self.embeddings, self.criterion_inputs, self.active = [], None, False

    def views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's two views' embeddings (MonitorInputError when the hook saw none)."""
        found = self.embeddings
        if len(found) >= 2:
            return found[0], found[1]
        if len(found) == 1 and found[0].dim() >= 1 and found[0].shape[0] % 2 == 0:
            first, second = found[0].chunk(2)
            return first, second
        raise MonitorInputError(
            f"the module's {self.name} was called {len(found)} time(s) in training_step with "
            "a tensor output; the hook needs one call per view (or one on both views "
            "concatenated)")

    def targets(self) -> list[torch.Tensor] | None:
        """The loss's inputs that carry no gradient (the detached targets), or all of them
        when each carries gradient; ``None`` when no criterion was hooked or called."""
        inputs = self.criterion_inputs
        if not inputs:
            return None
        detached = [t for t in inputs if not t.requires_grad]
        return detached or inputs

    def _embedding(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        if self.active and torch.is_grad_enabled() and isinstance(output, torch.Tensor):
            self.embeddings.append(output.detach())

    def _criterion(self, _module: nn.Module, inputs: Any, _output: Any) -> None:
        if self.active and torch.is_grad_enabled() and self.criterion_inputs is None:
            # the first call of the step is enough (a symmetric loss calls it twice)
            self.criterion_inputs = [t for t in inputs if isinstance(t, torch.Tensor)]
