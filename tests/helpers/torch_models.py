"""Tiny torch modules for the pytorch flavor's tests (and the tensor-input spark_udf tests).

They live in an importable module because a pickled ``nn.Module`` refers to its class by name:
subprocesses and Spark workers import this module to load them. Each ``make_*`` builds one with
fixed weights (seeded), so two processes build the same model.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn


class MLP(nn.Module):
    """``(N, n_in)`` float32 → ``(N, n_out)``."""

    def __init__(self, n_in: int = 3, hidden: int = 8, n_out: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TinyCNN(nn.Module):
    """``(N, 3, 8, 8)`` float32 images → ``(N, 2)`` scores."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.head(x.flatten(1))


class TwoInputs(nn.Module):
    """``forward(numbers (N, 3), extra (N, 4))`` → ``(N, 2)``: a multi-input model."""

    def __init__(self):
        super().__init__()
        self.numbers_layer = nn.Linear(3, 2)
        self.extra_layer = nn.Linear(4, 2)

    def forward(self, numbers: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.numbers_layer(numbers) - 2 * self.extra_layer(extra)


class ModeRecorder(nn.Module):
    """``x * 2 * factor``; records, per call, the autograd mode, its ``training`` flag, the thread
    count and the input's dtype and device."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.seen: list[dict] = []

    def forward(self, x: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
        self.seen.append({"inference_mode": torch.is_inference_mode_enabled(), "grad": torch.is_grad_enabled(),
                          "training": self.training, "threads": torch.get_num_threads(),
                          "input_dtype": str(x.dtype), "device": str(x.device)})
        return x * self.scale * factor


class ThreadProbe(nn.Module):
    """``(N, k)`` → ``(N, 1)`` holding the number of threads torch runs with during the call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1), float(torch.get_num_threads()))


class TupleOutput(nn.Module):
    """Returns two tensors, which the pyfunc form does not take."""

    def forward(self, x: torch.Tensor):
        return x, x + 1


class WritesOnLoad(nn.Module):
    """Scripted, it writes ``marker`` (with TorchScript's ``aten::save``) whenever it is loaded:
    the proof that ``torch.jit.load`` runs code carried by the archive."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.weight = torch.ones(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> List[str]:
        return [self.marker]

    @torch.jit.export
    def __setstate__(self, state: List[str]) -> None:
        self.marker = state[0]
        self.weight = torch.ones(3)
        self.training = False
        torch.ops.aten.save(self.weight, self.marker)


def seeded(cls, seed: int = 0, **kwargs) -> nn.Module:
    """``cls(**kwargs)`` with weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return cls(**kwargs)


def make_mlp(seed: int = 0, **kwargs) -> MLP:
    return seeded(MLP, seed, **kwargs)


def make_cnn(seed: int = 0) -> TinyCNN:
    model = seeded(TinyCNN, seed)
    with torch.no_grad():  # non-trivial running statistics, so eval mode matters
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


def make_two_inputs(seed: int = 0) -> TwoInputs:
    return seeded(TwoInputs, seed)


class InferenceProbe(nn.Module):
    """``(N, k)`` → ``(N,)``: 1.0 when the call runs in inference mode, without autograd, in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ok = torch.is_inference_mode_enabled() and not torch.is_grad_enabled() and not self.training
        return torch.full((x.shape[0],), 1.0 if ok else 0.0)
