"""The suite's losses, gradients and per-sample state against the official code's formulas.

Each ``ref_*`` function below is written from the formula of the official implementation named in
its docstring (methods.md §12), not copied from it. Every comparison runs at float64 (rtol 1e-10)
and float32 (rtol 1e-5) on fixed random logits, labels, targets and weights, plus extreme logits
where the official formula itself stays finite (where it does not, the suite must be finite and
equal the analytic limit).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisybench.conformance import reference_function_problems
from noisybench.methods._common import entropy_from_logits
from noisybench.methods.alr import alr_loss, alr_update_targets
from noisybench.methods.dividemix import (
    co_guess_targets,
    co_refine_targets,
    gmm_clean_probability,
    linear_rampup,
    mixmatch_loss,
    normalize_losses,
)
from noisybench.methods.elr import elr_loss, elr_update_targets
from noisybench.methods.gce import gce_loss, truncated_gce_loss, truncated_weights
from noisybench.registry import METHODS

TOLERANCES = [(torch.float64, 1e-10), (torch.float32, 1e-5)]
B, C = 16, 10


def _inputs(dtype: torch.dtype, seed: int = 0, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, C, generator=g, dtype=torch.float64) * scale).to(dtype)
    labels = torch.randint(0, C, (B,), generator=g)
    return logits, labels


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-3)


def _value_and_grad(fn, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    z = logits.clone().requires_grad_(True)
    value = fn(z)
    (grad,) = torch.autograd.grad(value, z)
    return value.detach(), grad


# ------------------------------------------------------------------ ELR (shengliu66/ELR ELR/model/loss.py)
def ref_elr(logits: torch.Tensor, labels: torch.Tensor, target_rows: torch.Tensor, beta: float, lam: float):  # noqa: ANN201
    """``elr_loss.forward``: clamp softmax to [1e-4, 1-1e-4]; EMA of the detached normalised clamp; then
    CE(raw logits) + lam * mean log(1 - <t, clamped p>)."""
    y_pred = torch.clamp(torch.softmax(logits, dim=1), 1e-4, 1.0 - 1e-4)
    det = y_pred.detach()
    new_t = beta * target_rows + (1 - beta) * (det / det.sum(dim=1, keepdim=True))
    loss = F.cross_entropy(logits, labels) + lam * (1 - (new_t * y_pred).sum(dim=1)).log().mean()
    return loss, new_t


@pytest.mark.parametrize(("dtype", "rtol"), TOLERANCES)
@pytest.mark.parametrize("scale", [3.0, 40.0])  # 40: extreme logits, the clamp is active
def test_elr_loss_grad_and_targets(dtype: torch.dtype, rtol: float, scale: float) -> None:
    logits, labels = _inputs(dtype, scale=scale)
    t0 = torch.softmax(torch.randn(B, C, dtype=torch.float64), dim=1).to(dtype)
    ref_loss, ref_grad = _value_and_grad(lambda z: ref_elr(z, labels, t0, 0.7, 3.0)[0], logits)
    ref_t = ref_elr(logits, labels, t0, 0.7, 3.0)[1]

    def ours(z: torch.Tensor) -> torch.Tensor:
        p_hat = torch.softmax(z, dim=1).clamp(1e-4, 1 - 1e-4)
        return elr_loss(z, labels, elr_update_targets(t0, p_hat, 0.7), 3.0, p_hat)

    loss, grad = _value_and_grad(ours, logits)
    _close(loss, ref_loss, rtol)
    _close(grad, ref_grad, rtol)
    _close(elr_update_targets(t0, torch.softmax(logits, dim=1), 0.7), ref_t, rtol)


# ------------------------------------------------------------------ GCE (AlanChou/Truncated-Loss)
def ref_truncated(logits: torch.Tensor, labels: torch.Tensor, w: torch.Tensor, q: float, k: float) -> torch.Tensor:
    """``TruncatedLoss.forward``: mean[((1 - Yg^q)/q) w - ((1 - k^q)/q) w], Yg = softmax gathered at the label."""
    yg = torch.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return (((1 - yg**q) / q) * w - ((1 - k**q) / q) * w).mean()


def ref_update_weight(logits: torch.Tensor, labels: torch.Tensor, q: float, k: float) -> torch.Tensor:
    """``TruncatedLoss.update_weight``: w = [L_q(k) > L_q(p_y)]."""
    yg = torch.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return (torch.full_like(yg, (1 - k**q) / q) > (1 - yg**q) / q).to(logits.dtype)


@pytest.mark.parametrize(("dtype", "rtol"), TOLERANCES)
def test_truncated_gce_loss_grad_and_weights(dtype: torch.dtype, rtol: float) -> None:
    logits, labels = _inputs(dtype, scale=1.5)
    w = (torch.arange(B) % 3 != 0).to(dtype)
    ref_loss, ref_grad = _value_and_grad(lambda z: ref_truncated(z, labels, w, 0.7, 0.5), logits)
    loss, grad = _value_and_grad(lambda z: truncated_gce_loss(z, labels, w, 0.7, 0.5), logits)
    _close(loss, ref_loss, rtol)  # the logged loss includes the constant -L_q(k) w_i term
    _close(grad, ref_grad, rtol)
    weights = truncated_weights(logits, labels, 0.7, 0.5)
    assert torch.equal(weights, ref_update_weight(logits, labels, 0.7, 0.5))
    assert 0 < float(weights.sum()) < B  # the check is not vacuous


@pytest.mark.parametrize("gap", [30.0, 60.0, 800.0])
def test_gce_is_exact_and_finite_at_extreme_logits(gap: float) -> None:
    """p_y^q = exp(q log p_y): the value and the gradient p_y^q (p - e_y) at float64, where a clamp of p_y
    (or the reference's 0^q at gap 800, whose gradient is NaN) is inexact."""
    logits = torch.tensor([[0.0, gap, -gap], [gap, 0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0])
    log_p = torch.log_softmax(logits, dim=1)
    log_p_y = log_p.gather(1, labels[:, None]).squeeze(1)
    expected = -torch.expm1(0.7 * log_p_y) / 0.7
    expected_grad = (0.7 * log_p_y).exp()[:, None] * (log_p.exp() - F.one_hot(labels, 3)) / len(labels)
    loss, grad = _value_and_grad(lambda z: gce_loss(z, labels, 0.7).mean(), logits)
    _close(gce_loss(logits, labels, 0.7), expected, 1e-10)
    assert torch.isfinite(grad).all()
    _close(grad, expected_grad, 1e-10)
    assert float(loss) == pytest.approx(float(expected.mean()), rel=1e-12)


# ------------------------------------------------------------------ SELC = ALR at lambda_H = 0 (MacLLL/SELC)
def ref_selc(logits: torch.Tensor, soft_rows: torch.Tensor, momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``SELCLoss`` after ``es``: t <- m t + (1 - m) softmax(z).detach(); loss = mean -sum log(softmax(z)) t."""
    new_t = momentum * soft_rows + (1 - momentum) * torch.softmax(logits.detach(), dim=1)
    return -(torch.log(torch.softmax(logits, dim=1)) * new_t).sum(dim=1).mean(), new_t


@pytest.mark.parametrize(("dtype", "rtol"), TOLERANCES)
def test_selc_targets_loss_and_grad(dtype: torch.dtype, rtol: float) -> None:
    logits, labels = _inputs(dtype)
    t0 = F.one_hot(labels, C).to(dtype)  # SELC starts from the one-hot noisy labels
    ref_loss, ref_grad = _value_and_grad(lambda z: ref_selc(z, t0, 0.9)[0], logits)
    ref_t = ref_selc(logits, t0, 0.9)[1]
    new_t = alr_update_targets(t0, torch.softmax(logits, dim=1), 0.9)
    loss, grad = _value_and_grad(lambda z: alr_loss(z, new_t, 0.0), logits)
    _close(new_t, ref_t, rtol)
    _close(loss, ref_loss, rtol)
    _close(grad, ref_grad, rtol)


# ------------------------------------------------------------------ DivideMix (LiJunnan1992/DivideMix Train_cifar.py)
def ref_semi_loss(outputs_x, targets_x, outputs_u, targets_u):  # noqa: ANN001, ANN201
    """``SemiLoss``: Lx = -mean sum log_softmax * t; Lu = mean((softmax_u - t_u)^2) over rows and classes."""
    lx = -torch.mean(torch.sum(F.log_softmax(outputs_x, dim=1) * targets_x, dim=1))
    lu = torch.mean((torch.softmax(outputs_u, dim=1) - targets_u) ** 2)
    return lx, lu


def ref_penalty(logits: torch.Tensor) -> torch.Tensor:
    """The regulariser of ``train``: sum(prior log(prior / mean softmax)), prior uniform."""
    prior = torch.ones(logits.shape[1], dtype=logits.dtype) / logits.shape[1]
    return torch.sum(prior * torch.log(prior / torch.softmax(logits, dim=1).mean(0)))


def ref_rampup(current: float, warm_up: int, lambda_u: float, rampup_length: int = 16) -> float:
    """``linear_rampup``: lambda_u * clip((current - warm_up) / 16, 0, 1)."""
    return lambda_u * float(np.clip((current - warm_up) / rampup_length, 0.0, 1.0))


@pytest.mark.parametrize(("dtype", "rtol"), TOLERANCES)
def test_dividemix_semi_loss_penalty_and_grads(dtype: torch.dtype, rtol: float) -> None:
    logits, _ = _inputs(dtype)
    g = torch.Generator().manual_seed(1)
    targets = torch.softmax(torch.randn(B, C, generator=g, dtype=torch.float64) * 2, dim=1).to(dtype)
    half = B // 2

    def ref_total(z: torch.Tensor) -> torch.Tensor:
        lx, lu = ref_semi_loss(z[:half], targets[:half], z[half:], targets[half:])
        return lx + 7.0 * lu + ref_penalty(z)

    def ours_total(z: torch.Tensor) -> torch.Tensor:
        lx, lu, lreg = mixmatch_loss(z, targets, half)
        return lx + 7.0 * lu + lreg

    lx, lu, lreg = mixmatch_loss(logits, targets, half)
    rlx, rlu = ref_semi_loss(logits[:half], targets[:half], logits[half:], targets[half:])
    for a, b in ((lx, rlx), (lu, rlu), (lreg, ref_penalty(logits))):
        _close(a, b, rtol)
    _close(_value_and_grad(ours_total, logits)[1], _value_and_grad(ref_total, logits)[1], rtol)


@pytest.mark.parametrize("progress", [0.0, 9.5, 10.0, 13.25, 18.0, 26.0, 40.0])
def test_dividemix_rampup_equals_the_reference(progress: float) -> None:
    assert 25.0 * linear_rampup(progress, 10, 16) == pytest.approx(ref_rampup(progress, 10, 25.0), rel=1e-15)


@pytest.mark.parametrize(("dtype", "rtol"), TOLERANCES)
def test_neg_entropy_matches_and_is_finite_at_extreme_logits(dtype: torch.dtype, rtol: float) -> None:
    """``NegEntropy``: mean sum p log p. The warm-up adds it to CE (CE - H)."""
    logits, _ = _inputs(dtype)
    probs = torch.softmax(logits, dim=1)
    ref = torch.mean(torch.sum(probs.log() * probs, dim=1))
    _close(-entropy_from_logits(logits).mean(), ref, rtol)
    _close(_value_and_grad(lambda z: -entropy_from_logits(z).mean(), logits)[1],
           _value_and_grad(lambda z: torch.mean(torch.sum(torch.softmax(z, 1).log() * torch.softmax(z, 1), 1)),
                           logits)[1], rtol)
    extreme = torch.tensor([[0.0, 2000.0, -2000.0]], dtype=dtype)  # the reference gives 0 * log 0 = NaN
    value, grad = _value_and_grad(lambda z: entropy_from_logits(z).mean(), extreme)
    assert float(value) == 0.0 and torch.isfinite(grad).all()


@pytest.mark.parametrize(("dtype", "rtol"), TOLERANCES)
def test_co_guessing_and_co_refinement_targets(dtype: torch.dtype, rtol: float) -> None:
    """``train``: pu = mean of 4 softmaxes, targets_u = pu^(1/T) normalised; px = w y + (1 - w) mean of the
    net's 2 softmaxes, targets_x = px^(1/T) normalised."""
    g = torch.Generator().manual_seed(2)
    outs = [torch.randn(B, C, generator=g, dtype=torch.float64).to(dtype) * 2 for _ in range(4)]
    labels = torch.randint(0, C, (B,), generator=g)
    w = torch.rand(B, generator=g, dtype=torch.float64).to(dtype)
    sm = [torch.softmax(o, dim=1) for o in outs]
    pu = (sm[0] + sm[1] + sm[2] + sm[3]) / 4
    ptu = pu ** (1 / 0.5)
    ref_u = ptu / ptu.sum(dim=1, keepdim=True)
    px = (sm[0] + sm[1]) / 2
    px = w[:, None] * torch.zeros(B, C, dtype=dtype).scatter_(1, labels[:, None], 1) + (1 - w[:, None]) * px
    ptx = px ** (1 / 0.5)
    ref_x = ptx / ptx.sum(dim=1, keepdim=True)
    _close(co_guess_targets(sm, 0.5), ref_u, rtol)
    _close(co_refine_targets(w, labels, sm[:2], 0.5), ref_x, rtol)


def test_eval_train_normalisation_and_co_divide_equal_the_reference() -> None:
    """``eval_train``: per-sample CE, min-max normalised, a 2-component GMM (max_iter 10, tol 1e-2, reg_covar
    5e-4) and the posterior of the low-mean component; same random_state on both sides."""
    from sklearn.mixture import GaussianMixture

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(400, C, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, C, (400,), generator=g)
    losses = F.cross_entropy(logits, labels, reduction="none")
    ref_losses = (losses - losses.min()) / (losses.max() - losses.min())
    torch.testing.assert_close(normalize_losses(losses), ref_losses, rtol=1e-12, atol=0)
    column = ref_losses.numpy().reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=7)
    gmm.fit(column)
    ref_prob = gmm.predict_proba(column)[:, gmm.means_.argmin()]
    prob = gmm_clean_probability(ref_losses.numpy(), random_state=7)
    np.testing.assert_allclose(prob, ref_prob, rtol=1e-10, atol=0)
    assert np.array_equal(prob > 0.5, ref_prob > 0.5) and 0 < (prob > 0.5).sum() < 400


# ------------------------------------------------------------------ REFERENCE_FUNCTIONS of every method module
BUILTIN_MODULES = sorted({METHODS.get(name).__module__ for name in METHODS.list()
                          if METHODS.get(name).__module__.startswith("noisybench.methods.")})


@pytest.mark.parametrize("module_name", BUILTIN_MODULES)
def test_every_method_module_names_its_numerics_as_function_objects(module_name: str) -> None:
    """``REFERENCE_FUNCTIONS``: a tuple (empty where the method has no numerics of its own, as CE) of module-level
    callables given as function objects, which ``noisybench check-method`` accepts."""
    module = sys.modules[module_name]
    entries = module.REFERENCE_FUNCTIONS
    assert isinstance(entries, tuple)
    for function in entries:
        assert callable(function) and not isinstance(function, str)
        assert getattr(module, function.__name__) is function, f"{function.__name__} is not module-level"
    assert reference_function_problems(module) == []


def test_check_method_names_what_is_wrong_with_reference_functions() -> None:
    module = types.ModuleType("probe_module")

    def probe_loss(logits: torch.Tensor) -> torch.Tensor:
        return logits.sum()

    def hidden(logits: torch.Tensor) -> torch.Tensor:
        return logits.sum()

    module.probe_loss = probe_loss
    assert reference_function_problems(module) == []  # declaring none is allowed
    for ok in [(probe_loss,), ("probe_loss",), ()]:
        module.REFERENCE_FUNCTIONS = ok
        assert reference_function_problems(module) == []
    module.REFERENCE_FUNCTIONS = [probe_loss]
    assert reference_function_problems(module) == ["REFERENCE_FUNCTIONS is a list, not a tuple"]
    module.REFERENCE_FUNCTIONS = (probe_loss, hidden, "missing", 3)
    assert reference_function_problems(module) == [
        f"{name!r} is not a module-level callable of probe_module" for name in ("hidden", "missing", "3")]
