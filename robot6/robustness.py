"""Robustness report: a checkpoint's deterministic policy under a fixed suite of shifts from the nominal
simulation, each factor alone at both ends of a range wider than training's, then all at once.

    robot6-robustness checkpoints/RUN/best.pth --episodes 50
    robot6-robustness checkpoints/RUN/best.pth --episodes 50 --out reports/push_seed0

Every shift plays the same goals (the same seed, and a randomized env that draws the same goal stream), so
the rows differ by the shift alone. Writes OUT.md (the table, also printed), OUT.json and OUT.png (success, or
mean return for an env without success, per shift; nominal marked). The suite (``SUITE``) is the domain
randomization factors of ``robot6.envs.randomize`` held at fixed values; a factor the env does not have is left
out, and a shift with none of its factors is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from robot6.errors import ConfigError, Robot6Error
from robot6.run.report import command

# PyBullet's friction at a contact is the product of the two bodies' frictions: the object's alone scales every
# contact of the object (with the ground and with the fingers) by the factor; scaling the ground's and the
# fingers' too would scale those contacts by its square.
FRICTION = "object_friction"
# Sensor noise at level 1 (the largest of the shipped training ranges); level 2 doubles it.
SENSOR_NOISE = {"obs_joint_position": 0.005, "obs_joint_velocity": 0.02, "obs_tcp": 0.002, "obs_tcp_velocity": 0.01,
                "obs_object_position": 0.003, "obs_object_orientation": 0.05, "obs_object_velocity": 0.01,
                "obs_finger_width": 0.001}
ACTION_NOISE = 0.1  # twice the shipped training range's end
WORST = {"object_mass": 2.0, FRICTION: 0.5, "joint_damping": 2.0, "motor_force": 0.7, "latency": 2,
         "action_noise": ACTION_NOISE, **{k: 2 * v for k, v in SENSOR_NOISE.items()}}
# (name, factor values): the report's rows, in order.
SUITE: list[tuple[str, dict[str, float]]] = [
    ("nominal", {}),
    ("object mass x0.5", {"object_mass": 0.5}),
    ("object mass x2", {"object_mass": 2.0}),
    ("friction x0.5", {FRICTION: 0.5}),
    ("friction x1.5", {FRICTION: 1.5}),
    ("joint damping x0.5", {"joint_damping": 0.5}),
    ("joint damping x2", {"joint_damping": 2.0}),
    ("motor force x0.7", {"motor_force": 0.7}),
    ("latency 1 step", {"latency": 1}),
    ("latency 2 steps", {"latency": 2}),
    ("sensor noise x1", dict(SENSOR_NOISE)),
    ("sensor noise x2", {k: 2 * v for k, v in SENSOR_NOISE.items()}),
    ("action noise 0.1", {"action_noise": ACTION_NOISE}),
    ("all at once", WORST),
]


def suite_for(allowed: tuple[str, ...]) -> list[tuple[str, dict[str, float]]]:
    """The shifts an env with the randomization factors ``allowed`` has (its factors only; none empty but nominal)."""
    shifts = []
    for name, factors in SUITE:
        kept = {k: v for k, v in factors.items() if k in allowed}
        if kept or name == "nominal":
            shifts.append((name, kept))
    return shifts


def robustness(checkpoint: Path, episodes: int, seed: int) -> dict[str, Any]:
    """Evaluate ``checkpoint``'s policy under every shift of its env's suite; the report as plain data."""
    from tqdm import tqdm

    from robot6.envs.factory import make_env
    from robot6.run.config import Config
    from robot6.run.rollouts import evaluate, load_policy

    actor, meta = load_policy(checkpoint)
    config = Config.from_dict(meta.get("config", {}))
    kwargs = config.env_kwargs()
    probe = make_env(config.env_id, **kwargs)
    allowed = tuple(getattr(probe.unwrapped, "RANDOMIZABLE", ()))
    probe.close()
    if not allowed:
        raise ConfigError(f"{checkpoint}: {config.env_id} has no domain randomization to shift (Robot6Reach-v0, "
                          "Robot6Push-v0, Robot6PickAndPlace-v0 and their Dense variants have)")
    shifts = suite_for(allowed)
    rows = []
    with tqdm(total=len(shifts) * episodes, desc="robustness", unit="ep", dynamic_ncols=True, mininterval=1.0) as bar:
        for name, factors in shifts:
            bar.set_postfix_str(name)
            # Nominal too through a randomized env with nothing to draw: the same goal stream as every shift.
            env = make_env(config.env_id, **kwargs, randomize={k: [v, v] for k, v in factors.items()})
            try:
                result = evaluate(actor, env, episodes, seed, on_episode=lambda: bar.update(1))
            finally:
                env.close()
            s = result.summary()
            rows.append({"shift": name, "factors": factors, "success_rate": s["success_rate"],
                         "mean_return": s["mean_return"], "std_return": s["std_return"]})
    return {"checkpoint": str(checkpoint), "env_id": config.env_id, "global_step": meta["global_step"],
            "episodes": episodes, "seed": seed, "randomized_in_training": bool(config.randomize),
            "training_ranges": config.randomization if config.randomize else None,
            "action_history": config.action_history, "shifts": rows}


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table (success and return per shift; the worst single shifts named)."""
    has_success = all(r["success_rate"] == r["success_rate"] for r in report["shifts"])  # not NaN
    lines = [f"Robustness of {report['checkpoint']} ({report['env_id']}, {report['global_step']} steps, "
             f"{'trained with' if report['randomized_in_training'] else 'trained without'} randomization"
             + (f", observing its last {report['action_history']} actions" if report.get("action_history") else "") + "): "
             f"{report['episodes']} episodes per shift, seed {report['seed']}, the same goals for every shift.", "",
             "| shift | success | return (mean +- std) |", "| --- | --- | --- |"]
    for r in report["shifts"]:
        success = f"{r['success_rate']:.0%}" if has_success else "-"
        lines.append(f"| {r['shift']} | {success} | {r['mean_return']:.2f} +- {r['std_return']:.2f} |")
    singles = [r for r in report["shifts"] if r["shift"] not in ("nominal", "all at once")]
    if singles:
        key = "success_rate" if has_success else "mean_return"
        worst = sorted(singles, key=lambda r: r[key])[:3]
        shown = ", ".join(f"{r['shift']} ({r[key]:.0%})" if has_success else f"{r['shift']} ({r[key]:.2f})" for r in worst)
        lines += ["", f"Worst single shifts: {shown}."]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """A bar per shift (success, or mean return for an env without success), the nominal one marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["shifts"]
    has_success = all(r["success_rate"] == r["success_rate"] for r in rows)
    values = [100 * r["success_rate"] if has_success else r["mean_return"] for r in rows]
    names = [r["shift"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    colors = ["tab:green" if n == "nominal" else "tab:red" if n == "all at once" else "tab:blue" for n in names]
    ax.barh(range(len(rows)), values, color=colors)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.0f}%" if has_success else f" {v:.2f}", va="center", fontsize=8)
    ax.axvline(values[0], color="tab:green", linestyle="--", linewidth=1, label="nominal")
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.set_xlabel("deterministic success (%)" if has_success else "mean return")
    if has_success:
        ax.set_xlim(0, 100)
    ax.set_title(f"{report['env_id']}, {report['global_step']} steps, {report['episodes']} episodes per shift", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=command("robustness"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a .pth checkpoint")
    p.add_argument("--episodes", type=int, default=50, help="episodes per shift (default: 50)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the goals, the same for every shift (default: 12345)")
    p.add_argument("--out", type=Path, default=Path("robustness"),
                   help="write OUT.md, OUT.json and OUT.png (default: robustness in the current folder)")
    args = p.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise ConfigError(f"--episodes must be positive, got {args.episodes}")
        if not args.out.resolve().parent.is_dir():
            raise ConfigError(f"--out {args.out}: the folder {args.out.parent} does not exist")
        report = robustness(args.checkpoint, args.episodes, args.seed)
    except Robot6Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = markdown(report)
    out = args.out
    Path(f"{out}.md").write_text(table)
    Path(f"{out}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, Path(f"{out}.png"))
    print(table)
    print(f"wrote {out}.md, {out}.json, {out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
