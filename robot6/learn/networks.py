"""Actor and critics of SAC (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications").

The actor is a tanh-squashed Gaussian. The twin critics are stored as one stacked module so that both run in
a single batched matmul per layer; ``TwinCritic.plain_state_dicts`` converts them to two ordinary
``mlp`` state_dicts (the checkpoint format), so a checkpoint's ``q1``/``q2`` load into a plain MLP critic.

Besides ``forward`` (autograd), both networks have a traced forward and a hand-written backward
(``Actor.sample_traced``/``Actor.backward``, ``TwinCritic.forward_traced``/``TwinCritic.backward``): the same
math with the gradients written out, which ``SAC.update`` uses because on a CPU the autograd engine's
bookkeeping costs about as much as the small matmuls themselves. ``tests/test_agent.py`` checks them against
autograd. They run under ``torch.no_grad()`` or ``torch.inference_mode()`` (``SAC``'s updates use the latter,
which skips autograd's bookkeeping on every call) and support ReLU MLPs only, which is what these classes build.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as Spinning Up; keeps exp(log_std) finite
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG_2 = math.log(2.0)
_relu_backward = torch.ops.aten.threshold_backward  # grad where the ReLU output is > 0, else 0
_hardtanh_backward = torch.ops.aten.hardtanh_backward  # grad where min < x < max, else 0


def views_like(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """Views of the 1-d ``flat`` shaped as the tensors ``like``, one after the other from its start."""
    views, start = [], 0
    for t in like:
        views.append(flat[start : start + t.numel()].view(t.shape))
        start += t.numel()
    return views


def to_env_bounds(action, low, half_range):
    """A policy's action in [-1, 1] -> the env's Box ``[low, high]`` (``half_range = (high - low) / 2``); numpy
    arrays and tensors alike. The one place the rescaling is written: training, evaluation and export use it.
    (Stable-Baselines3's ``scale_action`` goes the other way; its ``unscale_action`` is this one.)"""
    return low + (action + 1.0) * half_range


def action_bounds(space) -> tuple[np.ndarray, np.ndarray]:
    """``(low, half_range)`` of a Box action space, float32: what ``to_env_bounds`` and ``from_env_bounds`` take."""
    low = space.low.astype(np.float32)
    return low, (space.high.astype(np.float32) - low) / 2


def from_env_bounds(env_action, low, half_range):
    """Inverse of ``to_env_bounds``: an env action in ``[low, high]`` (warm-up draws, scripted demonstrations)
    -> the policy's [-1, 1], as the replay buffer stores actions."""
    return (env_action - low) / half_range - 1.0


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
        # The trunk's Linear layers as a plain list: slicing the Sequential builds a new module on every call.
        self._linears: list[nn.Linear] = list(self.trunk)[::2]
        self._all_linears: list[nn.Linear] = [*self._linears, self.mu, self.log_std]  # what the caches below hold
        self._numpy_cache: tuple[int, list[tuple[np.ndarray, np.ndarray]]] | None = None
        self._transposed_cache: list[torch.Tensor] | None = None
        self._grad_views_cache: tuple[torch.Tensor, list[torch.Tensor]] | None = None
        # The log-probability's constant terms, -act_dim (log(2 pi)/2 + 2 log 2), as a 0-d tensor: an ATen call
        # given a Python float wraps it in a new tensor first, ~2 us a call on a CPU. Not in the state_dict.
        self.register_buffer("_logp_offset", torch.tensor(-act_dim * (_HALF_LOG_2PI + 2.0 * _LOG_2)), persistent=False)

    def act_numpy(self, obs: np.ndarray, deterministic: bool = False, eps: np.ndarray | None = None) -> np.ndarray:
        """``forward`` for one observation of an actor on a CPU, in numpy: (obs_dim,) -> action (act_dim,)
        float32, without the log-probability. The same action as ``forward`` to float rounding, with the
        standard normal noise ``eps`` (act_dim,) if given, else drawn from torch's generator as ``forward``
        draws it (none when ``deterministic``). A numpy call costs a fraction of a torch one, which matters at
        one row: an action at 80x80 takes about 20 us instead of 66.
        """
        layers = self._numpy_weights()
        h = np.asarray(obs, dtype=np.float32)
        for w, b in layers[:-2]:
            h = np.maximum(w @ h + b, 0.0)
        (w_mu, b_mu), (w_log_std, b_log_std) = layers[-2:]
        mu = w_mu @ h + b_mu
        if deterministic:
            return np.tanh(mu)
        log_std = np.minimum(np.maximum(w_log_std @ h + b_log_std, LOG_STD_MIN), LOG_STD_MAX)  # np.clip is slower
        if eps is None:
            eps = torch.randn(mu.shape[0]).numpy()
        return np.tanh(mu + np.exp(log_std) * eps)

    def _weights_t(self) -> list[torch.Tensor]:
        """The Linear layers' weights (trunk, mu, log_std) transposed, (in, out): views made once (see
        ``TwinCritic._transposed``)."""
        if torch.compiler.is_compiling():
            return [lin.weight.t() for lin in self._all_linears]
        cache = self._transposed_cache
        if cache is None or cache[0].data_ptr() != self._linears[0].weight.data_ptr():
            with torch.no_grad():
                cache = self._transposed_cache = [lin.weight.t() for lin in self._all_linears]
        return cache

    def _numpy_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight, bias) of each Linear (trunk, mu, log_std) as numpy arrays sharing the parameters' memory:
        made once, they follow the in-place optimizer steps; made again if the storage changes."""
        cache = self._numpy_cache
        if cache is None or cache[0] != self._linears[0].weight.data_ptr():
            arrays = [(lin.weight.detach().numpy(), lin.bias.detach().numpy()) for lin in self._all_linears]
            cache = self._numpy_cache = (self._linears[0].weight.data_ptr(), arrays)
        return cache[1]

    def _heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs: (B, obs_dim) -> the Gaussian's mean and unclamped log-std before the tanh, (B, act_dim) each;
        ``self.trunk``, ``self.mu`` and ``self.log_std`` without the Module calls (a third of an action's cost)."""
        h = obs
        for lin in self._linears:
            h = F.relu(F.linear(h, lin.weight, lin.bias))
        return F.linear(h, self.mu.weight, self.mu.bias), F.linear(h, self.log_std.weight, self.log_std.bias)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic policy, ``tanh(mu(obs))``: obs (B, obs_dim) -> action (B, act_dim) in [-1, 1].
        What evaluation and export run; ``act_numpy(obs, deterministic=True)`` is its numpy twin for one
        observation (a test ties them)."""
        return torch.tanh(self._heads(obs)[0])

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False, with_logprob: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """obs: (B, obs_dim) -> action (B, act_dim) in [-1, 1], log-probability (B,) or None.

        ``deterministic`` returns ``tanh(mu)``. The log-probability includes the tanh change of variables
        (Haarnoja et al. 2018, appendix C): log pi(a|s) = log N(u; mu, std) - sum log(1 - tanh(u)^2), with
        log(1 - tanh(u)^2) written as 2 (log 2 - u - softplus(-2u)), which stays finite for large |u|.
        """
        mu, log_std = self._heads(obs)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
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

    def sample_traced(self, obs: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, ActorTrace]:
        """``forward(obs)`` with the noise ``eps`` given, keeping what ``backward`` needs. Use without autograd.

        The same values as ``forward`` to float rounding, in fewer ATen calls: the log-probability's
        per-dimension terms, ``-eps^2/2 - log_std - log(2 pi)/2 - 2 (log 2 - u - softplus(-2u))``, are summed
        as ``2 (u + softplus(-2u) - (log_std + eps^2/2) / 2)`` with the constants added after the sum.
        """
        inputs = [obs]
        h = obs
        # mm then add_: addmm (F.linear) copies the broadcast bias into its output first, slower on a CPU.
        w_ts = self._weights_t()
        for lin, w_t in zip(self._linears, w_ts[:-2], strict=True):
            h = torch.mm(h, w_t).add_(lin.bias).relu_()
            inputs.append(h)
        mu = torch.mm(h, w_ts[-2]).add_(self.mu.bias)
        raw_log_std = torch.mm(h, w_ts[-1]).add_(self.log_std.bias)
        log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std_eps = log_std.exp().mul_(eps)
        u = mu.add_(std_eps)
        action = torch.tanh(u)
        # softplus with beta=-2 is -softplus(-2u)/2 (its linear branch, for u < -10, returns u = -(-2u)/2 too).
        terms = torch.sub(u, F.softplus(u, beta=-2.0), alpha=2.0).sub_(torch.addcmul(log_std, eps, eps, value=0.5), alpha=0.5)
        logp = torch.add(self._logp_offset, terms.sum(-1), alpha=2.0)  # 2 sum - act_dim (log(2 pi)/2 + 2 log 2)
        return action, logp, ActorTrace(inputs, raw_log_std, std_eps, action)

    def backward(
        self, trace: ActorTrace, d_action: torch.Tensor, d_logp: float | torch.Tensor, out: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Gradients of a loss L for ``self.parameters()`` (same order), given dL/d(action) (B, act_dim) and
        dL/d(logp), a scalar (the same for every sample: a float or a 0-d tensor) or a (B, 1) column. With
        ``out``, a tensor laid out as ``flatten_parameters``' (one element per parameter element), the gradients
        are written into it and returned as its views.

        From ``u = mu + std * eps``, ``action = tanh(u)``, ``logp = sum(-eps^2/2 - log_std - log(2 pi)/2)
        - sum(log(1 - tanh(u)^2))``: dlogp/du = 2 tanh(u), dlogp/dlog_std = -1, du/dlog_std = std * eps;
        the clamp passes gradient where ``LOG_STD_MIN < log_std < LOG_STD_MAX`` (one ATen call; autograd's clamp
        passes it at the bounds themselves too, a subgradient choice at points a float never lands on in practice).
        """
        a = trace.action
        du = torch.addcmul(d_action, d_action, a * a, value=-1.0)  # d_action * (1 - a^2)
        du = du.add_(a, alpha=2.0 * d_logp) if isinstance(d_logp, float) else du.addcmul_(a, d_logp, value=2.0)
        raw = trace.raw_log_std
        d_log_std = _hardtanh_backward((du * trace.std_eps).sub_(d_logp), raw, LOG_STD_MIN, LOG_STD_MAX)
        h = trace.inputs[-1]
        # With out: each gradient written into its view of out (the same ATen calls, no new tensors).
        o = self.grad_views(out) if out is not None else [None] * (2 * len(self._all_linears))
        grads = [torch.mm(du.t(), h, out=o[-4]), torch.sum(du, 0, out=o[-3]),  # mu, log_std
                 torch.mm(d_log_std.t(), h, out=o[-2]), torch.sum(d_log_std, 0, out=o[-1])]
        d = torch.mm(du, self.mu.weight).addmm_(d_log_std, self.log_std.weight)
        trunk: list[torch.Tensor] = []
        linears = self._linears
        for i in range(len(linears) - 1, -1, -1):
            d = _relu_backward(d, trace.inputs[i + 1], 0)
            trunk[:0] = [torch.mm(d.t(), trace.inputs[i], out=o[2 * i]), torch.sum(d, 0, out=o[2 * i + 1])]
            if i > 0:
                d = torch.mm(d, linears[i].weight)
        return trunk + grads

    def flatten_parameters(self) -> torch.Tensor:
        """Move the parameters into one contiguous tensor, ``self.parameters()`` in order, each parameter a view
        of it (the same Parameter objects, the same values), and return it: ``SAC``'s fused Adam kernel over
        that one tensor and log_alpha took 9.4 us, over the eight parameters and log_alpha 25.5 us. Parameters
        given new storage later (a deepcopy, ``Module.to`` to another device) leave it: flatten again."""
        params = list(self.parameters())
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            for p, view in zip(params, views_like(flat, params), strict=True):
                p.data = view
        self._numpy_cache = self._transposed_cache = None
        return flat

    def grad_views(self, out: torch.Tensor) -> list[torch.Tensor]:
        """Views of ``out`` shaped as ``self.parameters()`` (the layout of ``flatten_parameters``), made once per
        buffer: ``backward`` writes the gradients into them."""
        cache = self._grad_views_cache
        if cache is None or cache[0] is not out:
            with torch.no_grad():
                cache = self._grad_views_cache = (out, views_like(out, list(self.parameters())))
        return cache[1]


