"""Adam for the agent: the optimizers a checkpoint holds, and the step the default update takes."""

from __future__ import annotations

import torch

from robot6.learn.networks import views_like


def make_adam(params: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one kernel for all parameters; deterministic on CPU and CUDA)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


class FusedAdam:
    """``step()`` of optimizers made by ``make_adam`` that always step together, as one ``torch._fused_adam_``
    call with the gradients passed in (one per run of optimizers with the same hyperparameters, read from each
    optimizer's param group at every step): the same update as their ``step()``, which spends more time in
    Python than the kernel takes. A private torch function, kept for a measured reason: at the default
    settings the training loop runs at 0.79 of its env steps/s with ``step()`` instead (docs/BENCHMARKS.md,
    "The Adam step").

    The state stays in ``opt.state`` (state_dicts unchanged). The lists the kernel takes are built once, at
    the second step (the first goes through ``step()``, which creates the state), and the step counts are
    then made views of one tensor, so that a single ``add_`` counts a step for every parameter
    (``optimizer.step()`` still counts each view by one). An optimizer whose parameters are all views of one
    flat tensor, in order (``flats``, e.g. ``Actor.flatten_parameters``), is stepped as that one tensor: its
    moments are moved into flat tensors the same way, and its gradient is passed as one flat tensor. Call
    ``reset()`` when ``load_state_dict`` has replaced the state.
    """

    def __init__(self, optimizers: list[torch.optim.Adam], flats: list[torch.Tensor | None] | None = None):
        for opt in optimizers:
            group = opt.param_groups[0]
            if len(opt.param_groups) != 1 or group["amsgrad"] or group["maximize"]:
                raise ValueError("FusedAdam steps one param group per optimizer, without amsgrad or maximize")
        self.optimizers = optimizers
        self.set_flats(flats or [None] * len(optimizers))
        self._one: torch.Tensor | None = None

    def set_flats(self, flats: list[torch.Tensor | None]) -> None:
        """Per optimizer, the flat tensor its parameters are views of (None: stepped one by one); resets."""
        self.flats = flats
        # What the kernel steps, in order, and what step() takes the gradients of.
        self.params = [p for opt, flat in zip(self.optimizers, flats, strict=True)
                       for p in ([flat] if flat is not None else opt.param_groups[0]["params"])]
        self.reset()

    def reset(self) -> None:
        """Forget the lists; the next step builds them from the optimizers' state again."""
        self._lists: tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None = None
        self._runs: list[tuple[int, int, tuple]] = []
        self._runs_of: tuple | None = None

    def _hyperparameters(self) -> tuple:
        """Each optimizer's (lr, beta1, beta2, eps, weight_decay), as its param group holds them now."""
        return tuple((g["lr"], *g["betas"], g["eps"], g["weight_decay"]) for g in (o.param_groups[0] for o in self.optimizers))

    def _make_runs(self, hyper: tuple) -> list[tuple[int, int, tuple]]:
        """(start, stop, hyperparameters) over ``self.params`` for each run of optimizers that share them."""
        runs: list[tuple[int, int, tuple]] = []
        start = 0
        for opt, flat, h in zip(self.optimizers, self.flats, hyper, strict=True):
            stop = start + (1 if flat is not None else len(opt.param_groups[0]["params"]))
            if runs and runs[-1][2] == h:
                runs[-1] = (runs[-1][0], stop, h)
            else:
                runs.append((start, stop, h))
            start = stop
        return runs

    def step(self, grads: list[torch.Tensor]) -> None:
        """One Adam step of ``self.params`` (the optimizers' parameters, or their flat tensors) with ``grads``."""
        lists = self._lists
        if lists is None:
            lists = self._build_lists(grads)
            if lists is None:
                return  # the first step, through optimizer.step()
        counter, exp_avgs, exp_avg_sqs, steps = lists
        hyper = self._hyperparameters()
        if hyper != self._runs_of:
            self._runs, self._runs_of = self._make_runs(hyper), hyper
        counter.add_(self._one)  # a 0-d tensor: a Python 1 would be wrapped in a new tensor on every call
        whole = len(self._runs) == 1
        for start, stop, (lr, beta1, beta2, eps, weight_decay) in self._runs:
            part = slice(start, stop)
            torch._fused_adam_(
                self.params if whole else self.params[part], grads if whole else grads[part],
                exp_avgs if whole else exp_avgs[part], exp_avg_sqs if whole else exp_avg_sqs[part], [],
                steps if whole else steps[part], amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
                weight_decay=weight_decay, eps=eps, maximize=False, grad_scale=None, found_inf=None,
            )

    def _build_lists(self, grads: list[torch.Tensor]) -> tuple | None:
        """The kernel's lists from the optimizers' state; None after taking the first step with ``step()``
        (no state yet), which creates it."""
        per_opt = [[opt.state.get(p) for p in opt.param_groups[0]["params"]] for opt in self.optimizers]
        # Outside inference mode (the updates run in it): the tensors made here are ordinary ones, which
        # optimizer.step() may update in place later.
        with torch.inference_mode(False):
            if not all(all(states) for states in per_opt):
                params, per_param_grads = [], []
                for opt, g in zip(self.optimizers, self._split(grads), strict=True):
                    params += opt.param_groups[0]["params"]
                    per_param_grads += g
                for p, g in zip(params, per_param_grads, strict=True):
                    p.grad = g
                for opt in self.optimizers:
                    opt.step()
                for p in params:
                    p.grad = None  # the later steps pass their gradients to the kernel directly
                return None
            states = [state for states in per_opt for state in states]
            counter = torch.stack([state["step"] for state in states])
            steps = list(counter.unbind())
            self._one = torch.ones((), dtype=counter.dtype, device=counter.device)
            exp_avgs, exp_avg_sqs, kernel_steps = [], [], []
            i = 0
            for opt, flat, opt_states in zip(self.optimizers, self.flats, per_opt, strict=True):
                params = opt.param_groups[0]["params"]
                if flat is None:
                    exp_avgs += [state["exp_avg"] for state in opt_states]
                    exp_avg_sqs += [state["exp_avg_sq"] for state in opt_states]
                    kernel_steps += steps[i : i + len(params)]
                else:
                    for key, out in (("exp_avg", exp_avgs), ("exp_avg_sq", exp_avg_sqs)):
                        moments = torch.cat([state[key].reshape(-1) for state in opt_states])
                        for state, view in zip(opt_states, views_like(moments, params), strict=True):
                            state[key] = view
                        out.append(moments)
                    kernel_steps.append(steps[i])  # every parameter of the group counts the same steps
                i += len(params)
        for state, step in zip(states, steps, strict=True):
            state["step"] = step
        lists = self._lists = (counter, exp_avgs, exp_avg_sqs, kernel_steps)
        return lists

    def _split(self, grads: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """``grads`` (as ``step`` takes them) per optimizer, one per parameter (a flat gradient as views)."""
        out, i = [], 0
        for opt, flat in zip(self.optimizers, self.flats, strict=True):
            params = opt.param_groups[0]["params"]
            if flat is None:
                out.append(grads[i : i + len(params)])
                i += len(params)
            else:
                out.append(views_like(grads[i], params))
                i += 1
        return out
