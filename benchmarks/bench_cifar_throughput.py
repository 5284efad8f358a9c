"""Training throughput on CIFAR-shaped synthetic data: the noisybench trainer versus plain loops.

CPU (always): images/s of one training epoch through the shared trainer (CE, uint8 data,
batched augmentation) versus a minimal hand-written loop doing the same work (same network,
same batched crop+flip, SGD, cross-entropy); the ratio is the trainer's overhead.

GPU (when CUDA is present, else skipped): for the fast net (``airbench``) and PreAct ResNet-18,
images/s and epoch time of the fast path (uint8 data resident on the GPU, on-device
augmentation, the recipe's precision and channels_last) versus a plain DataLoader loop (per-image
torchvision transforms in worker processes, fp32) on the same GPU; plus one timed fast-profile
CE run on a CIFAR-sized synthetic set (50,000 / 10,000). The speed-up mixes several effects;
``benchmarks/gpu_smoke.py`` separates them.

Usage::

    pytest benchmarks/bench_cifar_throughput.py --benchmark-enable -s   # CPU ratio test (+ GPU when present)
    python benchmarks/bench_cifar_throughput.py --json out.json        # the same numbers as JSON
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from noisybench.archs import create_model
from noisybench.config import parse_grid
from noisybench.data import create_dataset
from noisybench.plan import expand_grid
from noisybench.trainer import Trainer


def _grid(n_train: int, n_test: int, train: dict[str, Any]) -> Any:
    return expand_grid(parse_grid({
        "name": "bench", "grid": {"datasets": ["cifar-synthetic"], "methods": ["ce"], "noise": ["sym:0.2"],
                                  "seeds": [0]},
        "train": {"protocol": "fast", "val_fraction": 0.0, **train},
        "datasets": {"cifar-synthetic": {"n_train": n_train, "n_test": n_test}},
    }))[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer_epoch(n_train: int, arch: str, arch_kwargs: dict[str, Any], batch_size: int, device: str,
                  epochs: int = 2, **train: Any) -> float:
    """Images/s of the trainer's training pass (no evaluation), best of ``epochs`` epochs after warm-up."""
    run = _grid(n_train, 100, {"arch": arch, "arch_kwargs": arch_kwargs, "batch_size": batch_size,
                               "device": device, "epochs": epochs + 1, **train})
    trainer = Trainer(run)
    ctx, method = trainer.setup()
    best = float("inf")
    for epoch in range(epochs + 1):
        ctx.begin_epoch(epoch)
        _sync(ctx.device)
        start = time.perf_counter()
        method.train_epoch(ctx, epoch)
        ctx.mean_loss()  # one sync, as the trainer does
        _sync(ctx.device)
        if epoch > 0:  # the first epoch warms up (allocator, cudnn autotuning, compile)
            best = min(best, time.perf_counter() - start)
    return n_train / best


