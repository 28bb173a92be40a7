"""Look inside checkpoints without running anything from them and without changing any file.

    robot6-show                          # every run under checkpoints/ and its checkpoints
    robot6-show checkpoints/RUN          # one run folder
    robot6-show checkpoints/RUN/best.pth # one checkpoint: metadata, config, tensor shapes

Files are read with ``torch.load(..., weights_only=True)`` (through ``robot6.run.checkpoint.load_checkpoint``): a
file that would run code is listed as refused. An unreadable file is listed as invalid with the reason.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch

from robot6.errors import CheckpointError
from robot6.run import checkpoint as ckpt
from robot6.run.report import command
from robot6.run.segments import ReplayStore


def replay_on_disk(run_dir: Path, manifest: dict[str, int] | None) -> str:
    """How many of a checkpoint's replay transitions have segment files (by file name; nothing is read)."""
    if not manifest:
        return "-"
    covered, want = ReplayStore(run_dir / "replay").covered(manifest)
    return f"{want:,}" if covered >= want else f"{covered:,} of {want:,}"


def _row(path: Path) -> dict[str, str]:
    n = path.stat().st_size
    size = f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"
    try:
        state = ckpt.load_checkpoint(path)
    except CheckpointError as e:
        reason = str(e).split(": ", 1)[-1]
        return {"file": path.name, "episode": "", "step": "", "best": "", "saved_at": "", "size": size, "replay": "", "status": f"INVALID: {reason}"}
    meta = state["meta"]
    return {
        "file": path.name + (" (by eval)" if path.name == "best.pth" and meta.get("best_by") == "evaluation return" else ""),
        "episode": str(state["episode"]),
        "step": str(state["global_step"]),
        "best": f"{state['best_reward']:.3f}",
        "saved_at": str(meta.get("saved_at", "")),
        "size": size,
        "replay": replay_on_disk(path.parent, state.get("replay")),
        "status": "valid",
    }


def _order(path: Path) -> tuple[int, int, str]:
    n = ckpt.periodic_number(path)
    rank = {"latest.pth": 0, "best.pth": 1}.get(path.name, 2)
    return (rank, -(n or 0), path.name)


def print_table(rows: list[dict[str, str]]) -> None:
    headers = {"file": "file", "episode": "episode", "step": "global_step", "best": "best_reward", "saved_at": "saved_at",
               "size": "size", "replay": "replay", "status": "status"}
    widths = {k: max(len(h), *(len(r[k]) for r in rows)) for k, h in headers.items()}
    print("  ".join(h.ljust(widths[k]) for k, h in headers.items()).rstrip())
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) for k in headers).rstrip())


def inspect_folder(folder: Path) -> int:
    """Print one table per run folder (``folder`` itself when it holds .pth files). Returns the file count."""
    runs = [folder] if any(folder.glob("*.pth")) else sorted(d for d in folder.iterdir() if d.is_dir() and any(d.glob("*.pth")))
    pointer = ckpt.read_pointer(folder)
    if pointer:
        print(f"latest_checkpoint.json -> {pointer['path']} (episode {pointer.get('episode')}, global_step {pointer.get('global_step')})\n")
    n = 0
    for run in runs:
        files = sorted(run.glob("*.pth"), key=_order)
        print(f"{run}")
        print_table([_row(f) for f in files])
        print()
        n += len(files)
    if not runs:
        print(f"no checkpoints under {folder}")
    return n


def _shapes(prefix: str, value: Any, out: list[str]) -> None:
    if isinstance(value, torch.Tensor):
        out.append(f"  {prefix}: {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _shapes(f"{prefix}.{k}" if prefix else str(k), v, out)


def inspect_file(path: Path) -> None:
    """Print a checkpoint's metadata, counters, config and network tensor shapes."""
    state = ckpt.load_checkpoint(path)
    meta = state["meta"]
    print(f"{path}")
    print(f"  format_version {meta.get('format_version')}, saved_at {meta.get('saved_at', '?')}, run {meta.get('run_name', '?')}")
    print(f"  env {meta.get('env_id')}: obs_dim {meta.get('obs_dim')}, act_dim {meta.get('act_dim')}, "
          f"action low {meta.get('action_low')}, high {meta.get('action_high')}")
    arm = meta.get("arm")
    if isinstance(arm, dict):
        joints = ", ".join(f"{name} [{lo:.3g}, {hi:.3g}]" for name, lo, hi in zip(arm["joints"], arm["lower"], arm["upper"], strict=True))
        print(f"  arm {arm.get('name')} from {arm.get('urdf')} (sha256 {str(arm.get('sha256'))[:16]}): end effector "
              f"{arm.get('ee_link')}; {len(arm['joints'])} joints: {joints}")
        if arm.get("card"):
            print(f"  card {arm['card']} (sha256 {str(arm.get('card_sha256'))[:16]}): TCP {arm.get('tcp_link')} + "
                  f"{arm.get('tcp_depth')} m along {arm.get('approach')}; fingers {', '.join(arm.get('fingers', []))}")
        for i, meaning in enumerate(arm.get("action", [])):
            print(f"  action[{i}]: {meaning}")
    print(f"  episode {state['episode']}, global_step {state['global_step']}, best_reward {state['best_reward']:.4f}, "
          f"alpha {state['log_alpha'].exp().item():.5f}")
    print(f"  best.pth chosen by: {meta.get('best_by', 'episode return')}")
    evaluation = state.get("evaluation")
    if evaluation and evaluation.get("last"):
        last = evaluation["last"]
        success = f", success {last['success_rate']:.0%}" if math.isfinite(last["success_rate"]) else ""
        print(f"  last evaluation: step {last['global_step']}, return {last['mean_return']:.3f}{success} "
              f"({evaluation['count']} evaluations, best return {evaluation['best']:.3f}, every {evaluation['every']} steps)")
    replay = state.get("replay")
    if replay:
        print(f"  replay: {replay_on_disk(path.parent, replay)} transitions (generation {replay['generation']}, "
              f"count {replay['count']:,}, capacity {replay['capacity']:,})")
    print(f"  rng: {', '.join(k for k, v in (state.get('rng') or {}).items() if v is not None) or 'none'}")
    if meta.get("versions"):
        print("  versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    print("config:")
    for k, v in (meta.get("config") or {}).items():
        print(f"  {k} = {v}")
    print("tensors:")
    lines: list[str] = []
    for key in ("policy", "q1", "q2", "q1_target", "q2_target"):
        _shapes(key, state[key], lines)
    print("\n".join(lines))
    steps = [int(s["step"]) for s in state["q_opt"].get("state", {}).values() if "step" in s]
    print(f"optimizers: policy_opt, q_opt, alpha_opt (Adam, {max(steps, default=0)} steps)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=command("show"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", nargs="?", type=Path, default=Path("checkpoints"), help="a checkpoint folder, a run folder or a .pth file (default: checkpoints)")
    args = p.parse_args(argv)
    if args.path.is_dir():
        inspect_folder(args.path)
        return 0
    if not args.path.exists():
        print(f"error: {args.path}: no such file or folder", file=sys.stderr)
        return 2
    try:
        inspect_file(args.path)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
