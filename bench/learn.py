"""Learning benchmark: does SAC learn, how fast, and how does it compare with Stable-Baselines3?

For each seed, ours runs the real CLI (``Train_Robot6.py``) for ``--total-steps`` of the largest budget, with
``--save-every-steps`` checkpoints, at its env's preset and ``--set`` (evaluation during training off unless set): the first episode end at or past each budget is that budget's checkpoint
(exactly the budget when episodes have a fixed length that divides it; its step count is in the table when
not, e.g. for envs that end an episode on success); SB3's SAC (``--trainer sb3``,
``pip install -r requirements-bench.txt``) trains with the same network, batch, buffer, learning rate,
gamma, initial entropy coefficient, learning_starts, update-to-data ratio and hindsight relabelling (SB3's
``HerReplayBuffer``, "future" strategy, the same number of goals, on a Dict view of the env; on for goal envs
unless ``--set her=false``, as ours), saving its model at every budget (SB3's SAC has no policy delay: it
updates its actor at every gradient step whatever ``policy_delay`` says). Each budget's deterministic policy
is evaluated on ``--eval-episodes`` fresh episodes (50 new goals on Robot6Reach-v0, the same for both
trainers) and a markdown table is printed, with the training wall time to reach each budget (process
start-up and evaluation excluded) and the first budget where the mean success reaches 90%. Ours runs with
``--resume``: the same command with the same ``--workdir`` continues the runs a stop cut short (long budgets
over several invocations) and evaluates the finished ones again; ``--no-train`` evaluates the runs in ``--workdir``
as far as they got, training nothing (a run still training elsewhere, a stop before the last budget).

    python -m bench.learn                                  # ours, Robot6Reach-v0, 10k/20k/50k steps, seeds 0 1 2
    python -m bench.learn --trainer both --steps 5000 10000 20000 --jobs 2
    python -m bench.learn --trainer both --steps 5000 10000 20000 --jobs 2 --sb3-set batch_size=256 utd=1
    python -m bench.learn --env Pendulum-v1 --steps 5000 10000 20000 --set gamma=0.99
    python -m bench.learn --steps 5000 10000 --seeds 0 --set her=true utd=2
    python -m bench.learn --env Robot6PickAndPlace-v0 --steps 250000 500000 1000000 --set demos=100 --workdir W --plot pick.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import reduce
from pathlib import Path

import gymnasium as gym
import numpy as np

from bench import ROOT, child_env
from envs.factory import make_env
from envs.goals import GoalSpec, goal_spec
from sac.config import Config, flag_of
from sac.errors import Robot6Error
from sac.evaluate import evaluate, load_policy
from sac.logger import read_csv_rows
from sac.presets import apply_preset

SUCCESS_TARGET = 0.9


def parse_set(items: list[str]) -> tuple[list[str], dict]:
    """``key=value`` items -> (Train_Robot6.py flags, Config overrides typed like the Config fields)."""
    types = {f.name: str(f.type).split("|")[0].strip() for f in dataclasses.fields(Config)}
    flags, values = [], {}
    for kv in items:
        key, _, value = kv.partition("=")
        key = key.replace("-", "_")
        if key not in types:
            sys.exit(f"error: --set {kv}: {key} is not a setting (see python Train_Robot6.py --help)")
        flag = "--" + key.replace("_", "-")
        kind = types[key]
        if kind == "bool":
            values[key] = value.lower() in ("", "true", "1")
            flags += [flag] if values[key] else []
        elif kind == "list[int]":
            values[key] = [int(x) for x in value.split(",")]
            flags += [flag, *value.split(",")]
        else:
            values[key] = {"int": int, "float": float}.get(kind, str)(value)
            flags += [flag, value]
    return flags, values


class GoalDictObservation(gym.ObservationWrapper):
    """A flat goal env (Robot6Reach-v0) seen as a gymnasium-robotics Dict env, for SB3's HerReplayBuffer:
    ``observation`` is the flat observation without the desired goal (so relabelling replaces the goal
    everywhere the policy sees it), ``achieved_goal``/``desired_goal`` are the goal slices."""

    def __init__(self, env: gym.Env, spec: GoalSpec):
        super().__init__(env)
        self.goal_spec = spec
        box = env.observation_space
        self._keep = np.ones(box.shape[0], dtype=bool)
        self._keep[spec.desired] = False

        def part(index) -> gym.spaces.Box:
            return gym.spaces.Box(box.low[index], box.high[index], dtype=box.dtype)

        self.observation_space = gym.spaces.Dict(
            {"observation": part(self._keep), "achieved_goal": part(spec.achieved), "desired_goal": part(spec.desired)}
        )

    def observation(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {"observation": obs[self._keep], "achieved_goal": obs[self.goal_spec.achieved], "desired_goal": obs[self.goal_spec.desired]}

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info) -> np.ndarray:
        return self.goal_spec.compute_reward(achieved_goal, desired_goal, info)


# sb3-contrib's TQC at rl-zoo3's settings for panda-gym (hyperparams/tqc.yml, PandaPush/PandaPickAndPlace).
TQC_SETTINGS = {"hidden": [512, 512, 512], "batch_size": 2048, "gamma": 0.95, "lr": 1e-3, "tau": 0.05, "her_k": 4, "utd": 1}
PEERS = {"sb3": "SB3 SAC 2.9.2", "tqc": "sb3-contrib TQC 2.9.2"}


def peer_class(algo: str):
    if algo == "tqc":
        from sb3_contrib import TQC

        return TQC
    from stable_baselines3 import SAC

    return SAC


def sb3_worker(args: argparse.Namespace) -> None:
    """Train SB3's SAC (or sb3-contrib's TQC) towards the largest budget, saving the model and the training time
    at every budget; with ``--peer-time-limit``, stop when the training time passes it (what was reached and
    the steps/s go into times.json)."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(args.threads)
    cfg = Config(**json.loads(args.config_json))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = sorted(args.steps)
    times: dict[int, float] = {}
    progress: dict[str, float] = {"reached": 0, "elapsed_s": 0.0, "learning_from": 0.0, "learning_starts": cfg.learning_starts}

    class Milestones(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.paused = 0.0

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            elapsed = time.perf_counter() - self.t0 - self.paused
            if self.num_timesteps in budgets:
                times[self.num_timesteps] = elapsed
                t = time.perf_counter()
                self.model.save(out / f"model_{self.num_timesteps}.zip")
                self.paused += time.perf_counter() - t
            progress.update(reached=self.num_timesteps, elapsed_s=elapsed)
            if self.num_timesteps == cfg.learning_starts:
                progress.update(learning_from=elapsed)
            return args.peer_time_limit is None or elapsed < args.peer_time_limit

    env = make_env(cfg.env_id, **cfg.env_kwargs())
    spec = goal_spec(env)
    her = spec is not None and cfg.her is not False  # as ours: on for goal envs unless turned off
    extra = {}
    if her:
        from stable_baselines3 import HerReplayBuffer

        env = GoalDictObservation(env, spec)
        extra = {"replay_buffer_class": HerReplayBuffer,
                 "replay_buffer_kwargs": {"n_sampled_goal": cfg.her_k, "goal_selection_strategy": "future"}}
    model = peer_class(args.algo)(
        "MultiInputPolicy" if her else "MlpPolicy", env, learning_rate=cfg.lr, buffer_size=cfg.buffer_size,
        learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma,
        ent_coef=f"auto_{cfg.init_alpha}", train_freq=1, gradient_steps=cfg.utd,
        policy_kwargs={"net_arch": list(cfg.hidden)}, seed=cfg.seed, device="cpu", verbose=0, **extra,
    )
    model.learn(total_timesteps=budgets[-1], callback=Milestones())
    (out / "times.json").write_text(json.dumps({"budgets": times, **progress}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Robot6Reach-v0", help="gymnasium env id (module:EnvId for a third-party env)")
    p.add_argument("--urdf", default=None, metavar="PATH", help="Robot6Reach-v0 on the arm of this URDF (as Train_Robot6.py --urdf)")
    p.add_argument("--ee-link", default=None, metavar="NAME", help="with --urdf: the end-effector link")
    p.add_argument("--trainer", nargs="+", choices=("ours", "sb3", "tqc", "both"), default=["ours"],
                   help="which trainers to run: ours, sb3 (SB3's SAC), tqc (sb3-contrib's TQC at rl-zoo3's panda-gym "
                        "settings), both (ours and sb3); default: ours")
    p.add_argument("--tqc-set", nargs="*", default=[], metavar="KEY=VALUE", help="settings for TQC over its rl-zoo3 ones")
    p.add_argument("--peer-time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop SB3/TQC once their training time passes this; budgets not reached are not evaluated")
    p.add_argument("--algo", choices=("sb3", "tqc"), default="sb3", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, nargs="+", default=[10_000, 20_000, 50_000], help="env-step budgets to evaluate")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--eval-episodes", type=int, default=50, help="evaluation episodes per checkpoint")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings for both trainers, e.g. lr=3e-4 gamma=0.99 her=true")
    p.add_argument("--sb3-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="settings for SB3 only, over --set (SB3 at its own best settings, e.g. hidden=128,128 batch_size=256 utd=1)")
    p.add_argument("--jobs", type=int, default=1, help="trainings in parallel (each with cores/jobs torch threads)")
    p.add_argument("--workdir", type=Path, default=None, help="keep runs here (default: a temporary folder)")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: evaluate the runs in --workdir as far as they got (while they train elsewhere, "
                        "or after a stop); budgets a run has not reached are left out")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="also draw the table: deterministic success (mean return without one) against env steps, "
                        "each trainer's mean and its seeds")
    p.add_argument("--sb3-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config-json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sb3_worker:
        sb3_worker(args)
        return 0

    if min(args.steps) <= 0 or args.eval_episodes <= 0 or args.jobs <= 0:
        sys.exit("error: --steps, --eval-episodes and --jobs must be positive")
    arm = Config(env_id=args.env, urdf=args.urdf, ee_link=args.ee_link)
    env_kwargs, arm_flags = arm.env_kwargs(), [x for k, v in arm.env_kwargs().items() for x in (flag_of(k), v)]
    try:
        arm.validate()
        make_env(args.env, **env_kwargs).close()
    except Robot6Error as e:
        sys.exit(f"error: {e}")
    every = reduce(math.gcd, args.steps)
    budgets = sorted(set(args.steps))
    if args.no_train and (args.workdir is None or not args.workdir.is_dir()):
        sys.exit(f"error: --no-train evaluates the runs in --workdir; {args.workdir or 'none'} is no folder")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="learn_"))
    workdir.mkdir(parents=True, exist_ok=True)
    flags, values = parse_set(args.set)
    if "eval_every" not in values:  # the budgets' checkpoints are evaluated here; evaluating in training would cost time
        flags += ["--eval-every", "0"]
    sb3_values = {**values, **parse_set(args.sb3_set)[1]}
    trainers = list(dict.fromkeys(t for name in args.trainer for t in (("ours", "sb3") if name == "both" else (name,))))
    tqc_values = {**values, **TQC_SETTINGS, **parse_set(args.tqc_set)[1]}

    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env_vars = child_env(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    jobs = [] if args.no_train else [(t, s) for s in args.seeds for t in trainers]
    procs: dict[tuple[str, int], subprocess.Popen] = {}
    while jobs or procs:
        while jobs and len(procs) < args.jobs:
            trainer, seed = jobs.pop(0)
            if trainer == "ours":
                # --resume: the same command with the same --workdir continues runs a stop cut short (and leaves
                # finished ones as they are).
                cmd = [sys.executable, str(ROOT / "Train_Robot6.py"), "--resume", "--env", args.env, "--seed", str(seed),
                       "--total-steps", str(budgets[-1]), "--save-every-steps", str(every), "--ckpt-every", str(10**9),
                       "--checkpoint-dir", str(workdir / f"ckpt_s{seed}"), "--log-dir", str(workdir / f"runs_s{seed}"), *arm_flags, *flags]
            else:
                peer_values = sb3_values if trainer == "sb3" else tqc_values
                given = {k: v for k, v in peer_values.items() if k not in ("updates_every", "compile", "policy_delay")}
                cfg, _ = apply_preset(Config(env_id=args.env, seed=seed, **env_kwargs, **given), set(given) | {"env_id", "seed"})
                cmd = [sys.executable, "-m", "bench.learn", "--sb3-worker", "--algo", trainer, "--config-json",
                       json.dumps(cfg.to_dict()), "--threads", str(threads), "--out", str(workdir / f"{trainer}_s{seed}"),
                       "--steps", *map(str, budgets)]
                if args.peer_time_limit is not None:
                    cmd += ["--peer-time-limit", str(args.peer_time_limit)]
            print("$", " ".join(cmd), flush=True)
            log = open(workdir / f"train_{trainer}_s{seed}.log", "w")
            procs[(trainer, seed)] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env_vars)
        time.sleep(1.0)
        for key, proc in list(procs.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    sys.exit(f"error: training {key} failed; see {workdir / f'train_{key[0]}_s{key[1]}.log'}")
                del procs[key]

    results: dict[str, dict[int, list[dict]]] = {t: {b: [] for b in budgets} for t in trainers}
    for seed in args.seeds:
        for trainer in trainers:
            if trainer == "ours":
                run = next((workdir / f"ckpt_s{seed}").glob("sac_*"), None)
                if run is None:
                    sys.exit(f"error: no run of ours for seed {seed} in {workdir}")
                rows = {int(r["global_step"]): float(r["elapsed_s"]) for r in read_csv_rows(next((workdir / f"runs_s{seed}").glob("sac_*")) / "training.csv")}
                saved = sorted(int(f.stem.rsplit("_", 1)[1]) for f in run.glob("ckpt_step_*.pth"))
            else:
                algo = peer_class(trainer)
                if not (workdir / f"{trainer}_s{seed}" / "times.json").is_file():
                    sys.exit(f"error: no {trainer} run for seed {seed} in {workdir}")
                times = json.loads((workdir / f"{trainer}_s{seed}" / "times.json").read_text())
                rows = {int(k): v for k, v in times["budgets"].items()}
                if times["reached"] < budgets[-1]:
                    learning = times["elapsed_s"] - times["learning_from"]
                    rate = (times["reached"] - times["learning_starts"]) / max(learning, 1e-9)  # steps/s once learning
                    print(f"{trainer} seed {seed}: stopped at {times['reached']:,} steps after {times['elapsed_s']:.0f} s "
                          f"({rate:.1f} steps/s learning; {budgets[-1]:,} steps would take "
                          f"{(budgets[-1] - times['reached']) / max(rate, 1e-9) / 3600 + times['elapsed_s'] / 3600:.1f} h)",
                          flush=True)
            for b in budgets:
                if trainer != "ours" and b not in rows:
                    continue  # not reached within --peer-time-limit
                if trainer == "ours" and (not saved or saved[-1] < b):
                    print(f"ours seed {seed} @ {b} steps: not reached (checkpoints to {saved[-1] if saved else 0:,})", flush=True)
                    continue  # --no-train: the run has not got this far
                env = make_env(args.env, **env_kwargs)
                step = b
                if trainer == "ours":
                    step = next(x for x in saved if x >= b)  # the first episode end at or past the budget
                    policy, _ = load_policy(run / f"ckpt_step_{step}.pth")
                else:
                    spec = goal_spec(env)
                    if spec is not None and sb3_values.get("her") is not False:  # trained on the Dict view (HER)
                        view = GoalDictObservation(make_env(args.env, **env_kwargs), spec)
                        model = algo.load(workdir / f"{trainer}_s{seed}" / f"model_{b}.zip", env=view, device="cpu")
                        policy = lambda obs, m=model, v=view: m.predict(v.observation(obs), deterministic=True)[0]  # noqa: E731
                    else:
                        model = algo.load(workdir / f"{trainer}_s{seed}" / f"model_{b}.zip", device="cpu")
                        policy = lambda obs, m=model: m.predict(obs, deterministic=True)[0]  # noqa: E731
                r = evaluate(policy, env, args.eval_episodes, seed=10_000 + seed).summary()
                env.close()
                r["wall_s"], r["step"], r["seed"] = rows[step], step, seed
                results[trainer][b].append(r)
                success = f"success {r['success_rate']:.0%}, " if np.isfinite(r["success_rate"]) else ""
                at = f" (checkpoint at {step})" if step != b else ""
                print(f"{trainer} seed {seed} @ {b} steps{at}: {success}return {r['mean_return']:.1f}, "
                      f"{r['wall_s']:.0f} s", flush=True)

    sb3_text = f"; SB3 with {' '.join(args.sb3_set)}" if args.sb3_set and "sb3" in trainers else ""
    print(f"\n{args.env}{(' on ' + args.urdf) if args.urdf else ''}; settings: {' '.join(args.set) or 'defaults'}{sb3_text}; seeds {args.seeds}; {args.eval_episodes} deterministic "
          f"eval episodes per seed; "
          + ("evaluated as far as the runs got (--no-train)" if args.no_train else f"{args.jobs} trainings in parallel, {threads} torch thread(s) each"))
    has_success = all(np.isfinite(r["success_rate"]) for t in trainers for b in budgets for r in results[t][b])
    has_distance = all(np.isfinite(r["mean_final_distance"]) for t in trainers for b in budgets for r in results[t][b])
    off_budget = any(r["step"] != b for t in trainers for b in budgets for r in results[t][b])
    head = "| trainer | env steps |" + (" checkpoint steps per seed |" if off_budget else "")
    head += " success rate (mean) | per seed |" if has_success else ""
    head += " mean final distance (m) |" if has_distance else ""
    print(head + " mean return | per seed | training wall time (s, mean) |")
    print("|" + " --- |" * (head.count("|") + 2))
    for t in trainers:
        name = "ours" if t == "ours" else PEERS[t]
        for b in budgets:
            rs = results[t][b]
            if not rs:
                continue  # a peer stopped before this budget
            cells = [name, f"{b:,}"]
            by_seed = {r["seed"]: r for r in rs}
            seeds = [s for s in args.seeds if s in by_seed or t == "ours"]  # a seed of ours not there yet shows "-"
            short = f" ({len(rs)} of {len(seeds)} seeds)" if len(rs) < len(seeds) else ""

            def per_seed(fmt, key, by_seed=by_seed, seeds=seeds):
                return " / ".join(fmt(by_seed[s][key]) if s in by_seed else "-" for s in seeds)

            if off_budget:
                cells.append(per_seed(lambda x: f"{x:,}", "step"))
            if has_success:
                cells += [f"{np.mean([r['success_rate'] for r in rs]):.0%}{short}", per_seed(lambda x: f"{x:.0%}", "success_rate")]
            if has_distance:
                cells.append(f"{np.mean([r['mean_final_distance'] for r in rs]):.3f}")
            cells += [f"{np.mean([r['mean_return'] for r in rs]):.1f}{short}", per_seed(lambda x: f"{x:.0f}", "mean_return"),
                      f"{np.mean([r['wall_s'] for r in rs]):.0f}"]
            print("| " + " | ".join(cells) + " |")
    if has_success:
        print(f"\nfirst budget with >= {SUCCESS_TARGET:.0%} mean success, and the mean training wall time to it:")
        reached = {}
        for t in trainers:
            done = [b for b in budgets if results[t][b]]
            b = next((b for b in done if np.mean([r["success_rate"] for r in results[t][b]]) >= SUCCESS_TARGET - 1e-9), None)  # 90.0% counts
            if b is None:
                print(f"- {t}: not within {done[-1] if done else 0:,} steps")
            else:
                reached[t] = float(np.mean([r["wall_s"] for r in results[t][b]]))
                print(f"- {t}: {b:,} steps, {reached[t]:.0f} s")
        for peer in ("sb3", "tqc"):
            if "ours" in reached and peer in reached:
                print(f"- ratio ours / {peer}: {reached['ours'] / reached[peer]:.2f} (budgets as fine as --steps)")
    if args.plot is not None:
        title = f"{args.env}{(' on ' + args.urdf) if args.urdf else ''}, {' '.join(args.set) or 'defaults'}"
        plot_results(results, has_success, title, args.plot)
        print(f"plot written to {args.plot}")
    print(f"\nruns kept in {workdir}")
    return 0


def plot_results(results: dict[str, dict[int, list[dict]]], has_success: bool, title: str, path: Path) -> None:
    """Draw each trainer's evaluations against env steps: the mean over seeds (thick, with markers) and each
    seed (thin) as far as it got; the mean at the budgets every seed reached."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    key = "success_rate" if has_success else "mean_return"
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for trainer, by_budget in results.items():
        seeds = sorted({r["seed"] for rs in by_budget.values() for r in rs})
        steps = [b for b in sorted(by_budget) if seeds and len(by_budget[b]) == len(seeds)]  # budgets every seed reached
        if not seeds:
            continue
        name = "ours" if trainer == "ours" else PEERS[trainer]
        mean = [np.mean([r[key] for r in by_budget[b]]) for b in steps]
        (line,) = ax.plot(steps, mean, marker="o", linewidth=2, label=f"{name} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
        if len(seeds) > 1:
            for seed in seeds:
                points = [(b, r[key]) for b in sorted(by_budget) for r in by_budget[b] if r["seed"] == seed]
                ax.plot(*zip(*points, strict=True), color=line.get_color(), linewidth=0.8, alpha=0.5)
    ax.set_xlabel("env steps")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"))
    ax.set_ylabel("deterministic success rate" if has_success else "mean return")
    if has_success:
        ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
