"""Data-parallel training under ``torchrun``: the process group, global BatchNorm, gathering outputs.

How a run becomes distributed. ``torchrun`` (``torch.distributed.run``) starts one
process per GPU (or per CPU worker) and gives each the environment variables
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
(https://pytorch.org/docs/stable/elastic/run.html, "Environment Variables").
:func:`setup` reads them: without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) the
run is one ordinary process and nothing is initialised; otherwise it joins the
process group — NCCL with one CUDA device per local rank, gloo on CPU.

What keeps a distributed run equal to one process (docs/distributed.md):

- every rank draws the same data order and augmentation and takes its slice
  of each *global* batch (:class:`Part`, used by :mod:`taxonbench.batches`);
- the model's outputs are gathered back into the global batch
  (:func:`gather_rows`), so every rank computes the one-process loss on the
  whole batch — means over the batch, the contrastive HCCF/CLIP loss and an
  uneven last batch need no per-method rescaling;
- BatchNorm normalises with the statistics of the global batch
  (``torch.nn.SyncBatchNorm`` on CUDA; :class:`GlobalBatchNorm` on CPU, where
  ``SyncBatchNorm`` refuses to run: "SyncBatchNorm expected input tensor to be
  on GPU", ``torch/nn/modules/batchnorm.py``).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from taxonbench.errors import TaxonbenchError

#: the variables torchrun sets for every process it starts
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Part:
    """Rank ``rank``'s share of every global batch among ``world`` processes.

    A batch of ``n`` rows is cut into ``world`` consecutive slices whose sizes
    differ by at most one (the first ``n % world`` ranks take one row more); a
    rank may get no row of a last batch smaller than ``world``.
    """

    rank: int = 0
    world: int = 1

    def sizes(self, n: int) -> list[int]:
        base, extra = divmod(n, self.world)
        return [base + (r < extra) for r in range(self.world)]

    def bounds(self, n: int) -> tuple[int, int]:
        sizes = self.sizes(n)
        lo = sum(sizes[: self.rank])
        return lo, lo + sizes[self.rank]


WHOLE = Part()


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size``, its device and the backend (None: one process)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the checkpoint, the model, the log and prints."""
        return self.rank == 0

    @property
    def part(self) -> Part:
        return Part(self.rank, self.world_size)


def _int_variable(name: str) -> int:
    value = os.environ.get(name)
    if value is None:
        present = [v for v in TORCHRUN_VARIABLES if v in os.environ]
        raise TaxonbenchError(
            f"distributed training: environment variable {name} is not set, but {', '.join(present)} "
            "are; start the training with torchrun (e.g. torchrun --standalone --nproc-per-node 2 "
            "-m taxonbench.cli train ...), which sets all of " + ", ".join(TORCHRUN_VARIABLES)
        )
    try:
        return int(value)
    except ValueError:
        raise TaxonbenchError(f"distributed training: environment variable {name}={value!r} is not an integer") from None


def setup(device: torch.device) -> Context:
    """Join the process group torchrun describes, or stay one process.

    ``device`` is the resolved ``device`` setting (``cuda`` or ``cpu``). On CUDA
    each process takes the device of its local rank and the backend is NCCL;
    on CPU the backend is gloo.
    """
    if int(os.environ.get("WORLD_SIZE", "1") or "1") <= 1:
        return Context(device=device)
    world = _int_variable("WORLD_SIZE")
    rank, local_rank = _int_variable("RANK"), _int_variable("LOCAL_RANK")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            _int_variable(name)  # raises the message naming it
    if not 0 <= rank < world:
        raise TaxonbenchError(f"distributed training: RANK={rank} is outside 0..WORLD_SIZE-1 ({world - 1})")
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        if local_rank >= visible:
            raise TaxonbenchError(
                f"distributed training: LOCAL_RANK={local_rank} needs CUDA device {local_rank}, but this node sees "
                f"{visible} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); start at most "
                "one process per GPU (torchrun --nproc-per-node = the GPUs requested)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise TaxonbenchError(f"distributed training: device {device} is not supported (use cuda or cpu)")
    if not dist.is_available():
        raise TaxonbenchError("distributed training: this PyTorch build has no torch.distributed")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                **({"device_id": device} if backend == "nccl" else {}))
    return Context(device=device, rank=rank, world_size=world, local_rank=local_rank, backend=backend)


