"""GRPO loss and advantages against hand-computed values."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from research_agents.grpo.advantages import group_advantages, zero_variance_share  # noqa: E402
from research_agents.grpo.loss import aggregate, grpo_loss, k3_kl  # noqa: E402


def test_advantages_group_normalised_by_hand() -> None:
    # group 0: rewards 1, 0 -> mean .5, unbiased std .7071 ; group 1: 2, 2, 5 -> mean 3, std 1.732
    adv = group_advantages([1.0, 0.0, 2.0, 2.0, 5.0], [0, 0, 1, 1, 1], eps=0.0)
    s0, s1 = math.sqrt(0.5), math.sqrt(3.0)
    expected = [0.5 / s0, -0.5 / s0, -1 / s1, -1 / s1, 2 / s1]
    assert adv.tolist() == pytest.approx(expected, rel=1e-5)


def test_advantages_without_std_scaling_and_degenerate_groups() -> None:
    assert group_advantages([3.0, 1.0], [7, 7], scale_std=False).tolist() == [1.0, -1.0]
    # all-equal group and a singleton group carry no signal
    assert group_advantages([1.0, 1.0, 0.3], [0, 0, 1]).tolist() == [0.0, 0.0, 0.0]
    assert zero_variance_share([1.0, 1.0, 0.3, 0.0], [0, 0, 1, 1]) == 0.5
    with pytest.raises(ValueError, match="1-d"):
        group_advantages([1.0, 2.0], [0])


def test_k3_kl_values() -> None:
    logp = torch.tensor([math.log(0.5), math.log(0.2)])
    ref = torch.tensor([math.log(0.5), math.log(0.4)])
    # exp(d) - d - 1 with d = ref - logp: 0 and 2 - ln 2 - 1
    assert k3_kl(logp, ref).tolist() == pytest.approx([0.0, 1 - math.log(2)], abs=1e-6)


def test_aggregations_by_hand() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert float(aggregate(values, mask, "token_mean")) == pytest.approx(10 / 4)
    assert float(aggregate(values, mask, "seq_mean_token_mean")) == pytest.approx((2 + 4) / 2)
    assert float(aggregate(values, mask, "seq_mean_token_sum_norm", norm_len=5)) == pytest.approx(
        10 / (2 * 5)
    )
    # gradient accumulation: two halves with the global normaliser add up to the whole
    half = aggregate(values[:1], mask[:1], "token_mean", total_tokens=4.0) + aggregate(
        values[1:], mask[1:], "token_mean", total_tokens=4.0
    )
    assert float(half) == pytest.approx(10 / 4)


def test_clipped_loss_by_hand() -> None:
    # ratios e^{0.5} = 1.6487 (positive adv: clipped at 1.28) and e^{-0.5} = .6065 (negative
    # adv: clipped at 0.8 -> the max of -A*r terms picks the unclipped 0.6065*... for A<0)
    logp = torch.tensor([[0.5, 0.0], [-0.5, 0.0]], requires_grad=True)
    old = torch.zeros(2, 2)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 0], [1, 0]])
    out = grpo_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
    # token 1: max(-1*1.6487, -1*1.28) = -1.28 (clipped); token 2: max(0.6065, 0.8) = 0.8 (clipped)
    assert out.loss.item() == pytest.approx((-1.28 + 0.8) / 2, abs=1e-5)
    assert float(out.clip_fraction) == pytest.approx(1.0)
    out.loss.backward()
    # both tokens clipped: no gradient anywhere; masked positions never get one
    assert logp.grad is not None
    assert logp.grad.abs().sum().item() == 0.0


def test_gradient_flows_only_through_mask_one_tokens() -> None:
    logp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    old = logp.detach().clone()
    mask = torch.tensor([[1, 0, 1]])
    out = grpo_loss(logp, old, torch.tensor([2.0]), mask, aggregation="token_mean")
    out.loss.backward()
    assert logp.grad is not None
    grad = logp.grad[0].tolist()
    # d/dlogp of -A * exp(logp - old) / 2 at ratio 1 is -A/2 = -1 on mask-1 tokens, 0 elsewhere
    assert grad == pytest.approx([-1.0, 0.0, -1.0])


def test_kl_term_and_beta() -> None:
    logp = torch.tensor([[math.log(0.2)]], requires_grad=True)
    ref = torch.tensor([[math.log(0.4)]])
    out = grpo_loss(
        logp, logp.detach(), torch.tensor([0.0]), torch.tensor([[1]]), beta=0.5, ref_logp=ref
    )
    assert float(out.kl) == pytest.approx(1 - math.log(2), abs=1e-6)
    assert out.loss.item() == pytest.approx(0.5 * (1 - math.log(2)), abs=1e-6)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, logp.detach(), torch.tensor([0.0]), torch.tensor([[1]]), beta=0.1)


def test_entropy_bonus_lowers_the_loss_and_pushes_entropy_up() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, requires_grad=True)
    logp_all = torch.log_softmax(logits, -1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    taken = logp_all[..., 0]
    mask = torch.ones(2, 5)
    adv = torch.tensor([1.0, -1.0])
    plain = grpo_loss(taken, taken.detach(), adv, mask)
    bonus = grpo_loss(taken, taken.detach(), adv, mask, entropy=entropy, entropy_coef=0.5)
    assert bonus.entropy is not None
    assert torch.allclose(bonus.loss, plain.loss - 0.5 * bonus.entropy)
    (grad,) = torch.autograd.grad(-entropy.mean(), logits, retain_graph=True)
    (grad_loss,) = torch.autograd.grad(bonus.loss - plain.loss, logits)
    assert torch.allclose(grad_loss, 0.5 * grad, atol=1e-6)
    with pytest.raises(ValueError, match="entropy_coef > 0 needs entropy"):
        grpo_loss(taken, taken.detach(), adv, mask, entropy_coef=0.1)


def test_kl_clamp_bounds_the_k3_estimate() -> None:
    logp = torch.tensor([[-20.0, -1.0]])
    ref = torch.tensor([[-0.1, -1.0]])
    assert k3_kl(logp, ref)[0, 0] > 1e6
    assert k3_kl(logp, ref, clamp=10.0)[0, 0] == 10.0
    assert k3_kl(logp, ref, clamp=10.0)[0, 1] == 0.0
