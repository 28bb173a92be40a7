"""Actor log-probabilities and the stacked twin critic's equivalence with plain MLP critics."""

import math

import numpy as np
import pytest
import torch

from robot6.learn.networks import Actor, DeterministicPolicy, TwinCritic, action_bounds, from_env_bounds, mlp, to_env_bounds


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
    # Exactly the modules' result (forward skips the Module calls; state_dicts use the modules), and exactly
    # the one deterministic forward that evaluation and export run.
    assert torch.equal(a, torch.tanh(actor.mu(actor.trunk(obs))))
    assert torch.equal(a, actor.deterministic(obs))
    torch.manual_seed(0)
    sampled, _ = actor(obs)
    torch.manual_seed(0)
    h = actor.trunk(obs)
    u = actor.mu(h) + actor.log_std(h).clamp(-20, 2).exp() * torch.randn(100, 2)
    assert torch.equal(sampled, torch.tanh(u))
    assert sampled.abs().max() <= 1


def test_the_deterministic_policy_is_the_actor_rescaled_to_the_env_bounds():
    """DeterministicPolicy (what robot6.evaluate runs and robot6.export writes) = to_env_bounds(actor.deterministic);
    the numpy fast path the trainer acts with gives the same action; to_env_bounds and from_env_bounds invert
    each other for numpy arrays and tensors alike."""
    actor = Actor(5, 3, [16, 16])
    low, high = np.array([-2.0, 0.0, -0.5], np.float32), np.array([2.0, 1.0, 0.5], np.float32)
    half = (high - low) / 2
    import gymnasium as gym

    bounds = action_bounds(gym.spaces.Box(low, high))
    assert np.array_equal(bounds[0], low) and np.array_equal(bounds[1], half) and bounds[1].dtype == np.float32
    policy = DeterministicPolicy(actor, low, high)
    obs = torch.randn(64, 5) * 3
    with torch.no_grad():
        env_actions = policy(obs)
        expected = to_env_bounds(actor.deterministic(obs), torch.from_numpy(low), torch.from_numpy(half))
    assert torch.equal(env_actions, expected)
    assert (env_actions >= torch.from_numpy(low)).all() and (env_actions <= torch.from_numpy(high)).all()
    fast = np.stack([to_env_bounds(actor.act_numpy(o.numpy(), deterministic=True), low, half) for o in obs])
    np.testing.assert_allclose(fast, env_actions.numpy(), rtol=1e-5, atol=1e-6)
    back = from_env_bounds(env_actions, torch.from_numpy(low), torch.from_numpy(half))
    torch.testing.assert_close(back, actor.deterministic(obs).detach(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_env_bounds(fast, low, half), back.numpy(), rtol=1e-5, atol=1e-5)


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