def plain_loop(n_train: int, arch: str, arch_kwargs: dict[str, Any], batch_size: int, device: str,
               epochs: int = 2) -> float:
    """Images/s of a minimal loop: same data, net, batched augmentation, SGD and loss; no trainer."""
    dev = torch.device(device)
    ds = create_dataset("cifar-synthetic", n_train=n_train, n_test=100)
    splits = ds.load()
    x, y = splits.x_train.to(dev), torch.as_tensor(splits.y_train).to(dev)
    torch.manual_seed(0)
    net = create_model(arch, (3, 32, 32), 10, **arch_kwargs).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator(device=dev).manual_seed(0)
    best = float("inf")
    for epoch in range(epochs + 1):
        _sync(dev)
        start = time.perf_counter()
        order = torch.randperm(n_train, device=dev, generator=gen)
        for i in range(0, n_train, batch_size):
            b = order[i : i + batch_size]
            loss = F.cross_entropy(net(ds.preprocess(ds.augment(x[b], gen))), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(dev)
        if epoch > 0:
            best = min(best, time.perf_counter() - start)
    return n_train / best


class _Images(torch.utils.data.Dataset):
    """Per-image transforms in DataLoader workers (module level, so that it pickles under spawn too)."""

    def __init__(self, images: Any, labels: Any, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


def dataloader_loop(n_train: int, arch: str, batch_size: int, epochs: int = 2, workers: int = 8) -> float:
    """Images/s of the common baseline: per-image torchvision transforms in DataLoader workers, fp32."""
    from torchvision import transforms

    dev = torch.device("cuda")
    splits = create_dataset("cifar-synthetic", n_train=n_train, n_test=100).load()
    images = splits.x_train.permute(0, 2, 3, 1).numpy()  # HWC uint8, as torchvision's CIFAR holds them
    tf = transforms.Compose([transforms.ToPILImage(), transforms.RandomCrop(32, padding=4),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])

    loader = torch.utils.data.DataLoader(_Images(images, splits.y_train, tf), batch_size=batch_size, shuffle=True,
                                         num_workers=workers,
                                         pin_memory=True, persistent_workers=True, drop_last=False)
    torch.manual_seed(0)
    net = create_model(arch, (3, 32, 32), 10).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    best = float("inf")
    for epoch in range(epochs + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for xb, yb in loader:
            loss = F.cross_entropy(net(xb.to(dev, non_blocking=True)), yb.to(dev, non_blocking=True))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        if epoch > 0:
            best = min(best, time.perf_counter() - start)
    return n_train / best


def cpu_benchmark(n_train: int = 2000, arch: str = "airbench", batch_size: int = 256,
                  arch_kwargs: dict[str, Any] | None = None, epochs: int = 2) -> dict[str, Any]:
    """Trainer vs plain loop on the CPU; returns images/s of both and their ratio."""
    kwargs = arch_kwargs if arch_kwargs is not None else {"widths": [32, 64, 64]}
    trainer = trainer_epoch(n_train, arch, kwargs, batch_size, "cpu", epochs)
    plain = plain_loop(n_train, arch, kwargs, batch_size, "cpu", epochs)
    return {"device": "cpu", "threads": torch.get_num_threads(), "arch": arch, "arch_kwargs": kwargs,
            "n_train": n_train, "batch_size": batch_size, "trainer_img_s": trainer, "plain_img_s": plain,
            "ratio_trainer_over_plain": trainer / plain}


def gpu_benchmark(n_train: int = 50000, epochs: int = 2, run_epochs: int = 10) -> dict[str, Any]:
    """Fast path vs DataLoader loop for airbench and PreAct ResNet-18, and a timed fast-profile run."""
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0)}
    for arch, bs in (("airbench", 512), ("preact_resnet18", 128)):
        fast = trainer_epoch(n_train, arch, {}, bs, "cuda", epochs)
        loader = dataloader_loop(n_train, arch, bs, epochs)
        out[arch] = {"batch_size": bs, "fast_path_img_s": fast, "fast_path_epoch_s": n_train / fast,
                     "dataloader_img_s": loader, "dataloader_epoch_s": n_train / loader, "speedup": fast / loader}
    start = time.perf_counter()
    result = Trainer(_grid(n_train, 10000, {"device": "cuda", "epochs": run_epochs})).run()
    out["fast_profile_run"] = {"epochs": run_epochs, "wall_s_with_data_generation": time.perf_counter() - start,
                               "epochs_s": sum(h["epoch_time"] for h in result["history"]),  # training + eval
                               "test_acc": result["metrics"]["last"]}
    return out


ROUNDS = 5
CPU_KWARGS = {"widths": [32, 64, 64]}


def interleaved_ratio(n_train: int = 2000, rounds: int = ROUNDS, batch_size: int = 256) -> list[float]:
    """Per-round (plain time / trainer time) of one training epoch, the two interleaved, on the CPU.

    Both sides share the initial weights, the uint8 data, the batched crop+flip, SGD and the
    batch size; only the trainer's machinery (seeded streams, index batches, hooks) differs.
    """
    trainer = Trainer(_grid(n_train, 100, {"arch": "airbench", "arch_kwargs": CPU_KWARGS, "device": "cpu",
                                           "batch_size": batch_size, "epochs": rounds + 1}))
    ctx, method = trainer.setup()
    plain_net = copy.deepcopy(ctx.nets[0])
    opt = torch.optim.SGD(plain_net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x, y, ds = ctx.data.x_train, ctx.data.y_train, ctx.dataset
    gen = torch.Generator().manual_seed(0)

    def suite(epoch: int) -> None:
        ctx.begin_epoch(epoch)
        method.train_epoch(ctx, epoch)
        ctx.mean_loss()

    def plain(epoch: int) -> None:
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            b = order[i : i + batch_size]
            loss = F.cross_entropy(plain_net(ds.preprocess(ds.augment(x[b], gen))), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    suite(0), plain(0)  # warm-up
    ratios = []
    for r in range(1, rounds + 1):
        first, second = (suite, plain) if r % 2 else (plain, suite)
        times = {}
        for fn in (first, second):
            start = time.perf_counter()
            fn(r)
            times[fn] = time.perf_counter() - start
        ratios.append(times[plain] / times[suite])
    return ratios


def test_cifar_trainer_throughput_vs_plain_loop(benchmark) -> None:
    """The trainer keeps >= 0.85 of a plain loop's CPU throughput on CIFAR-shaped data (median of rounds)."""
    ratios = benchmark.pedantic(interleaved_ratio, rounds=1, iterations=1)
    median = statistics.median(ratios)
    benchmark.extra_info["throughput_ratio_median"] = median
    print(f"\ncifar-synthetic (airbench {CPU_KWARGS['widths']}, CPU): trainer/plain throughput ratio median "
          f"{median:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds)")
    assert median >= 0.85, f"the trainer reaches only {median:.2f} of the plain loop's throughput"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_fast_path_vs_dataloader_loop() -> None:
    """On a GPU: the fast path beats a plain per-image DataLoader loop for the fast net."""
    result = gpu_benchmark(run_epochs=2)
    print(json.dumps(result, indent=2))
    assert result["airbench"]["speedup"] > 1.0


def main(argv: list[str] | None = None) -> int:
    """Run the CPU comparison, and the GPU one when CUDA is available; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2000, help="CPU benchmark size")
    parser.add_argument("--arch", default="airbench")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--gpu-epochs", type=int, default=10, help="epochs of the timed fast-profile GPU run")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ratios = interleaved_ratio(args.n_train, ROUNDS, args.batch_size)
    results: dict[str, Any] = {"cpu": cpu_benchmark(args.n_train, args.arch, args.batch_size),
                               "cpu_interleaved_ratio_median": statistics.median(ratios),
                               "cpu_interleaved_ratios": ratios}
    if torch.cuda.is_available():
        results["gpu"] = gpu_benchmark(run_epochs=args.gpu_epochs)
    else:
        results["gpu"] = "skipped: CUDA not available"
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