def teardown(ctx: Context) -> None:
    """Leave the process group (every rank waits for the others first)."""
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(ctx: Context, values: list[float]) -> list[float]:
    """The sums over ranks of a few numbers (float64: counts stay exact); the values themselves in one process."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device if ctx.backend == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def broadcast_flag(ctx: Context, flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (so that all ranks take the same branch)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([int(flag)], device=ctx.device if ctx.backend == "nccl" else "cpu")
    dist.broadcast(t, 0)
    return bool(t.item())


# ------------------------------------------------------------------ autograd-aware collectives
class _AllReduceSum(torch.autograd.Function):
    """``Σ_ranks x``; the adjoint of a sum over ranks is the sum over ranks of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out


class _GatherRows(torch.autograd.Function):
    """The ranks' rows concatenated in rank order (uneven counts padded for ``all_gather``).

    Backward: every rank computes the *same* loss from the gathered rows, so the
    gradient of the rows of rank r summed over the ranks' copies of the loss
    (what the adjoint of ``all_gather``, a reduce-scatter, would compute) is
    ``world × `` this rank's own gradient of them — no communication needed.
    DistributedDataParallel then averages the parameter gradients over the
    ranks, which gives exactly the one-process gradient of the loss.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        rank, world = dist.get_rank(), dist.get_world_size()
        ctx.bounds = (sum(sizes[:rank]), sum(sizes[: rank + 1]))
        ctx.world = world
        width = max(sizes)
        x = x.contiguous()
        if len(x) < width:
            x = torch.cat([x, x.new_zeros((width - len(x), *x.shape[1:]))])
        pieces = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(pieces, x)
        return torch.cat([p[:n] for p, n in zip(pieces, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        lo, hi = ctx.bounds
        return grad[lo:hi] * ctx.world, None


def gather_rows(ctx: Context, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Every rank's rows of the global batch (``sizes[r]`` rows from rank r), differentiable."""
    if not ctx.distributed:
        return x
    if len(x) != sizes[ctx.rank]:
        raise AssertionError(f"rank {ctx.rank} holds {len(x)} rows, expected {sizes[ctx.rank]}")
    return _GatherRows.apply(x, sizes)


# ------------------------------------------------------------------ BatchNorm over the global batch
class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the whole global batch, on any backend.

    In training mode the per-channel mean and (biased) variance come from sums
    all-reduced over the ranks, in two passes (the mean, then the squared
    deviations from it) as a one-process BatchNorm computes them; the
    all-reduce is differentiable, so the backward pass is that of BatchNorm on
    the global batch. Running statistics are updated as ``nn.BatchNorm*`` does
    (unbiased variance over the global count). A rank may hold no row.
    Evaluation uses the running statistics, with no communication.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        use_batch = self.training or not self.track_running_stats
        if not use_batch or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return super().forward(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        c = input.shape[1]
        dims = [0] + list(range(2, input.dim()))
        shape = [1, c] + [1] * (input.dim() - 2)
        x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        local = torch.cat([x.sum(dims), x.new_full((1,), x.numel() / max(1, c))])
        totals = _AllReduceSum.apply(local)
        count = totals[c]
        if float(count.detach()) <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(input.shape)}")
        mean = totals[:c] / count
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                n = float(count.detach())
                self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(
                    (var.detach() * n / (n - 1)).to(self.running_var.dtype), alpha=factor)
        return out.to(input.dtype)


