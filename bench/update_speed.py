"""The SAC update alone: updates per second of our agent against a naive implementation, and where the
time of one update goes (torch.profiler, grouped into matrix products, optimizer and the rest).

"naive" is the textbook layout: two separate critic MLPs (and two targets), ``torch.optim.Adam`` with its
default (foreach) kernels, the target update as a Python loop of ``mul_``/``add_``; "ours, autograd" is
``robot6.learn.agent.SAC.update_autograd`` (both critics stacked in one batched matmul per layer, fused Adam,
``_foreach_lerp_``); "ours" is the default ``SAC.update`` (the same, with the gradients written out and the
fused Adam kernel called directly); "ours --compile" is that update with ``compile=True``: through
``torch.compile`` on a CPU, captured as one CUDA graph on CUDA; "ours --policy-delay N" (``--policy-delay``)
is the default update with the actor and temperature stepped at every Nth update only (the mean cost of an
update over the pattern).
Obs 18, act 6 (Robot6Reach-v0 sizes), 256x256 and batch 256 unless --hidden/--batch-size say otherwise.

    python -m bench.update_speed
    python -m bench.update_speed --threads 1 --repeats 5
    python -m bench.update_speed --device cuda --hidden 256 256 --batch-size 256
    python -m bench.update_speed --hidden 128 128 --batch-size 128 --policy-delay 2 3 --no-compile
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from robot6.learn.agent import SAC
from robot6.learn.networks import Actor, mlp
from robot6.learn.replay import Batch


class NaiveSAC:
    """The same SAC math as ``robot6.learn.agent.SAC``, written the common way."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], lr: float = 1e-3, gamma: float = 0.95,
                 tau: float = 0.005, device: str = "cpu"):
        self.gamma, self.tau, self.target_entropy = gamma, tau, -float(act_dim)
        self.actor = Actor(obs_dim, act_dim, hidden).to(device)
        self.q1 = mlp([obs_dim + act_dim, *hidden, 1]).to(device)
        self.q2 = mlp([obs_dim + act_dim, *hidden, 1]).to(device)
        self.q1_t, self.q2_t = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.zeros((), requires_grad=True, device=device)
        self.pi_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr)
        self.a_opt = torch.optim.Adam([self.log_alpha], lr=lr)

    def update(self, b: Batch) -> None:
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            na, nlp = self.actor(b.next_obs)
            x = torch.cat([b.next_obs, na], -1)
            nq = torch.min(self.q1_t(x), self.q2_t(x)).squeeze(-1)
            target = b.rew + self.gamma * (1 - b.terminated) * (nq - alpha * nlp)
        x = torch.cat([b.obs, b.act], -1)
        loss = ((self.q1(x).squeeze(-1) - target) ** 2).mean() + ((self.q2(x).squeeze(-1) - target) ** 2).mean()
        self.q_opt.zero_grad()
        loss.backward()
        self.q_opt.step()
        a, lp = self.actor(b.obs)
        x = torch.cat([b.obs, a], -1)
        actor_loss = (alpha * lp - torch.min(self.q1(x), self.q2(x)).squeeze(-1)).mean()
        self.pi_opt.zero_grad()
        actor_loss.backward()
        self.pi_opt.step()
        alpha_loss = -(self.log_alpha * (lp.detach() + self.target_entropy)).mean()
        self.a_opt.zero_grad()
        alpha_loss.backward()
        self.a_opt.step()
        with torch.no_grad():
            for net, tgt in ((self.q1, self.q1_t), (self.q2, self.q2_t)):
                for p, tp in zip(net.parameters(), tgt.parameters(), strict=True):
                    tp.mul_(1 - self.tau).add_(self.tau * p)


class AutogradSAC(SAC):
    """Our agent with the autograd update (what ``SAC.update`` was before the gradients were written out)."""

    def update(self, batch: Batch):
        return self.update_autograd(batch)


def updates_per_second(agent, batch: Batch, n: int) -> float:
    """Updates per second over ``n`` updates after 20 warm-up ones (the device drained before each clock read)."""
    sync = torch.cuda.synchronize if batch.obs.is_cuda else (lambda: None)
    for _ in range(20):
        agent.update(batch)
    sync()
    t = time.perf_counter()
    for _ in range(n):
        agent.update(batch)
    sync()
    return n / (time.perf_counter() - t)


def breakdown(agent, batch: Batch) -> dict[str, float]:
    """Milliseconds per update by kind of operation, from torch.profiler's self CPU times."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(50):
            agent.update(batch)
    out = {"matrix products": 0.0, "optimizer": 0.0, "elementwise, autograd and the rest": 0.0}
    for e in prof.key_averages():
        if e.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"):
            kind = "matrix products"
        elif "Adam" in e.key or "adam" in e.key or "zero_grad" in e.key or e.key == "aten::_foreach_add_":
            kind = "optimizer"
        else:
            kind = "elementwise, autograd and the rest"
        out[kind] += e.self_cpu_time_total / 50 / 1000
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--updates", type=int, default=300, help="updates timed per repeat")
    p.add_argument("--no-compile", action="store_true", help="skip the compile=True variant (on a CPU it compiles for ~10 s)")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="hidden layer sizes")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu or cuda (on CUDA, the compile=True variant is a CUDA graph)")
    p.add_argument("--policy-delay", type=int, nargs="*", default=[], metavar="N",
                   help="also time the default update with these policy delays (the actor at every Nth update)")
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, H, dev = args.batch_size, args.hidden, args.device
    batch = Batch(*(t.to(dev) for t in (torch.randn(B, 18), torch.rand(B, 6) * 2 - 1, torch.randn(B),
                                         torch.randn(B, 18), torch.zeros(B))))
    agents = {
        "naive": NaiveSAC(18, 6, H, device=dev),
        "ours, autograd": AutogradSAC(18, 6, H, 1e-3, 0.95, 0.005, 0.1, device=dev),
        "ours": SAC(18, 6, H, 1e-3, 0.95, 0.005, 0.1, device=dev),
    }
    if not args.no_compile:
        agents["ours --compile"] = SAC(18, 6, H, 1e-3, 0.95, 0.005, 0.1, device=dev, compile=True)
    for n in args.policy_delay:
        if n < 1:
            p.error(f"--policy-delay must be positive integers, got {n}")
        agents[f"ours --policy-delay {n}"] = SAC(18, 6, H, 1e-3, 0.95, 0.005, 0.1, device=dev, policy_delay=n)
    rates: dict[str, list[float]] = {k: [] for k in agents}
    for _ in range(args.repeats):
        for name, agent in agents.items():
            rates[name].append(updates_per_second(agent, batch, args.updates))
    naive = statistics.median(rates["naive"])
    sizes = "x".join(map(str, H))
    print(f"SAC update on {dev}, obs 18, act 6, {sizes}, batch {B}, {args.threads} torch threads; "
          f"medians of {args.repeats}")
    print("| implementation | updates/s | vs naive |")
    print("| --- | --- | --- |")
    for name, r in rates.items():
        print(f"| {name} | {statistics.median(r):.0f} | {statistics.median(r) / naive:.2f}x |")
    if batch.obs.is_cuda:
        return 0  # the breakdown below is of host (CPU) time
    print("\nwhere one update's time goes (ms, torch.profiler self CPU time):")
    print("| implementation | " + " | ".join(breakdown(agents["ours"], batch)) + " | total |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("naive", "ours, autograd", "ours"):
        parts = breakdown(agents[name], batch)
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in parts.values()) + f" | {sum(parts.values()):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
