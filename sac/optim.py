"""Adam for the agent: the optimizers a checkpoint holds, and the step the default update takes."""

from __future__ import annotations

import torch

from sac.networks import views_like


def make_adam(params: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one kernel for all parameters; deterministic on CPU and CUDA)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


class FusedAdam:
    """``step()`` of optimizers made by ``make_adam`` (the same lr, betas and eps, no weight decay) that always
    step together, as one ``torch._fused_adam_`` call with the gradients passed in: the same update as their
    ``step()``, which spends more time in Python than the kernel takes.

    The state stays in ``opt.state`` (state_dicts unchanged). The lists the kernel takes are built once, at
    the second step (the first goes through ``step()``, which creates the state), and the step counts are
    then made views of one tensor, so that a single ``add_`` counts a step for every parameter
    (``optimizer.step()`` still counts each view by one). An optimizer whose parameters are all views of one
    flat tensor, in order (``flats``, e.g. ``Actor.flatten_parameters``), is stepped as that one tensor: its
    moments are moved into flat tensors the same way, and its gradient is passed as one flat tensor. Call
    ``reset()`` when ``load_state_dict`` has replaced the state.
    """

    def __init__(self, optimizers: list[torch.optim.Adam], flats: list[torch.Tensor | None] | None = None):
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

    def step(self, grads: list[torch.Tensor]) -> None:
        """One Adam step of ``self.params`` (the optimizers' parameters, or their flat tensors) with ``grads``."""
        lists = self._lists
        if lists is None:
            lists = self._build_lists(grads)
            if lists is None:
                return  # the first step, through optimizer.step()
        counter, exp_avgs, exp_avg_sqs, steps = lists
        counter.add_(self._one)  # a 0-d tensor: a Python 1 would be wrapped in a new tensor on every call
        group = self.optimizers[0].param_groups[0]
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            self.params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
            beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False, grad_scale=None, found_inf=None,
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