def convert_batchnorm(module: nn.Module, ctx: Context) -> nn.Module:
    """Every BatchNorm of ``module`` normalising over the global batch: ``SyncBatchNorm`` on CUDA
    (NCCL), :class:`GlobalBatchNorm` elsewhere. Parameters and buffers are kept (the same tensors),
    so the state dict keys and values are those of the original module."""
    if not ctx.distributed:
        return module
    if ctx.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_global(module)


def _convert_global(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, device=None, dtype=None)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, _convert_global(child))
    return out


def check_identical(ctx: Context, what: str, tensors) -> None:
    """Fail when ranks disagree (e.g. different files read, or a different seed): ``what`` names it."""
    if not ctx.distributed:
        return
    local = torch.stack([t.detach().double().sum() for t in tensors]).to(
        ctx.device if ctx.backend == "nccl" else "cpu")
    low, high = local.clone(), local.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise TaxonbenchError(f"distributed training: the ranks disagree on {what}")


# ------------------------------------------------------------------ what training asks of the ranks
#: buffers agree on every rank already (the same initialisation; BatchNorm statistics of the global batch),
#: so DDP need not broadcast them before every forward (HCCF's prompt tokens alone are megabytes at iNat
#: scale); ``forward_sync_buffers`` replaces ``broadcast_buffers`` in recent PyTorch
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})


class TrainingStep(nn.Module):
    """``method.training_forward`` as a module's ``forward``, so that DistributedDataParallel (which
    hooks ``forward``) wraps the training computation; holds no state of its own."""

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, images: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        return self.method.training_forward(images, leaf)


def check_splittable(method: nn.Module, where: str) -> None:
    """Refuse a method whose training outputs may depend on how a batch is split between processes."""
    if not method.splittable():
        raise TaxonbenchError(
            f"{where}: method {method.name!r} overrides training_forward, so its training outputs may depend on "
            "how a batch is split between processes; taxonbench cannot make it exact under several processes. "
            "Train it with one process (train.gpus <= 1, train.cpu_processes: 1), or set label_set_forward = True on "
            "the method if its training_forward reads only the set of labels in the batch"
        )


class DataParallel:
    """The ranks of one training, as the training loop sees them: with one process every call is the
    identity, so the loop has no distributed branch of its own.

    ``prepare`` checks the method and converts its BatchNorm layers; ``check_start`` fails unless every
    rank starts from the same weights and epoch; ``stepper`` wraps the training forward in DDP;
    ``step_labels`` are the labels the forward is given (the whole global batch's under DDP: HCCF encodes
    the batch's taxa from them); ``gather`` returns the global batch's outputs; ``sum`` adds numbers over ranks.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def part(self) -> Part:
        return self.ctx.part

    def prepare(self, method: nn.Module, where: str) -> nn.Module:
        if not self.ctx.distributed:
            return method
        check_splittable(method, where)
        return convert_batchnorm(method, self.ctx)

    def check_start(self, what: str, tensors) -> None:
        check_identical(self.ctx, what, tensors)

    def stepper(self, method: nn.Module) -> nn.Module:
        step = TrainingStep(method)
        if not self.ctx.distributed:
            return step
        device = self.ctx.device
        return nn.parallel.DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None,
                                                   **_NO_BUFFER_SYNC)

    def step_labels(self, leaf: torch.Tensor, batch_leaf: torch.Tensor) -> torch.Tensor:
        return batch_leaf if self.ctx.distributed else leaf

    def gather(self, outputs: torch.Tensor, batch_rows: int) -> torch.Tensor:
        return gather_rows(self.ctx, outputs, self.ctx.part.sizes(batch_rows))

    def sum(self, values: list[float]) -> list[float]:
        return all_reduce_sum(self.ctx, values)


__all__ = [
    "Context", "DataParallel", "GlobalBatchNorm", "Part", "TrainingStep", "WHOLE", "all_reduce_sum",
    "broadcast_flag", "check_identical", "check_splittable", "convert_batchnorm", "gather_rows", "setup", "teardown",
]
