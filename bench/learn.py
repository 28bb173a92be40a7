"""Learning benchmark: does SAC learn, how fast, and how does it compare with Stable-Baselines3?

For each seed, ours runs the real training command (``Train_Robot6.py``) for ``--total-steps`` of the largest
budget, with ``--save-every-steps`` checkpoints, at its env's preset and ``--set`` (evaluation during training
off unless set): the first episode end at or past each budget is that budget's checkpoint (exactly the budget
when episodes have a fixed length that divides it; its step count is in the table when not, e.g. for envs that
end an episode on success). The peers (``--trainer sb3``/``tqc``, ``pip install -e ".[bench]"``)
train through ``bench.peers`` with the same settings (``bench.peers`` says which), saving their model at every
budget. Each budget's deterministic policy is evaluated on ``--eval-episodes`` fresh episodes (the same goals
for every trainer) and a markdown table is printed, with the training wall time to reach each budget (process
start-up and evaluation excluded) and the first budget where the mean success reaches 90%. Ours runs with
``--resume``: the same command with the same ``--workdir`` continues the runs a stop cut short (long budgets
over several invocations) and evaluates the finished ones again; ``--no-train`` evaluates the runs in
``--workdir`` as far as they got, training nothing (a run still training elsewhere, a stop before the last budget).

    python -m bench.learn                                  # ours, Robot6Reach-v0, 10k/20k/50k steps, seeds 0 1 2
    python -m bench.learn --trainer both --steps 5000 10000 20000 --jobs 2
    python -m bench.learn --trainer both --steps 5000 10000 20000 --jobs 2 --sb3-set batch_size=256 utd=1
    python -m bench.learn --env Pendulum-v1 --steps 5000 10000 20000 --set gamma=0.99
    python -m bench.learn --steps 5000 10000 --seeds 0 --set her=true utd=2
    python -m bench.learn --env Robot6PickAndPlace-v0 --steps 250000 500000 1000000 --set demos=100 --workdir W --plot pick.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from bench import TRAIN, child_env, parse_settings, settings_flags
from bench.peers import OURS_ONLY, PEERS, TQC_SETTINGS, load_peer_policy
from robot6.envs.factory import make_env
from robot6.errors import Robot6Error
from robot6.run.checkpoint import periodic_number
from robot6.run.config import Config, flag_of
from robot6.run.logger import read_csv_rows
from robot6.run.presets import apply_preset, resolve_randomization
from robot6.run.rollouts import evaluate, load_policy

SUCCESS_TARGET = 0.9
Results = dict[str, dict[int, list[dict[str, Any]]]]  # trainer -> budget -> one evaluation summary per seed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Robot6Reach-v0", help="gymnasium env id (module:EnvId for a third-party env)")
    p.add_argument("--urdf", default=None, metavar="PATH", help="the arm of this URDF (as robot6-train --urdf): Reach, or Push and Pick on an arm with a gripper")
    p.add_argument("--card", default=None, metavar="PATH", help="with --urdf on Push or Pick: the arm's card (as robot6-train --card)")
    p.add_argument("--ee-link", default=None, metavar="NAME", help="with --urdf: the end-effector link")
    p.add_argument("--trainer", nargs="+", choices=("ours", "sb3", "tqc", "both"), default=["ours"],
                   help="which trainers to run: ours, sb3 (SB3's SAC), tqc (sb3-contrib's TQC at rl-zoo3's panda-gym "
                        "settings), both (ours and sb3); default: ours")
    p.add_argument("--steps", type=int, nargs="+", default=[10_000, 20_000, 50_000], help="env-step budgets to evaluate")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--eval-episodes", type=int, default=50, help="evaluation episodes per checkpoint")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings for every trainer, e.g. lr=3e-4 gamma=0.99 her=true")
    p.add_argument("--sb3-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="settings for SB3 only, over --set (SB3 at its own best settings, e.g. hidden=128,128 batch_size=256 utd=1)")
    p.add_argument("--tqc-set", nargs="*", default=[], metavar="KEY=VALUE", help="settings for TQC over its rl-zoo3 ones")
    p.add_argument("--peer-time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop SB3/TQC once their training time passes this; budgets not reached are not evaluated")
    p.add_argument("--jobs", type=int, default=1, help="trainings in parallel (each with cores/jobs torch threads)")
    p.add_argument("--workdir", type=Path, default=None, help="keep runs here (default: a temporary folder)")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: evaluate the runs in --workdir as far as they got (while they train elsewhere, "
                        "or after a stop); budgets a run has not reached are left out")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="also draw the table: deterministic success (mean return without one) against env steps, "
                        "each trainer's mean and its seeds")
    return p.parse_args(argv)


@dataclass
class Plan:
    """What ``main`` trains and evaluates, from the command line, checked."""

    args: argparse.Namespace
    budgets: list[int]  # sorted, distinct
    trainers: list[str]  # "ours", "sb3", "tqc"
    workdir: Path
    threads: int  # torch threads per training
    arm: Config  # env_id and the arm options (urdf, card, ee_link)
    ours_flags: list[str]  # --set as training flags (and --eval-every 0 unless set)
    peer_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # peer -> its settings over its preset

    @property
    def every(self) -> int:
        """The checkpoint period of ours: every budget is a multiple of it."""
        return reduce(math.gcd, self.budgets)

    def peer_config(self, trainer: str, seed: int) -> Config:
        """The Config a peer trains ``seed`` with: the env's preset under its settings (ours-only ones dropped)."""
        given = {k: v for k, v in self.peer_settings[trainer].items() if k not in OURS_ONLY}
        config = Config(env_id=self.arm.env_id, seed=seed, **self.arm.env_kwargs(), **given)
        return resolve_randomization(apply_preset(config, set(given) | {"env_id", "seed"})[0])


