"""The SAC agent: networks, targets, entropy temperature, optimizers and the update.

``SAC.update(batch)`` is one gradient step of Haarnoja et al. 2018 ("Soft Actor-Critic Algorithms and
Applications", algorithm 1): critics, then Polyak-averaged targets (the paper updates them last; nothing
in between reads them, so the result is the same), then actor and temperature. It returns
detached metric tensors and logs nothing; converting them to floats (a host sync on GPU) is the caller's
choice. The agent knows nothing of files: ``state_dict``/``load_state_dict`` use the checkpoint's keys.

Two implementations of the same step: ``update_autograd`` is the textbook one (losses, ``backward()``,
``optimizer.step()``), the reference; the default ``update`` writes the gradients out (the networks'
``backward`` methods) and calls the fused Adam kernel directly (``FusedAdam``), under ``torch.inference_mode()``,
1.3x the updates/s of ``update_autograd`` at 256x256 / batch 256 on a 2-core CPU and 2.3x at 80x80 / batch 128
(``python -m bench.update_speed``; the smaller the matrix products, the more the per-call overhead counts). Both give
the same parameters to float rounding (tests/test_agent.py). ``policy_delay=N`` steps the actor and the
temperature at every Nth update only (TD3's delayed policy update): the other updates train the critics
alone, at about 0.55 of the cost; ``update_many`` runs several updates with one actor pass for each run of
critic-only updates and the full update that ends it (the same results as one by one, bit for bit).
``compile=True`` speeds up the default update:
on a CPU through torch.compile (the same update to float rounding, ~20% faster after ~10 s of compiling),
on CUDA captured once as a CUDA graph and replayed (``CudaGraphUpdate``: the same results bit for bit, 4.4x
the updates/s on an H200).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from robot6.learn.networks import Actor, TwinCritic, join_critics
from robot6.learn.optim import FusedAdam, make_adam
from robot6.learn.replay import Batch

NOISE_BLOCK = 64  # action noise rows drawn at once on a CPU (see SAC.act): an episode of Robot6Reach-v0 uses 50


class SAC:
    """Soft Actor-Critic with twin critics and automatic entropy tuning (target entropy = -act_dim).

    Actions are in [-1, 1]^act_dim; rescaling to an env's bounds is the caller's job.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: list[int],
        lr: float,
        gamma: float,
        tau: float,
        init_alpha: float,
        device: torch.device | str = "cpu",
        compile: bool = False,
        policy_delay: int = 1,
    ):
        self.device = torch.device(device)
        self.gamma, self.tau = gamma, tau
        # The actor and temperature step with every policy_delay-th critic step (TD3's delayed policy update);
        # 1 = every update, the paper's algorithm. Which updates those are follows from the critic's Adam step
        # count, which the checkpoint holds, so a resumed run continues the same pattern.
        self.policy_delay = int(policy_delay)
        self.critic_updates = 0
        self.target_entropy = -float(act_dim)
        # act's block of noise rows and the next row's index (NOISE_BLOCK: none left, the next action draws a block).
        self._noise: np.ndarray | None = None
        self._noise_row = NOISE_BLOCK
        self._consts: dict[tuple[float, tuple[int, ...]], torch.Tensor] = {}
        self.actor = Actor(obs_dim, act_dim, hidden).to(self.device)
        self.critic = TwinCritic(obs_dim, act_dim, hidden).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(init_alpha), device=self.device, requires_grad=True)
        self._flatten_actor()
        # Lists, never generators: a generator is consumed once and later loops over it do nothing.
        self._actor_params = list(self.actor.parameters())
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self._join_critics()
        self.policy_opt = make_adam(self._actor_params, lr)
        self.q_opt = make_adam(self._critic_params, lr)
        self.alpha_opt = make_adam([self.log_alpha], lr)
        # What the default update steps: the critics, then the actor and the temperature together.
        self._critic_adam = FusedAdam([self.q_opt])
        self._actor_adam = FusedAdam([self.policy_opt, self.alpha_opt], flats=[self._actor_flat, None])
        self._critic_adam_step, self._actor_adam_step = self._critic_adam.step, self._actor_adam.step
        # compile=True. On CUDA: the default update captured as one CUDA graph (a launch per update, not one
        # per kernel); torch.compile's own CUDA graphs (mode="reduce-overhead") measured slower than no
        # compile at all there (docs/BENCHMARKS.md, "GPU"). On a CPU: the default update through
        # torch.compile, which fuses its chains of small elementwise ops into a few C++ loops, called from a
        # generated C++ wrapper (cpp_wrapper) rather than Python: 0.84 of the eager update's time at one full
        # update per call, 0.94 without the wrapper. The noise is drawn as in eager mode (fallback_random),
        # the rest differs from eager by float rounding only. Compiled updates go one by one: at
        # --policy-delay > 1 they give up update_many's shared actor pass and are slower than eager.
        self._graph = CudaGraphUpdate(self) if compile and self.device.type == "cuda" else None
        self._compiled_update = None
        if compile and self._graph is None:
            # Adam stays eager: one fused kernel already, and tracing its in-place writes to the parameters
            # fails. (Wrapped here, not where it is defined: torch.compiler.disable imports the compiler,
            # which would add a second to every start-up.)
            self._critic_adam_step = torch.compiler.disable(self._critic_adam.step)
            self._actor_adam_step = torch.compiler.disable(self._actor_adam.step)
            self._compiled_update = torch.compile(
                self._update_closed_form, dynamic=False, options={"fallback_random": True, "cpp_wrapper": True}
            )

    def describe(self) -> str:
        """Where the networks train and which update runs, in one line (the trainer prints it at the start)."""
        if self.device.type == "cuda":
            where = f"cuda ({torch.cuda.get_device_name(self.device)})"
            how = "the update replays as one CUDA graph" if self._graph is not None else "the plain update"
        else:
            threads = torch.get_num_threads()
            where = f"cpu ({threads} thread{'s' if threads > 1 else ''})"
            how = "the update through torch.compile" if self._compiled_update is not None else "the plain update"
        return f"{where}: {how}"

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """obs: (obs_dim,) -> action (act_dim,) float32 in [-1, 1]; one actor forward, no autograd.

        On a CPU the forward runs in numpy (``Actor.act_numpy``) and its noise comes from torch's generator
        in blocks of ``NOISE_BLOCK`` rows, one row per action: right after a physics step a torch call runs
        with cold caches (``torch.randn(6)`` took 30-45 us there, a row of a block 3 us). ``reset_noise``
        discards the rows left; on CUDA each action draws its own noise on the device.
        """
        if self.device.type == "cpu":
            if deterministic:
                return self.actor.act_numpy(obs, True)
            if self._noise_row == NOISE_BLOCK:
                self._noise, self._noise_row = torch.randn(NOISE_BLOCK, self.actor.mu.out_features).numpy(), 0
            self._noise_row += 1
            return self.actor.act_numpy(obs, eps=self._noise[self._noise_row - 1])
        with torch.inference_mode():
            obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
            action, _ = self.actor(obs_t, deterministic=deterministic, with_logprob=False)
            return action[0].cpu().numpy()

    def reset_noise(self) -> None:
        """Discard the action noise drawn ahead (see ``act``), so that the next action draws a new block from
        torch's generator as it then is. The trainer calls it at every episode start: what an episode draws
        then depends only on the generator's state, which a checkpoint holds (exact resume)."""
        self._noise_row = NOISE_BLOCK

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One SAC gradient step on ``batch``; returns detached scalar tensors (losses, alpha, entropy, Q; the
        critic's loss, alpha and Q only when ``policy_delay`` skips the actor's step this time).

        Gradients written out (see the module docstring); when the agent was compiled, the same update
        through torch.compile (CPU) or replayed as a CUDA graph (CUDA).
        """
        return self.reduce_metrics([self._update_raw(batch)])

    @staticmethod
    def reduce_metrics(records: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The mean metrics (scalar tensors, keys as ``update`` returns them) of the updates whose raw records
        ``update_many`` returned: each metric averaged over the updates that have it (the actor's over the
        updates that stepped the actor). The updates leave the reductions to this, a few ops for a whole
        episode instead of a dozen per update (about 6% of an update's time at 128x128, batch 128)."""
        out: dict[str, torch.Tensor] = {}
        if not records:
            return out
        error = torch.stack([r["error"] for r in records])  # (n, 2, B, 1)
        out["critic_loss"] = error.pow(2).mean(dim=(2, 3)).sum(dim=1).mean()
        out["alpha"] = torch.stack([r["alpha"] for r in records]).mean()
        out["q"] = torch.stack([r["q"] for r in records]).mean()
        full = [r for r in records if "logp" in r]
        if full:
            alpha = torch.stack([r["alpha"] for r in full])  # (m,)
            logp = torch.stack([r["logp"] for r in full])  # (m, B)
            q_pi = torch.stack([r["q_pi"] for r in full]).amin(dim=1).squeeze(-1)  # (m, B): the smaller critic
            out["actor_loss"] = (alpha.unsqueeze(1) * logp - q_pi).mean()
            # log(alpha) is log_alpha before the step (the parameter itself has moved since).
            out["alpha_loss"] = (alpha.log() * torch.stack([r["alpha_grad"] for r in full])).mean()
            out["entropy"] = -logp.mean()
        return out

    def _update_raw(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One update, returning its raw metric record (see ``reduce_metrics``)."""
        self._check_storage()
        actor = self._count_update()
        if self._graph is not None:
            return self._graph(batch, actor)
        with torch.inference_mode():
            # The first update of each kind creates the optimizer state: eager, so that the compiled function
            # is traced once per kind, with the state in place (a second trace would double the compile time).
            if self._compiled_update is not None and (self.alpha_opt.state or not actor and self.q_opt.state):
                return self._compiled_update(batch, actor)
            return self._update_closed_form(batch, actor)

    def update_many(self, batches: list[Batch]) -> list[dict[str, torch.Tensor]]:
        """``update`` on each of ``batches`` in turn, returning raw metric records (``reduce_metrics`` averages
        any number of them), with the policy's samples drawn in one actor pass per run of updates that ends
        with the actor's own step.

        The critic-only updates of ``policy_delay`` read the actor (for their targets' next actions) but do
        not change it, so the next actions of a run of such updates and of the update that ends it come from
        one forward pass over all their rows, the noise from one draw of the same numbers in the same order:
        the same results bit for bit (tests/test_agent.py), a few percent less time per env step at the
        default ``--utd 4 --policy-delay 4``. The batches must have one size. Compiled agents update one by one.
        """
        if self._graph is not None or self._compiled_update is not None:
            return [self._update_raw(b) for b in batches]
        self._check_storage()
        out: list[dict[str, torch.Tensor]] = []
        start = 0
        with torch.inference_mode():
            while start < len(batches):
                kinds: list[bool] = []
                while start + len(kinds) < len(batches) and not (kinds and kinds[-1]):
                    kinds.append(self._count_update())
                run = batches[start : start + len(kinds)]
                start += len(kinds)
                policies = self._policy_samples(run, kinds[-1])
                for batch, actor, policy in zip(run, kinds, policies, strict=True):
                    out.append(self._update_closed_form(batch, actor, policy))
        return out

    def _policy_samples(self, batches: list[Batch], actor: bool) -> list[tuple]:
        """The actor's samples for a run of updates whose only actor step, if any (``actor``), is the last:
        one actor pass over every batch's next_obs (and the last one's obs). Per batch: its next action and
        log-probability; for the last with ``actor`` also the action, log-probability and trace on its obs.
        The noise is one draw, next observations first: for one update, the order update_autograd draws it.
        """
        B = batches[0].obs.shape[0]
        rows = [b.next_obs for b in batches] + ([batches[-1].obs] if actor else [])
        obs_all = torch.cat(rows) if len(rows) > 1 else rows[0]
        eps = torch.randn(obs_all.shape[0], self.actor.mu.out_features, device=obs_all.device)
        action_all, logp_all, trace = self.actor.sample_traced(obs_all, eps)
        policies = [(action_all[i * B : (i + 1) * B], logp_all[i * B : (i + 1) * B]) for i in range(len(batches))]
        if actor:
            n = len(batches) * B
            policies[-1] += (action_all[n:], logp_all[n:], trace.rows(n))
        return policies

    def _join_critics(self) -> None:
        """Put the critics and their targets in one stack of layers (``networks.join_critics``), so that the
        update's two critic passes that do not depend on each other, the online critics on (obs, act) and the
        targets on (next_obs, next_action), are one batched matmul per layer: 106 -> 99 computing ATen calls per
        update, the same results bit for bit."""
        self._joined = join_critics([self.critic, self.critic_target])
        self._joined_at = (self._critic_params[0].data_ptr(), self._target_params[0].data_ptr())

    def _flatten_actor(self) -> None:
        """The actor's parameters as views of one tensor (``Actor.flatten_parameters``), and a gradient buffer of
        the same layout, which ``Actor.backward`` writes: one Adam kernel call over the flat tensor costs about a
        third of one over the eight parameters (the moments are flattened alike by ``FusedAdam``); 0.978 of the
        update's time at 80x80 / batch 128. The same Adam to float rounding:
        the kernel rounds a tensor's tail elements (its scalar loop) differently from the rest."""
        self._actor_flat = self.actor.flatten_parameters()
        self._actor_grad = torch.zeros_like(self._actor_flat)

    def _check_storage(self) -> None:
        """Join the critics, and flatten the actor, again if their parameters were given new storage (a
        deepcopy of the agent)."""
        moved = False
        if (self._critic_params[0].data_ptr(), self._target_params[0].data_ptr()) != self._joined_at:
            self._join_critics()
            moved = True
        if self._actor_params[0].data_ptr() != self._actor_flat.data_ptr():
            self._flatten_actor()
            self._actor_adam.set_flats([self._actor_flat, None])
            moved = True
        if moved and self._graph is not None:
            self._graph.reset()  # the captured graph reads the old tensors

    def _const(self, value: float, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """``value`` as a float32 tensor on the agent's device (broadcast to ``shape``), made once: an ATen call
        given a Python float wraps it in a new tensor first, about 2 us a call on a CPU, a few percent of an
        update at 80x80. The same values as the float (an op on float32 tensors casts a float scalar to float32)."""
        key = (value, shape)
        t = self._consts.get(key)
        if t is None:
            with torch.inference_mode(False):  # an ordinary tensor, which eager and graph-captured updates share
                t = self._consts[key] = torch.tensor(value, dtype=torch.float32, device=self.device).expand(shape)
        return t

    def _count_update(self) -> bool:
        """Count one more update; whether it also steps the actor and the temperature (every
        ``policy_delay``-th one)."""
        self.critic_updates += 1
        return self.critic_updates % self.policy_delay == 0

    def _update_closed_form(self, batch: Batch, actor: bool = True, policy: tuple | None = None) -> dict[str, torch.Tensor]:
        """One update; ``policy``: the actor's samples when the caller drew them (``update_many``): next
        action and its log-probability, and with ``actor`` also the action, log-probability and trace on obs."""
        B, obs_dim = batch.obs.shape
        alpha = self.log_alpha.exp()  # no graph: the callers run this under inference_mode or no_grad
        if policy is None:
            # One actor pass over next_obs and obs (the actor does not change before its own step): the target's
            # next actions and the actions of the actor loss.
            policy = self._policy_samples([batch], actor)[0]
        next_action, next_logp = policy[0], policy[1]

        # Critics: soft Bellman target (eq. 3 and 5 of the paper); only true terminations stop the bootstrap.
        # (Each line in as few ATen calls as it takes: on a CPU each costs a few microseconds however small.)
        # The online critics on (obs, act) and the targets on (next_obs, next_action) in one pass of the stack.
        n = self.critic.n
        x, next_x = torch.cat([batch.obs, batch.act], -1), torch.cat([batch.next_obs, next_action], -1)
        out, inputs = self.critic.forward_traced(torch.stack([x] * n + [next_x] * n), self._joined)
        q, next_q, inputs = out[:n], out[n:], [t[:n] for t in inputs]
        soft_value = torch.addcmul(next_q.amin(0).squeeze(-1), alpha, next_logp, value=-1.0)  # min Q - alpha logp
        gamma = self._const(self.gamma)
        discount = torch.addcmul(gamma, batch.terminated, gamma, value=-1.0)  # gamma (1 - terminated)
        target = torch.addcmul(batch.rew, discount, soft_value)
        error = q - target.unsqueeze(-1)  # (2, B, 1)
        grads, _ = self.critic.backward(inputs, error * self._const(2.0 / B))
        self._critic_adam_step(grads)
        # Polyak-averaged targets, from the critics just stepped (the actor's part below reads only the
        # online critics).
        torch._foreach_lerp_(self._target_params, self._critic_params, self.tau)
        # The raw record of this update; reduce_metrics turns records into the logged means.
        metrics = {"error": error, "alpha": alpha, "q": q}
        if not actor:
            return metrics

        # Actor (eq. 7, reparameterised) through the updated critics; the gradient of the min goes to the
        # smaller critic (the first on a tie, as autograd's min). No gradient for the critics' weights.
        action, logp, trace = policy[2], policy[3], policy[4]
        q_pi, inputs = self.critic.forward_traced(torch.cat([batch.obs, action], -1))
        # min(dim) returns the first index on a tie (and is faster than argmin on a CPU).
        d_q = torch.zeros_like(q_pi).scatter_(0, q_pi.min(0, keepdim=True).indices, self._const(-1.0 / B, (1, B, 1)))
        _, d_action = self.critic.backward(inputs, d_q, weights=False, input_from=obs_dim)
        self.actor.backward(trace, d_action, torch.div(alpha, self._const(float(B))), out=self._actor_grad)

        # Temperature (eq. 18) on log(alpha): d/dlog_alpha of -mean(log_alpha * (logp + target_entropy)).
        alpha_grad = torch.sub(self._const(-self.target_entropy), logp.mean())  # -(mean(logp) + target_entropy)
        self._actor_adam_step([self._actor_grad, alpha_grad])
        return {**metrics, "q_pi": q_pi, "logp": logp, "alpha_grad": alpha_grad}

    def update_autograd(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``update`` written with autograd and ``optimizer.step()``: the reference the tests hold it to."""
        actor = self._count_update()
        alpha = self.log_alpha.detach().exp()

        # Critics: soft Bellman target from the target critics (eq. 3 and 5 of the paper).
        with torch.no_grad():
            next_action, next_logp = self.actor(batch.next_obs)
            next_q = self.critic_target(batch.next_obs, next_action).min(dim=0).values
            # Only true terminations stop the bootstrap; time-limit truncations are stored as not terminated.
            target = batch.rew + self.gamma * (1.0 - batch.terminated) * (next_q - alpha * next_logp)
        q = self.critic(batch.obs, batch.act)  # (2, B)
        critic_loss = (q - target).pow(2).mean(dim=1).sum()
        self.q_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.q_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, self.tau)
        metrics = {"critic_loss": critic_loss.detach(), "alpha": alpha, "q": q.detach().mean()}
        if not actor:
            return metrics

        # Actor (eq. 7 with the reparameterisation trick). The critics are frozen so that no gradient is
        # computed for their weights.
        for p in self._critic_params:
            p.requires_grad_(False)
        action, logp = self.actor(batch.obs)
        q_pi = self.critic(batch.obs, action).min(dim=0).values
        actor_loss = (alpha * logp - q_pi).mean()
        self.policy_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.policy_opt.step()
        for p in self._critic_params:
            p.requires_grad_(True)

        # Temperature (eq. 18), on log(alpha) so that alpha stays positive.
        logp = logp.detach()
        alpha_loss = -(self.log_alpha * (logp + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {**metrics, "actor_loss": actor_loss.detach(), "alpha_loss": alpha_loss.detach(), "entropy": -logp.mean()}

    def state_dict(self) -> dict[str, object]:
        """The agent's part of a checkpoint: ``checkpoint.AGENT_KEYS`` (q1/q2 as plain ``mlp`` state_dicts)."""
        q1, q2 = self.critic.plain_state_dicts()
        q1_target, q2_target = self.critic_target.plain_state_dicts()
        return {
            "policy": self.actor.state_dict(),
            "q1": q1,
            "q2": q2,
            "q1_target": q1_target,
            "q2_target": q2_target,
            "policy_opt": self.policy_opt.state_dict(),
            "q_opt": self.q_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore everything ``state_dict`` saved; raises ``ValueError``/``RuntimeError`` on a mismatch."""
        self.actor.load_state_dict(state["policy"])
        self.critic.load_plain_state_dicts([state["q1"], state["q2"]])
        self.critic_target.load_plain_state_dicts([state["q1_target"], state["q2_target"]])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.q_opt.load_state_dict(state["q_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self._critic_adam.reset()
        self._actor_adam.reset()
        q_state = self.q_opt.state.get(self._critic_params[0])
        self.critic_updates = int(q_state["step"]) if q_state else 0
        if self._graph is not None:
            self._graph.reset()  # the optimizers' state tensors were replaced: the graph must be captured again


class CudaGraphUpdate:
    """``SAC.update`` on CUDA as one CUDA graph: captured once, then replayed with each new batch copied into
    its input tensors, so that an update costs one launch instead of one per kernel (over a hundred).

    The first ``WARMUP`` updates run eagerly on a side stream (they create the optimizer state and the
    library handles, which a capture must not do), the next one is captured and every one from then on is
    a replay. Captured and eager updates run the same kernels on the same data and draw the same noise from
    the CUDA generator, so a run and its resume (which warms up again) compute the same updates
    (tests/test_resume.py, on a GPU). Call ``reset()`` when the agent's tensors are replaced.
    """

    WARMUP = 3

    def __init__(self, agent: SAC):
        self.agent = agent
        self.reset()

    def reset(self) -> None:
        """Forget the graphs; the next updates warm up and capture again."""
        # One graph per kind of update: with the actor's step (True) and, with policy_delay > 1, without (False).
        self.graphs: dict[bool, tuple[torch.cuda.CUDAGraph, Batch, dict[str, torch.Tensor]]] = {}
        self.warmup_left = {True: self.WARMUP, False: self.WARMUP}
        self.warm_shapes: dict[bool, tuple[torch.Size, ...]] = {}  # the batch shapes of each kind's last warm-up

    def __call__(self, batch: Batch, actor: bool = True) -> dict[str, torch.Tensor]:
        agent, stream = self.agent, torch.cuda.current_stream(self.agent.device)
        captured = self.graphs.get(actor)
        shapes = tuple(t.shape for t in batch)
        if captured is not None and shapes != tuple(t.shape for t in captured[1]):
            self.reset()  # another batch size: capture again
            captured = None
        # A capture follows a warm-up of its own batch size: that made the agent's constants for it (SAC._const),
        # which a capture could not (a host-to-device copy).
        if self.warmup_left[actor] > 0 or (captured is None and self.warm_shapes.get(actor) != shapes):
            self.warmup_left[actor] = max(self.warmup_left[actor] - 1, 0)
            self.warm_shapes[actor] = shapes
            side = torch.cuda.Stream(agent.device)
            side.wait_stream(stream)
            with torch.cuda.stream(side), torch.no_grad():
                metrics = agent._update_closed_form(batch, actor)
            stream.wait_stream(side)
            return metrics
        if captured is None:
            inputs = Batch(*(t.to(agent.device, copy=True) for t in batch))
            graph = torch.cuda.CUDAGraph()
            # thread_local: only this thread's CUDA calls are held to the capture's rules, not those of the
            # threads that run beside it (the checkpoint writer, TensorBoard's).
            with torch.cuda.graph(graph, capture_error_mode="thread_local"), torch.no_grad():
                outputs = agent._update_closed_form(inputs, actor)
            captured = self.graphs[actor] = (graph, inputs, outputs)
        else:
            for static, t in zip(captured[1], batch, strict=True):
                static.copy_(t, non_blocking=True)
        captured[0].replay()
        # Copies: the graph's outputs are overwritten by the next replay, and callers keep the metrics.
        return {k: v.clone() for k, v in captured[2].items()}
