"""Actor log-probabilities and the stacked twin critic's equivalence with plain MLP critics."""

import math

import pytest
import torch

from sac.networks import Actor, TwinCritic, mlp


def test_squashed_gaussian_logprob_matches_change_of_variables():
    torch.manual_seed(0)
    actor = Actor(5, 3, [16]).double()
    obs = torch.randn(64, 5, dtype=torch.float64)
    action, logp = actor(obs)
    # Reference: log N(u; mu, std) - sum log |d tanh(u)/du|, with u = atanh(a), from torch.distributions.
    h = actor.trunk(obs)
    mu, std = actor.mu(h), actor.log_std(h).clamp(-20, 2).exp()
    u = torch.atanh(action.clamp(-1 + 1e-12, 1 - 1e-12))
    reference = torch.distributions.Normal(mu, std).log_prob(u).sum(-1) - torch.log1p(-torch.tanh(u) ** 2).sum(-1)
    torch.testing.assert_close(logp, reference, rtol=1e-6, atol=1e-6)


def test_logprob_is_a_density_in_one_dimension():
    # Integrating exp(log pi(a)) over a in (-1, 1) numerically gives 1.
    torch.manual_seed(1)
    actor = Actor(2, 1, [8]).double()
    obs = torch.randn(1, 2, dtype=torch.float64)
    h = actor.trunk(obs)
    mu, log_std = actor.mu(h), actor.log_std(h)
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 200001, dtype=torch.float64).unsqueeze(-1)
    u = torch.atanh(a)
    # Evaluate the actor's own formula at fixed u by feeding eps = (u - mu) / std through a stub of randn_like.
    eps = (u - mu) / log_std.exp()
    gauss = -0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)
    squash = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
    density = (gauss - squash).exp().squeeze(-1)
    assert torch.trapezoid(density, a.squeeze(-1)).item() == pytest.approx(1.0, abs=1e-3)


def test_deterministic_action_is_tanh_mu_and_actions_are_bounded():
    actor = Actor(4, 2, [8])
    obs = torch.randn(100, 4) * 10
    a, logp = actor(obs, deterministic=True, with_logprob=False)
    assert logp is None
    # Exactly the modules' result (forward skips the Module calls; export.py and state_dicts use the modules).
    assert torch.equal(a, torch.tanh(actor.mu(actor.trunk(obs))))
    torch.manual_seed(0)
    sampled, _ = actor(obs)
    torch.manual_seed(0)
    h = actor.trunk(obs)
    u = actor.mu(h) + actor.log_std(h).clamp(-20, 2).exp() * torch.randn(100, 2)
    assert torch.equal(sampled, torch.tanh(u))
    assert sampled.abs().max() <= 1


def test_twin_critic_equals_two_plain_mlps():
    torch.manual_seed(0)
    twin = TwinCritic(5, 2, [16, 16])
    obs, act = torch.randn(7, 5), torch.randn(7, 2)
    q = twin(obs, act)
    assert q.shape == (2, 7)
    for k, sd in enumerate(twin.plain_state_dicts()):
        plain = mlp([7, 16, 16, 1])
        plain.load_state_dict(sd)  # strict: the checkpoint's q1/q2 fit a plain MLP critic
        torch.testing.assert_close(plain(torch.cat([obs, act], -1)).squeeze(-1), q[k])
    other = TwinCritic(5, 2, [16, 16])
    other.load_plain_state_dicts(twin.plain_state_dicts())
    torch.testing.assert_close(other(obs, act), q, rtol=0, atol=0)


def test_loading_mismatched_critic_is_refused():
    sds = TwinCritic(5, 2, [16]).plain_state_dicts()
    with pytest.raises(ValueError, match="shape"):
        TwinCritic(5, 2, [32]).load_plain_state_dicts(sds)
    del sds[0]["0.bias"]
    with pytest.raises(ValueError, match="keys"):
        TwinCritic(5, 2, [16]).load_plain_state_dicts(sds)
