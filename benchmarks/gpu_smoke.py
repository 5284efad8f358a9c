"""GPU smoke check: one prepared script, no data files, at most ~5 minutes on one GPU.

Sections (each a key of the JSON it prints):

* ``environment``: versions, device, compute capability, the precision ``amp = "auto"`` resolves to;
* ``methods``: every registered method for 3 epochs on ``cifar-synthetic``, finite losses required;
* ``options``: CE with compile off/on x amp off/on (inductor on CUDA, Dynamo's eager backend on CPU);
* ``resume``: an interrupted-and-resumed run against an uninterrupted one, determinism on (identical?);
* ``syncs``: host-device synchronisations per training step (CUDA's sync debug mode on a GPU,
  :class:`noisybench.syncs.HostSyncCounter`'s simulation on the CPU);
* ``throughput``: images/s of one training epoch, each fast-path effect added on its own to a
  plain DataLoader fp32 loop: data on the device (uint8, batched crop/flip), bf16, channels_last,
  compile; plus the noisybench trainer with the run's settings;
* ``extensions``: the contract's extensions on the device: the new networks (forward and backward under
  the default precision), every CIFAR augmentation policy (reproducible from the generator, no host
  synchronisation), a run under every new recipe key (phases, warm restarts, clipping, per-step decay,
  per-module decay, Adam's beta_1 switch, AutoAugment view, no normalisation) resumed across its phase
  boundary, and an extra head reached through ``forward`` keywords under autocast and compile.

Usage::

    python benchmarks/gpu_smoke.py --json gpu_smoke.json      # on a GPU machine
    python benchmarks/gpu_smoke.py --device cpu --tiny        # the same code path on the CPU, < 1 minute

Exit status 1 when a check fails (non-finite loss, resume not identical, syncs in the steps).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from noisybench.archs import create_model
from noisybench.config import parse_grid
from noisybench.data import create_dataset
from noisybench.plan import expand_grid
from noisybench.registry import METHODS
from noisybench.runtime import resolve_device, resolve_precision
from noisybench.trainer import Trainer

VOLATILE = {"epoch_time", "peak_mem_mb"}


class Sizes:
    """Problem sizes: full (GPU) or tiny (CPU, CI)."""

    def __init__(self, tiny: bool) -> None:
        self.n_train, self.n_test = (128, 32) if tiny else (10000, 2000)
        self.bench_n = 256 if tiny else 25000
        self.option_epochs = 1 if tiny else 2
        self.bench_epochs = 1 if tiny else 2
        self.batch = 64 if tiny else 512
        self.arch_kwargs: dict[str, Any] = {"widths": [8, 16, 16], "stem": 8} if tiny else {}
        self.workers = 0 if tiny else 8


def _run(device: str, sizes: Sizes, method: str = "ce", epochs: int = 3, n_train: int | None = None,
         **train: Any) -> Any:
    grid = parse_grid({
        "name": "gpu-smoke",
        "grid": {"datasets": ["cifar-synthetic"], "methods": [method], "noise": ["sym:0.4"], "seeds": [0]},
        "train": {"protocol": "fast", "device": device, "epochs": epochs, "batch_size": sizes.batch,
                  "arch": "airbench", "arch_kwargs": sizes.arch_kwargs, "val_fraction": 0.1, **train},
        "datasets": {"cifar-synthetic": {"n_train": n_train or sizes.n_train, "n_test": sizes.n_test}},
    })
    return expand_grid(grid)[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and the capability-dependent choices."""
    env: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
                           "threads": torch.get_num_threads(), "amp_auto": resolve_precision("auto", device)}
    if device.type == "cuda":
        env.update(name=torch.cuda.get_device_name(device),
                   capability=".".join(map(str, torch.cuda.get_device_capability(device))),
                   cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported(),
                   memory_gb=torch.cuda.get_device_properties(device).total_memory / 2**30)
    return env


def methods_check(device: str, sizes: Sizes) -> list[dict[str, Any]]:
    """Every method, 3 epochs, default precision; all losses finite."""
    rows = []
    for method in METHODS.list():
        start = time.perf_counter()
        out = Trainer(_run(device, sizes, method)).run()
        losses = [h["train_loss"] for h in out["history"]]
        rows.append({"method": method, "ok": all(math.isfinite(v) for v in losses), "train_loss": losses,
                     "test_acc": out["history"][-1]["test_acc"], "wall_s": time.perf_counter() - start,
                     "precision": out["runtime"]["precision"]})
    return rows


