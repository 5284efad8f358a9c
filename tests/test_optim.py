"""Optimiser building: weight decay on chosen parameters, one optimiser per network versus one over both
(noisybench.optim)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from noisybench.archs import create_model
from noisybench.config import TrainConfig
from noisybench.errors import ConfigError
from noisybench.optim import build_optimizer, clip_gradients, decay_groups, set_beta1


def _decays(net: nn.Module, opt: torch.optim.Optimizer) -> dict[str, float]:
    of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    return {name: of[id(p)] for name, p in net.named_parameters()}


def test_weight_decay_reaches_exactly_the_chosen_parameters() -> None:
    net = create_model("cnn8", (3, 32, 32), 10)
    train = TrainConfig(weight_decay=5e-4, weight_decay_by_module={"fc1": 0.01, "fc1.0.weight": 0.02,
                                                                       "kernels": 1e-3})
    decays = _decays(net, build_optimizer(net, train))
    assert decays["fc1.0.weight"] == 0.02  # the longest prefix wins
    assert decays["fc1.0.bias"] == decays["fc1.1.weight"] == decays["fc1.1.bias"] == 0.01  # a module prefix
    kernels = {n for n, p in net.named_parameters() if p.dim() >= 2 and not n.startswith("fc1.")}
    assert kernels == {"block1.0.weight", "block1.3.weight", "block2.0.weight", "block2.3.weight",
                       "block3.0.weight", "block3.3.weight", "fc2.weight"}
    assert all(decays[n] == 1e-3 for n in kernels)
    rest = set(decays) - kernels - {n for n in decays if n.startswith("fc1.")}
    assert rest and all(decays[n] == 5e-4 for n in rest)  # biases and batch norms keep the default


def test_decay_acts_only_on_the_chosen_parameters() -> None:
    torch.manual_seed(0)
    net = create_model("cnn8", (3, 32, 32), 10)
    before = copy.deepcopy(net.state_dict())
    opt = build_optimizer(net, TrainConfig(lr=0.1, momentum=0.0, weight_decay=0.0,
                                           weight_decay_by_module={"fc1.0": 0.02}))
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in net.named_parameters():
        if name.startswith("fc1.0."):
            assert not torch.equal(p, before[name])
            assert torch.allclose(p, before[name] * (1 - 0.1 * 0.02), rtol=1e-6, atol=0)
        else:
            assert torch.equal(p, before[name]), name


def test_keras_l2_lambda_is_sgd_weight_decay_two_lambda() -> None:
    torch.manual_seed(0)
    w = torch.randn(5, 3)
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    lam, x = 0.01, torch.randn(7, 5)
    (x @ a).pow(2).mean().add(lam * a.pow(2).sum()).backward()  # Keras: loss + l2(lam) penalty
    torch.optim.SGD([a], lr=0.1).step()
    (x @ b).pow(2).mean().backward()
    torch.optim.SGD([b], lr=0.1, weight_decay=2 * lam).step()
    assert torch.allclose(a, b, rtol=0, atol=1e-7)


def test_a_key_that_selects_nothing_is_refused_naming_the_modules() -> None:
    net = create_model("cnn8", (3, 32, 32), 10)
    with pytest.raises(ConfigError, match="'fc3' selects no parameter.*block1, block2, block3, fc1, fc2"):
        decay_groups(net, TrainConfig(weight_decay_by_module={"fc3": 0.1}))
    with pytest.raises(ConfigError, match="'fc' selects no parameter"):  # a prefix ends at a dot
        decay_groups(net, TrainConfig(weight_decay_by_module={"fc": 0.1}))


def test_without_per_module_decay_the_optimiser_is_unchanged() -> None:
    net = create_model("mlp", (8,), 3)
    opt = build_optimizer(net, TrainConfig())
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == list(net.parameters())


def test_one_adam_over_two_networks_equals_one_adam_per_network() -> None:
    torch.manual_seed(0)
    nets = [create_model("mlp", (8,), 3, hidden=[16]) for _ in range(2)]
    twins = copy.deepcopy(nets)
    joint = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=1e-3)
    train = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=0.0)
    apart = [build_optimizer(n, train) for n in twins]
    for step in range(6):
        x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
        if step == 3:  # the Co-teaching / JoCoR beta_1 switch
            set_beta1(joint, 0.1)
            for opt in apart:
                set_beta1(opt, 0.1)
        for models, opts in ((nets, [joint]), (twins, apart)):
            for opt in opts:
                opt.zero_grad()
            loss = sum(torch.nn.functional.cross_entropy(m(x), y) for m in models)
            loss.backward()
            for opt in opts:
                opt.step()
    for a, b in zip([p for n in nets for p in n.parameters()], [p for n in twins for p in n.parameters()]):
        assert torch.equal(a, b)
    assert joint.param_groups[0]["betas"] == (0.1, 0.999)


def test_clip_gradients_is_clip_grad_norm_over_the_optimisers_parameters() -> None:
    torch.manual_seed(0)
    net = create_model("mlp", (8,), 3)
    twin = copy.deepcopy(net)
    x, y = torch.randn(16, 8) * 10, torch.randint(0, 3, (16,))
    for m in (net, twin):
        torch.nn.functional.cross_entropy(m(x), y).backward()
    clip_gradients(build_optimizer(net, TrainConfig()), 0.01)
    torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.01)
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(net.parameters(), twin.parameters()))
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()]))
    assert float(total) == pytest.approx(0.01, rel=1e-5)