class DeterministicPolicy(nn.Module):
    """The deterministic actor with its action rescaled to the env's bounds: obs (B, obs_dim) float32 ->
    action (B, act_dim) within [low, high]. What ``robot6.evaluate`` runs and ``robot6.export`` writes."""

    def __init__(self, actor: Actor, low: list[float] | np.ndarray, high: list[float] | np.ndarray):
        super().__init__()
        self.actor = actor
        self.register_buffer("low", torch.as_tensor(np.asarray(low, dtype=np.float32)))
        self.register_buffer("half_range", (torch.as_tensor(np.asarray(high, dtype=np.float32)) - self.low) / 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return to_env_bounds(self.actor.deterministic(obs), self.low, self.half_range)


class ActorTrace(NamedTuple):
    """What ``Actor.backward`` needs from ``Actor.sample_traced``: each Linear's input (and the last ReLU
    output), the unclamped log-std, ``std * eps`` and the action."""

    inputs: list[torch.Tensor]
    raw_log_std: torch.Tensor
    std_eps: torch.Tensor
    action: torch.Tensor

    def rows(self, start: int) -> ActorTrace:
        """The trace of rows ``start:`` only (the rows a loss is taken over)."""
        return ActorTrace([x[start:] for x in self.inputs], self.raw_log_std[start:], self.std_eps[start:], self.action[start:])


def join_critics(critics: list[TwinCritic]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Move the parameters of ``TwinCritic``s of one shape into shared storage: per layer, the weights
    (sum n, in, out) and biases (sum n, 1, out) of all their critics stacked, whose slices become the modules'
    parameters (the same Parameter objects, the same values). One ``forward_traced(x, layers)`` then evaluates
    all of them, a batched matmul per layer (``SAC`` evaluates its critics and their targets so). Parameters
    given new storage later (a deepcopy, ``Module.to`` to another device) leave the stack: join them again.
    """
    layers = []
    with torch.no_grad():
        for i in range(len(critics[0]._layers)):
            w = torch.cat([c._layers[i][0] for c in critics])
            b = torch.cat([c._layers[i][1] for c in critics])
            start = 0
            for c in critics:
                c._layers[i][0].data, c._layers[i][1].data = w[start : start + c.n], b[start : start + c.n]
                start += c.n
            layers.append((w, b))
    return layers


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
        # Plain lists of the same Parameters for the traced passes (iterating a ParameterList is slow).
        # Module.to() and load_state_dict() keep Parameter objects, so the lists stay valid.
        self._layers: list[tuple[nn.Parameter, nn.Parameter]] = list(zip(self.weights, self.biases, strict=True))
        self._transposed_cache: tuple[list[torch.Tensor], dict[int, torch.Tensor]] | None = None

    def _transposed(self) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """The weights transposed, (n, out, in), as views made once, and (filled by ``backward``, keyed by
        ``input_from``) the first layer's transposed weight for the inputs from that column on. Making a view is
        an ATen call each time; made once, it follows the weights as the optimizer updates them in place. Made
        again when the weights' storage changes (``Module.to``, a deepcopy)."""
        if torch.compiler.is_compiling():  # traced: views cost nothing in a compiled graph
            return [w.transpose(1, 2) for w, _ in self._layers], {}
        cache = self._transposed_cache
        if cache is None or cache[0][0].data_ptr() != self._layers[0][0].data_ptr():
            with torch.no_grad():
                cache = self._transposed_cache = ([w.transpose(1, 2) for w, _ in self._layers], {})
        return cache

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """obs: (B, obs_dim), act: (B, act_dim) -> Q values (n, B), one row per critic."""
        x = torch.cat([obs, act], dim=-1).expand(self.n, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = F.relu(x)
        return x.squeeze(-1)

    def forward_traced(
        self, x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x = cat(obs, act): (B, in) -> Q values (n, B, 1) and each layer's input, for ``backward``.

        With ``layers`` (``join_critics``' stacked layers, k critics): x is (k, B, in), one input per critic,
        and the result (k, B, 1). The same values as ``forward``; bias added after the matmul (a broadcast
        bias in ``baddbmm`` is copied first, which is slower on a CPU). Use without autograd.
        """
        if layers is None:
            x, layers = x.expand(self.n, -1, -1), self._layers
        inputs = [x]
        last = len(layers) - 1
        for i, (w, b) in enumerate(layers):
            x = torch.bmm(x, w).add_(b)
            if i < last:
                x = x.relu_()
                inputs.append(x)
        return x, inputs

    def backward(
        self, inputs: list[torch.Tensor], d_q: torch.Tensor, weights: bool = True, input_from: int | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Backpropagate dL/dQ (n, B, 1) through the critics traced by ``forward_traced``.

        Returns the gradients for ``self.parameters()`` (weights then biases; empty if ``weights`` is False)
        and, if ``input_from`` is given, dL/d(input[:, input_from:]) summed over the critics, (B, in - input_from).
        """
        w_ts, input_ts = self._transposed()
        g_w: list[torch.Tensor] = []  # last layer first, reversed at the end
        g_b: list[torch.Tensor] = []
        d = d_q
        for i in range(len(w_ts) - 1, -1, -1):
            if weights:
                g_w.append(torch.bmm(inputs[i].transpose(1, 2), d))
                g_b.append(d.sum(1, keepdim=True))
            if i > 0:
                # An outer product when the layer has one output: a broadcast multiply, not a K=1 matmul.
                d = _relu_backward(d * w_ts[i] if d.shape[-1] == 1 else torch.bmm(d, w_ts[i]), inputs[i], 0)
        d_input = None
        if input_from is not None:
            w_t = input_ts.get(input_from)
            if w_t is None:
                with torch.no_grad():
                    w_t = input_ts[input_from] = w_ts[0][:, :, input_from:]
            d_input = torch.bmm(d, w_t).sum(0)
        return g_w[::-1] + g_b[::-1], d_input

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