def options_check(device: str, sizes: Sizes) -> list[dict[str, Any]]:
    """CE with compile off/on and amp off/on: finite, and how far the losses move."""
    backend = "inductor" if resolve_device(device).type == "cuda" else "eager"
    rows = []
    for compile_ in (False, backend):
        for amp in (False, True):
            start = time.perf_counter()
            out = Trainer(_run(device, sizes, epochs=sizes.option_epochs, amp=amp, compile=compile_)).run()
            losses = [h["train_loss"] for h in out["history"]]
            rows.append({"compile": compile_, "amp": amp, "precision": out["runtime"]["precision"],
                         "ok": all(math.isfinite(v) for v in losses), "train_loss": losses,
                         "test_acc": out["history"][-1]["test_acc"], "wall_s": time.perf_counter() - start})
    return rows


class _Interrupt(Exception):
    pass


class _MemoryCheckpoint:
    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    def save(self, state: dict[str, Any]) -> None:
        import copy

        self.state = copy.deepcopy(state)

    def load(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        return self.state


def resume_check(device: str, sizes: Sizes) -> list[dict[str, Any]]:
    """Kill after epoch 2 of 3, resume, compare with an uninterrupted run (determinism on)."""
    rows = []
    for method in ("elr", "dividemix"):
        run = _run(device, sizes, method, epochs=3, deterministic=True,
                   **({"amp": True} if resolve_device(device).type == "cuda" else {}))
        full = Trainer(run).run()["history"]
        checkpoint = _MemoryCheckpoint()

        def stop(history: list[dict[str, Any]]) -> None:
            if len(history) == 2:
                raise _Interrupt

        try:
            Trainer(run, checkpoint=checkpoint, on_epoch=stop).run()
        except _Interrupt:
            pass
        resumed = Trainer(run, checkpoint=checkpoint).run()["history"]
        strip = [[{k: v for k, v in row.items() if k not in VOLATILE} for row in h] for h in (full, resumed)]
        rows.append({"method": method, "identical": strip[0] == strip[1],
                     "last_loss": [full[-1]["train_loss"], resumed[-1]["train_loss"]]})
    return rows


def _count_step_syncs(trainer: Trainer) -> dict[str, Any]:
    """Syncs between consecutive steps of one network, and in the whole epoch."""
    from noisybench.syncs import HostSyncCounter

    ctx, method = trainer.setup()
    ctx.begin_epoch(0)
    method.train_epoch(ctx, 0)  # warm-up (lazy constants, DivideMix's warm-up epoch)
    counter = HostSyncCounter(ctx.device)
    caught: list[warnings.WarningMessage] = []
    on_cuda = ctx.device.type == "cuda"

    def total() -> int:
        return sum("synchroniz" in str(w.message) for w in caught) if on_cuda else counter.total

    marks: list[tuple[Any, int]] = []
    optimize = ctx.optimize

    def step(loss: torch.Tensor, which: list[int] | None = None) -> None:
        optimize(loss, which)
        marks.append((which, total()))

    ctx.optimize = step  # type: ignore[method-assign]
    ctx.begin_epoch(1)
    if on_cuda:  # the real thing: CUDA's sync debug mode warns at every synchronising call
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                method.train_epoch(ctx, 1)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        by_kind: dict[str, int] = {}
    else:
        with counter:
            method.train_epoch(ctx, 1)
        by_kind = dict(counter.counts)
    per_step = [b - a for (na, a), (nb, b) in zip(marks, marks[1:]) if na == nb]
    return {"steps": len(marks), "max_per_step": max(per_step, default=0), "epoch_total": total(),
            "by_kind": by_kind}


def syncs_check(device: str, sizes: Sizes) -> list[dict[str, Any]]:
    """Synchronisations per training step for CE and DivideMix (epoch 1: DivideMix's main phase)."""
    rows = []
    for method in ("ce", "dividemix"):
        trainer = Trainer(_run(device, sizes, method, epochs=2))
        if method == "dividemix":
            trainer = Trainer(_with_hparams(trainer.config, warmup=1))
        rows.append({"method": method, **_count_step_syncs(trainer)})
    return rows


def _with_hparams(run: Any, **hparams: Any) -> Any:
    import dataclasses

    return dataclasses.replace(run, hparams={**run.hparams, **hparams})


class TransformedImages(torch.utils.data.Dataset):
    """CIFAR-style per-image transforms in DataLoader workers (module level: works with spawn)."""

    def __init__(self, images: Any, labels: Any) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.tf = transforms.Compose([transforms.ToPILImage(), transforms.RandomCrop(32, padding=4),
                                      transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                      transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.tf(self.images[i]), int(self.labels[i])


def _epoch_rate(device: torch.device, n: int, epochs: int, one_epoch: Any) -> float:
    best = float("inf")
    for epoch in range(epochs + 1):
        _sync(device)
        start = time.perf_counter()
        one_epoch()
        _sync(device)
        if epoch > 0:  # the first epoch warms up (allocator, cuDNN, compilation)
            best = min(best, time.perf_counter() - start)
    return n / best


def plain_rate(device: torch.device, sizes: Sizes, on_device: bool, bf16: bool, channels_last: bool,
               compile_: str | None) -> float:
    """Images/s of a minimal CE loop with the chosen effects (the data generated before timing)."""
    ds = create_dataset("cifar-synthetic", n_train=sizes.bench_n, n_test=10)
    splits = ds.load()
    torch.manual_seed(0)
    net = create_model("airbench", (3, 32, 32), 10, **sizes.arch_kwargs).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    forward = torch.compile(net, backend=compile_) if compile_ else net
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x.contiguous(memory_format=fmt))
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if on_device:
        x, y = splits.x_train.to(device), torch.as_tensor(splits.y_train).to(device)
        gen = torch.Generator(device=device).manual_seed(0)

        def one_epoch() -> None:
            order = torch.randperm(len(x), device=device, generator=gen)
            for i in range(0, len(x), sizes.batch):
                b = order[i : i + sizes.batch]
                step(ds.preprocess(ds.augment(x[b], gen)), y[b])
    else:
        data = TransformedImages(splits.x_train.permute(0, 2, 3, 1).numpy(), splits.y_train)
        loader = torch.utils.data.DataLoader(data, batch_size=sizes.batch, shuffle=True, num_workers=sizes.workers,
                                             pin_memory=device.type == "cuda", persistent_workers=sizes.workers > 0)

        def one_epoch() -> None:
            for xb, yb in loader:
                step(xb.to(device, non_blocking=True), yb.to(device, non_blocking=True))

    return _epoch_rate(device, sizes.bench_n, sizes.bench_epochs, one_epoch)


def trainer_rate(device: str, sizes: Sizes) -> float:
    """Images/s of the noisybench trainer's training pass (CE, the recipe's defaults on this device)."""
    epochs = sizes.bench_epochs
    trainer = Trainer(_run(device, sizes, epochs=epochs + 1, n_train=sizes.bench_n, val_fraction=0.0))
    with trainer.runtime.applied():
        ctx, method = trainer.setup()
        state = {"epoch": 0}

        def one_epoch() -> None:
            ctx.begin_epoch(state["epoch"])
            method.train_epoch(ctx, state["epoch"])
            ctx.mean_loss()
            state["epoch"] += 1

        return _epoch_rate(ctx.device, sizes.bench_n, epochs, one_epoch)


def throughput(device: str, sizes: Sizes) -> list[dict[str, Any]]:
    """The table: each effect added on its own to the plain DataLoader fp32 loop, then all of them."""
    dev = resolve_device(device)
    backend = "inductor" if dev.type == "cuda" else "eager"
    configs = [("dataloader fp32 (baseline)", False, False, False, None),
               ("+ data on device", True, False, False, None),
               ("+ data on device + bf16", True, True, False, None),
               ("+ data on device + channels_last", True, False, True, None),
               ("+ data on device + compile", True, False, False, backend),
               ("all four", True, True, True, backend)]
    rows = [{"loop": name, "img_s": plain_rate(dev, sizes, *cfg)} for name, *cfg in configs]
    rows.append({"loop": "noisybench trainer (defaults)", "img_s": trainer_rate(device, sizes)})
    for row in rows:
        row["speedup"] = row["img_s"] / rows[0]["img_s"]
    return rows


NEW_ARCHS = ("resnet18", "cifar_resnet50", "coteaching_cnn", "jocor_cnn", "cnn8", "resnet44")
EXTENDED = {"epochs": 4, "lr": 0.05, "augment": "autoaugment-cutout16", "normalize": False, "deterministic": True,
            "phases": [{"epochs": 2, "schedule": "cosine-restarts", "restart_every": 2, "eta_min": 0.001,
                        "grad_clip_norm": 5.0, "lr_decay_per_step": 1e-3, "weight_decay_by_module": {"kernels": 1e-3}},
                       {"epochs": 2, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "linear-tail",
                        "milestones": [0], "adam_beta1_tail": 0.1}]}


def _syncs_of(device: torch.device, fn: Any) -> int:
    """Host-device synchronisations of ``fn()`` (CUDA's sync debug mode; the simulation on the CPU)."""
    from noisybench.syncs import HostSyncCounter

    if device.type != "cuda":
        counter = HostSyncCounter(device)
        with counter:
            fn()
        return counter.total
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def _heads_check(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    """A second head through ``forward(x, heads=True)`` of a network under autocast and compile."""
    from noisybench.runtime import Runtime, accelerate

    class WithHead(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net, self.head = net, torch.nn.Linear(net.fc.in_features, net.fc.out_features)

        def forward(self, x: torch.Tensor, heads: bool = False) -> Any:
            logits, feats = self.net(x, features=True)
            return (logits, self.head(feats)) if heads else logits

    net = WithHead(create_model("resnet18", (3, 32, 32), 10, width=8 if sizes.batch < 128 else 64)).to(device)
    backend = "inductor" if device.type == "cuda" else "eager"
    runtime = Runtime(str(device), "", None, "bf16", False, backend, True, False, torch.__version__)
    accelerate(net, runtime, True)
    x = torch.randn(8, 3, 32, 32, device=device)
    main, extra = net(x, heads=True)
    (main.sum() + extra.sum()).backward()
    ok = main.dtype == extra.dtype == torch.float32 and bool(net.head.weight.grad.abs().sum() > 0)
    return {"check": "extra head through forward keywords (bf16, compile)", "ok": ok}


def extensions_check(device: str, sizes: Sizes) -> list[dict[str, Any]]:
    """New networks, augmentation policies on the device, a run under every new recipe key, an extra head."""
    dev = resolve_device(device)
    rows: list[dict[str, Any]] = []
    dtype = torch.bfloat16 if resolve_precision("auto", dev) == "bf16" else None
    for name in NEW_ARCHS:
        net = create_model(name, (3, 32, 32), 10).to(dev)
        x = torch.randn(min(sizes.batch, 128), 3, 32, 32, device=dev)
        with torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
            logits, _ = net(x, features=True)
        logits.float().sum().backward()
        rows.append({"check": f"network {name}", "ok": bool(torch.isfinite(logits.float()).all()),
                     "params": sum(p.numel() for p in net.parameters())})
    dataset = create_dataset("cifar-synthetic", n_train=256, n_test=10)
    batch = dataset.load().x_train[: min(sizes.batch, 256)].to(dev)
    for policy in dataset.policy_names():
        chosen = dataset.policy(policy)
        views = [chosen.stored(dataset, batch, torch.Generator(device=dev).manual_seed(3)) for _ in range(2)]
        generator = torch.Generator(device=dev).manual_seed(4)
        syncs = _syncs_of(dev, lambda c=chosen, g=generator: c.stored(dataset, batch, g))
        rows.append({"check": f"policy {policy}", "ok": bool(torch.equal(*views)) and syncs == 0, "syncs": syncs})
    rows.append(_extended_run_check(device, sizes))
    rows.append(_heads_check(dev, sizes))
    return rows


def _extended_run_check(device: str, sizes: Sizes) -> dict[str, Any]:
    run = _run(device, sizes, **EXTENDED)
    full = Trainer(run).run()["history"]
    checkpoint = _MemoryCheckpoint()

    def stop(history: list[dict[str, Any]]) -> None:
        if len(history) == 2:
            raise _Interrupt

    try:
        Trainer(run, checkpoint=checkpoint, on_epoch=stop).run()
    except _Interrupt:
        pass
    resumed = Trainer(run, checkpoint=checkpoint).run()["history"]
    strip = [[{k: v for k, v in row.items() if k not in VOLATILE} for row in h] for h in (full, resumed)]
    finite = all(math.isfinite(h["train_loss"]) for h in full)
    return {"check": "run under every new recipe key, resumed across its phase boundary",
            "ok": finite and strip[0] == strip[1], "lr": [h["lr"] for h in full]}


def failures(results: dict[str, Any]) -> list[str]:
    """What failed, in words."""
    out = [f"non-finite loss: {r['method']}" for r in results["methods"] if not r["ok"]]
    out += [f"non-finite loss: compile={r['compile']} amp={r['amp']}" for r in results["options"] if not r["ok"]]
    out += [f"resume differs: {r['method']}" for r in results["resume"] if not r["identical"]]
    out += [f"syncs in steps: {r['method']} ({r['max_per_step']})" for r in results["syncs"] if r["max_per_step"] > 1]
    out += [f"extension failed: {r['check']}" for r in results.get("extensions", []) if not r["ok"]]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every section; print (and optionally write) JSON; exit 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU check; default on the CPU)")
    parser.add_argument("--skip", nargs="*", default=[], help="sections to skip")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    sizes = Sizes(args.tiny or device.type == "cpu")
    results: dict[str, Any] = {"environment": environment(device)}
    sections = {"methods": methods_check, "options": options_check, "resume": resume_check,
                "syncs": syncs_check, "throughput": throughput, "extensions": extensions_check}
    for name, fn in sections.items():
        start = time.perf_counter()
        results[name] = [] if name in args.skip else fn(str(device), sizes)
        print(f"[gpu_smoke] {name}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
    results["failures"] = failures(results)
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