def make_plan(args: argparse.Namespace) -> Plan:
    """``args`` checked and resolved; ``Robot6Error`` for a bad value."""
    if min(args.steps) <= 0 or args.eval_episodes <= 0 or args.jobs <= 0:
        raise Robot6Error("--steps, --eval-episodes and --jobs must be positive")
    arm = Config(env_id=args.env, urdf=args.urdf, card=args.card, ee_link=args.ee_link)
    arm.validate()
    make_env(args.env, **arm.env_kwargs()).close()
    if args.no_train and (args.workdir is None or not args.workdir.is_dir()):
        raise Robot6Error(f"--no-train evaluates the runs in --workdir; {args.workdir or 'none'} is no folder")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="learn_"))
    workdir.mkdir(parents=True, exist_ok=True)
    values = parse_settings(args.set)
    flags = settings_flags(values)
    if "eval_every" not in values:  # the budgets' checkpoints are evaluated here; evaluating in training would cost time
        flags += ["--eval-every", "0"]
    trainers = list(dict.fromkeys(t for name in args.trainer for t in (("ours", "sb3") if name == "both" else (name,))))
    return Plan(
        args=args, budgets=sorted(set(args.steps)), trainers=trainers, workdir=workdir,
        threads=max(1, (os.cpu_count() or 1) // args.jobs), arm=arm,
        ours_flags=[*(x for k, v in arm.env_kwargs().items() for x in (flag_of(k), str(v))), *flags],
        peer_settings={"sb3": {**values, **parse_settings(args.sb3_set, "--sb3-set")},
                       "tqc": {**values, **TQC_SETTINGS, **parse_settings(args.tqc_set, "--tqc-set")}},
    )


def training_command(plan: Plan, trainer: str, seed: int) -> list[str]:
    """The command that trains ``trainer`` on ``seed`` into ``plan.workdir``."""
    workdir, last = plan.workdir, plan.budgets[-1]
    if trainer == "ours":
        # --resume: the same command with the same --workdir continues runs a stop cut short (and leaves finished
        # ones as they are).
        return [sys.executable, str(TRAIN), "--resume", "--env", plan.arm.env_id, "--seed", str(seed), "--total-steps", str(last),
                "--save-every-steps", str(plan.every), "--ckpt-every", str(10**9), "--checkpoint-dir", str(workdir / f"ckpt_s{seed}"),
                "--log-dir", str(workdir / f"runs_s{seed}"), *plan.ours_flags]
    command = [sys.executable, "-m", "bench.peers", "--algo", trainer, "--config-json", json.dumps(plan.peer_config(trainer, seed).to_dict()),
               "--threads", str(plan.threads), "--out", str(workdir / f"{trainer}_s{seed}"), "--steps", *map(str, plan.budgets)]
    if plan.args.peer_time_limit is not None:
        command += ["--time-limit", str(plan.args.peer_time_limit)]
    return command


def train_all(plan: Plan) -> None:
    """Every (trainer, seed) training, ``--jobs`` at a time, each logging to ``train_TRAINER_sSEED.log`` in the
    workdir. A failed one stops the others (ours saves and can be resumed) and ends the benchmark."""
    env = child_env(OMP_NUM_THREADS=str(plan.threads), MKL_NUM_THREADS=str(plan.threads))
    running: set[subprocess.Popen] = set()

    def train(trainer: str, seed: int) -> None:
        command = training_command(plan, trainer, seed)
        print("$ " + " ".join(command), flush=True)  # one write: the pool's threads print side by side
        log_path = plan.workdir / f"train_{trainer}_s{seed}.log"
        with open(log_path, "w") as log, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env) as proc:
            running.add(proc)
            code = proc.wait()
            running.discard(proc)
        if code != 0:
            raise Robot6Error(f"training {trainer} seed {seed} failed (exit code {code}); see {log_path}")

    jobs = [(t, s) for s in plan.args.seeds for t in plan.trainers]
    with ThreadPoolExecutor(max_workers=plan.args.jobs) as pool:
        futures = [pool.submit(train, *job) for job in jobs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            for f in futures:
                f.cancel()
            for proc in list(running):
                proc.terminate()
            raise failed.exception()


def ours_checkpoints(plan: Plan, seed: int) -> tuple[Path, dict[int, float]]:
    """The run folder of ours for ``seed`` and the training wall time (s) at each of its saved step counts."""
    run = next((plan.workdir / f"ckpt_s{seed}").glob("sac_*"), None)
    logs = next((plan.workdir / f"runs_s{seed}").glob("sac_*"), None)
    if run is None or logs is None:
        raise Robot6Error(f"no run of ours for seed {seed} in {plan.workdir}")
    elapsed = {int(r["global_step"]): float(r["elapsed_s"]) for r in read_csv_rows(logs / "training.csv")}
    saved = sorted(periodic_number(f) for f in run.glob("ckpt_step_*.pth"))
    return run, {step: elapsed[step] for step in saved if step in elapsed}


def peer_times(plan: Plan, trainer: str, seed: int) -> dict[int, float]:
    """The training wall time (s) of a peer at each budget it reached; says where a time limit stopped it."""
    path = plan.workdir / f"{trainer}_s{seed}" / "times.json"
    if not path.is_file():
        raise Robot6Error(f"no {trainer} run for seed {seed} in {plan.workdir}")
    times = json.loads(path.read_text())
    last = plan.budgets[-1]
    if times["reached"] < last:
        learning = times["elapsed_s"] - times["learning_from"]
        rate = (times["reached"] - times["learning_starts"]) / max(learning, 1e-9)  # steps/s once learning
        print(f"{trainer} seed {seed}: stopped at {times['reached']:,} steps after {times['elapsed_s']:.0f} s "
              f"({rate:.1f} steps/s learning; {last:,} steps would take "
              f"{(last - times['reached']) / max(rate, 1e-9) / 3600 + times['elapsed_s'] / 3600:.1f} h)", flush=True)
    return {int(k): v for k, v in times["budgets"].items()}


def evaluate_all(plan: Plan) -> Results:
    """Each trainer's deterministic policy at each budget it reached, per seed, on the same fresh goals."""
    args = plan.args
    results: Results = {t: {b: [] for b in plan.budgets} for t in plan.trainers}
    for seed in args.seeds:
        for trainer in plan.trainers:
            if trainer == "ours":
                run, times = ours_checkpoints(plan, seed)
            else:
                times = peer_times(plan, trainer, seed)
            for b in plan.budgets:
                if trainer == "ours":
                    step = next((s for s in sorted(times) if s >= b), None)  # the first episode end at or past the budget
                    if step is None:  # --no-train: the run has not got this far
                        print(f"ours seed {seed} @ {b} steps: not reached (checkpoints to {max(times, default=0):,})", flush=True)
                        continue
                    policy, meta = load_policy(run / f"ckpt_step_{step}.pth")
                    env_kwargs = Config.from_dict(meta["config"]).env_kwargs()  # the arm, and what the policy observes
                elif b in times:
                    step = b
                    config = plan.peer_config(trainer, seed)
                    policy = load_peer_policy(trainer, plan.workdir / f"{trainer}_s{seed}" / f"model_{b}.zip", config)
                    env_kwargs = config.env_kwargs()
                else:
                    continue  # not reached within --peer-time-limit
                env = make_env(plan.arm.env_id, **env_kwargs)
                r = evaluate(policy, env, args.eval_episodes, seed=10_000 + seed).summary()
                env.close()
                r.update(wall_s=times[step], step=step, seed=seed)
                results[trainer][b].append(r)
                success = f"success {r['success_rate']:.0%}, " if np.isfinite(r["success_rate"]) else ""
                at = f" (checkpoint at {step})" if step != b else ""
                print(f"{trainer} seed {seed} @ {b} steps{at}: {success}return {r['mean_return']:.1f}, {r['wall_s']:.0f} s", flush=True)
    return results


def trainer_name(trainer: str) -> str:
    return "ours" if trainer == "ours" else PEERS[trainer]


def failing_seeds(results: Results, mean_above: float = 0.5, seed_below: float = 0.1) -> list[str]:
    """One line per trainer and budget where the mean success has passed ``mean_above`` while a seed is still
    below ``seed_below``: a run that failed, hidden in a good mean."""
    lines = []
    for t, by_budget in results.items():
        for b, rs in sorted(by_budget.items()):
            low = [r for r in rs if r["success_rate"] < seed_below]
            if rs and low and np.mean([r["success_rate"] for r in rs]) > mean_above:
                seeds = ", ".join(f"seed {r['seed']} at {r['success_rate']:.0%}" for r in low)
                lines.append(f"FAILING SEEDS: {trainer_name(t)} at {b:,} steps: {seeds}, while the mean is "
                             f"{np.mean([r['success_rate'] for r in rs]):.0%}")
    return lines


def report(plan: Plan, results: Results) -> None:
    """The markdown table (per budget: mean, lowest and per-seed success and return, wall time), the seeds that
    failed where the mean did not (``failing_seeds``), and the first budget where each trainer's mean success
    reaches ``SUCCESS_TARGET``, with the ratio of the times to it."""
    args, budgets, trainers = plan.args, plan.budgets, plan.trainers
    sb3_text = f"; SB3 with {' '.join(args.sb3_set)}" if args.sb3_set and "sb3" in trainers else ""
    print(f"\n{args.env}{(' on ' + args.urdf) if args.urdf else ''}; settings: {' '.join(args.set) or 'defaults'}{sb3_text}; "
          f"seeds {args.seeds}; {args.eval_episodes} deterministic eval episodes per seed; "
          + ("evaluated as far as the runs got (--no-train)" if args.no_train else f"{args.jobs} trainings in parallel, {plan.threads} torch thread(s) each"))
    every = [r for t in trainers for b in budgets for r in results[t][b]]
    has_success = all(np.isfinite(r["success_rate"]) for r in every)
    has_distance = all(np.isfinite(r["mean_final_distance"]) for r in every)
    off_budget = any(r["step"] != b for t in trainers for b in budgets for r in results[t][b])
    head = "| trainer | env steps |" + (" checkpoint steps per seed |" if off_budget else "")
    head += " success rate (mean) | lowest seed | per seed |" if has_success else ""
    head += " mean final distance (m) |" if has_distance else ""
    head += " mean return |" + ("" if has_success else " lowest seed |") + " per seed | training wall time (s, mean) |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for t in trainers:
        for b in budgets:
            rs = results[t][b]
            if not rs:
                continue  # a peer stopped before this budget
            by_seed = {r["seed"]: r for r in rs}
            seeds = [s for s in args.seeds if s in by_seed or t == "ours"]  # a seed of ours not there yet shows "-"
            short = f" ({len(rs)} of {len(seeds)} seeds)" if len(rs) < len(seeds) else ""

            def per_seed(fmt, key, by_seed=by_seed, seeds=seeds):
                return " / ".join(fmt(by_seed[s][key]) if s in by_seed else "-" for s in seeds)

            cells = [trainer_name(t), f"{b:,}"]
            if off_budget:
                cells.append(per_seed(lambda x: f"{x:,}", "step"))
            if has_success:
                low = min(rs, key=lambda r: r["success_rate"])
                cells += [f"{np.mean([r['success_rate'] for r in rs]):.0%}{short}", f"{low['success_rate']:.0%} (seed {low['seed']})",
                          per_seed(lambda x: f"{x:.0%}", "success_rate")]
            if has_distance:
                cells.append(f"{np.mean([r['mean_final_distance'] for r in rs]):.3f}")
            cells.append(f"{np.mean([r['mean_return'] for r in rs]):.1f}{short}")
            if not has_success:
                low = min(rs, key=lambda r: r["mean_return"])
                cells.append(f"{low['mean_return']:.1f} (seed {low['seed']})")
            cells += [per_seed(lambda x: f"{x:.0f}", "mean_return"), f"{np.mean([r['wall_s'] for r in rs]):.0f}"]
            print("| " + " | ".join(cells) + " |")
    if not has_success:
        return
    for line in failing_seeds(results):
        print(line)
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
    for peer in PEERS:
        if "ours" in reached and peer in reached:
            print(f"- ratio ours / {peer}: {reached['ours'] / reached[peer]:.2f} (budgets as fine as --steps)")


def plot_results(results: Results, title: str, path: Path) -> None:
    """Draw each trainer's evaluations against env steps (success rate where every evaluation has one, else mean
    return): the mean over seeds (thick, with markers) at the budgets every seed reached, and each seed (thin)
    as far as it got."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    has_success = all(np.isfinite(r["success_rate"]) for by_budget in results.values() for rs in by_budget.values() for r in rs)
    key = "success_rate" if has_success else "mean_return"
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for trainer, by_budget in results.items():
        seeds = sorted({r["seed"] for rs in by_budget.values() for r in rs})
        steps = [b for b in sorted(by_budget) if seeds and len(by_budget[b]) == len(seeds)]  # budgets every seed reached
        if not seeds:
            continue
        mean = [np.mean([r[key] for r in by_budget[b]]) for b in steps]
        (line,) = ax.plot(steps, mean, marker="o", linewidth=2, label=f"{trainer_name(trainer)} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        plan = make_plan(args)
        if not args.no_train:
            train_all(plan)
        results = evaluate_all(plan)
    except Robot6Error as e:
        sys.exit(f"error: {e}")
    report(plan, results)
    if args.plot is not None:
        plot_results(results, f"{args.env}{(' on ' + args.urdf) if args.urdf else ''}, {' '.join(args.set) or 'defaults'}", args.plot)
        print(f"plot written to {args.plot}")
    print(f"\nruns kept in {plan.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
