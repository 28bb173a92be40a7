"""Actor and critics of SAC (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications").

The actor is a tanh-squashed Gaussian. The twin critics are stored as one stacked module so that both run in
a single batched matmul per layer; ``TwinCritic.plain_state_dicts`` converts them to two ordinary
``mlp`` state_dicts (the checkpoint format), so a checkpoint's ``q1``/``q2`` load into a plain MLP critic.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as Spinning Up; keeps exp(log_std) finite
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU, output_activation: type[nn.Module] | None = None) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (and after the last if given)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        last = i == len(sizes) - 2
        if not last:
            layers.append(activation())
        elif output_activation is not None:
            layers.append(output_activation())
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Squashed Gaussian policy: ``a = tanh(mu(s) + std(s) * eps)``, actions in [-1, 1]^act_dim."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]):
        super().__init__()
        self.trunk = mlp([obs_dim, *hidden], output_activation=nn.ReLU)
        self.mu = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False, with_logprob: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """obs: (B, obs_dim) -> action (B, act_dim) in [-1, 1], log-probability (B,) or None.

        ``deterministic`` returns ``tanh(mu)``. The log-probability includes the tanh change of variables
        (Haarnoja et al. 2018, appendix C): log pi(a|s) = log N(u; mu, std) - sum log(1 - tanh(u)^2), with
        log(1 - tanh(u)^2) written as 2 (log 2 - u - softplus(-2u)), which stays finite for large |u|.
        """
        h = self.trunk(obs)
        mu = self.mu(h)
        log_std = self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)
        if deterministic:
            u, eps = mu, torch.zeros_like(mu)
        else:
            eps = torch.randn_like(mu)
            u = mu + log_std.exp() * eps
        action = torch.tanh(u)
        if not with_logprob:
            return action, None
        # (u - mu) / std == eps exactly, so the Gaussian term needs no division.
        gauss = (-0.5 * eps.pow(2) - log_std - _HALF_LOG_2PI).sum(-1)
        squash = (2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)
        return action, gauss - squash


class TwinCritic(nn.Module):
    """``n`` Q-networks Q(s, a) with identical shapes, stored stacked: ``weights[l]`` is (n, in, out).

    One ``torch.baddbmm`` per layer evaluates all critics at once, which is faster than ``n`` separate
    MLPs on both CPU and GPU. Initialisation matches ``nn.Linear`` (uniform in +-1/sqrt(fan_in)).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], n: int = 2):
        super().__init__()
        self.n = n
        self.sizes = [obs_dim + act_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(n_in)
            self.weights.append(nn.Parameter(torch.empty(n, n_in, n_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, n_out).uniform_(-bound, bound)))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """obs: (B, obs_dim), act: (B, act_dim) -> Q values (n, B), one row per critic."""
        x = torch.cat([obs, act], dim=-1).expand(self.n, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = F.relu(x)
        return x.squeeze(-1)

    def plain_state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """One state_dict per critic, in the key layout of ``mlp(self.sizes)`` (copies, detached)."""
        out = []
        for k in range(self.n):
            sd = {}
            for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                sd[f"{2 * layer}.weight"] = w[k].detach().t().clone()  # nn.Linear stores (out, in)
                sd[f"{2 * layer}.bias"] = b[k, 0].detach().clone()
            out.append(sd)
        return out

    @torch.no_grad()
    def load_plain_state_dicts(self, state_dicts: list[dict[str, torch.Tensor]]) -> None:
        """Inverse of ``plain_state_dicts``; raises ``ValueError`` on a missing key or a shape mismatch."""
        if len(state_dicts) != self.n:
            raise ValueError(f"expected {self.n} critic state_dicts, got {len(state_dicts)}")
        for k, sd in enumerate(state_dicts):
            expected = {f"{2 * i}.{p}" for i in range(len(self.weights)) for p in ("weight", "bias")}
            if set(sd) != expected:
                raise ValueError(f"critic {k + 1}: keys {sorted(sd)} differ from {sorted(expected)}")
            for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                src_w, src_b = sd[f"{2 * layer}.weight"], sd[f"{2 * layer}.bias"]
                if src_w.t().shape != w[k].shape or src_b.shape != b[k, 0].shape:
                    raise ValueError(
                        f"critic {k + 1} layer {layer}: shape {tuple(src_w.shape)} does not fit {tuple(w[k].t().shape)}"
                    )
                w[k].copy_(src_w.t())
                b[k, 0].copy_(src_b)
