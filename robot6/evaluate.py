"""Evaluate a checkpoint's deterministic policy on fresh episodes, optionally recording a video; or an env's
scripted controller (the source of ``--demos``), e.g. to check a gripper arm's card before training on it.

    robot6-evaluate checkpoints/RUN/best.pth --episodes 20
    robot6-evaluate checkpoints/RUN/best.pth --video reach.mp4      # or reach.gif; headless
    robot6-evaluate checkpoints/RUN/latest.pth --gui                # PyBullet window (needs a display)
    robot6-evaluate --scripted Robot6PickAndPlace-v0 --urdf franka_panda/panda.urdf --episodes 60 --video pick.gif
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from robot6.errors import ConfigError, Robot6Error
from robot6.run.config import Config
from robot6.run.report import command
from robot6.run.rollouts import evaluate, load_policy


def make_eval_env(env_id: str, render_mode: str | None = None, env_kwargs: dict | None = None):
    """The env as the trainer makes it (``env_kwargs``: the run's ``Config.env_kwargs()``, e.g. its URDF arm),
    with ``render_mode`` passed only when frames or a window are wanted (some envs refuse
    ``render_mode=None``); ``ConfigError`` when the env cannot give them."""
    from robot6.envs.factory import make_env

    env_kwargs = env_kwargs or {}
    if render_mode is None:
        return make_env(env_id, **env_kwargs)
    flag = "--video" if render_mode == "rgb_array" else "--gui"
    try:
        env = make_env(env_id, render_mode=render_mode, **env_kwargs)
    except ConfigError:
        raise
    except Exception as e:  # the env's own constructor refused the mode
        raise ConfigError(f"{flag}: {env_id} cannot render with render_mode={render_mode!r} "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if render_mode == "rgb_array":
        try:
            env.reset(seed=0)
            frame = env.render()
        except Exception as e:
            env.close()
            raise ConfigError(f"--video: {env_id} cannot render frames ({type(e).__name__}: {e})") from None
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] in (3, 4)):
            env.close()
            raise ConfigError(f"--video: {env_id} gives no RGB frames with render_mode='rgb_array' (render() "
                              f"returned {type(frame).__name__}); evaluate without --video")
    return env


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Write RGB frames (H, W, 3) uint8 to ``.mp4`` (ffmpeg, from the imageio-ffmpeg wheel) or ``.gif``."""
    import imageio.v2 as imageio

    path = Path(path)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, frames, duration=1000.0 / fps, loop=0)
    else:
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=2) as writer:
            for frame in frames:
                writer.append_data(frame)


def check_video_path(path: Path) -> None:
    """Refuse a ``--video`` path that ``write_video`` could not write, before any episode runs (``ConfigError``):
    a suffix other than .mp4 or .gif, .mp4 without imageio-ffmpeg, a missing folder, a path that cannot be
    opened for writing.

    imageio fails late and noisily there (after the episodes, and again when its writer is collected), so the
    file is opened for appending once here (and removed again if it was not there before).
    """
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise ConfigError(f"--video {path}: the file name must end in .mp4 or .gif")
    if path.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        # Without it imageio picks another writer for .mp4 (its TIFF writer) and fails.
        raise ConfigError(f"--video {path}: writing .mp4 needs the imageio-ffmpeg package "
                          "(pip install imageio-ffmpeg; it comes with robot6); or record a .gif")
    if not path.resolve().parent.is_dir():
        raise ConfigError(f"--video {path}: the folder {path.parent} does not exist")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as e:
        raise ConfigError(f"--video {path}: cannot write there ({e.strerror or e})") from None
    if not existed:
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=command("evaluate"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, nargs="?", help="a .pth file: latest.pth, best.pth or any ckpt_*.pth")
    p.add_argument("--scripted", metavar="ENV", default=None,
                   help="instead of a checkpoint: the scripted controller of ENV (Robot6Push-v0, Robot6PickAndPlace-v0 "
                        "and their Dense variants)")
    p.add_argument("--urdf", metavar="PATH", default=None, help="with --scripted: the arm (as robot6-train --urdf)")
    p.add_argument("--card", metavar="PATH", default=None, help="with --scripted --urdf: the arm's card (as robot6-train --card)")
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes (default: 20)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the evaluation env: different from training by default")
    p.add_argument("--video", type=Path, default=None, help="record to this .mp4 or .gif (headless rendering)")
    p.add_argument("--video-episodes", type=int, default=3, help="how many of the episodes the video shows (default: 3)")
    p.add_argument("--gui", action="store_true", help="show the episodes in a PyBullet window (needs a display)")
    args = p.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise ConfigError(f"--episodes must be positive, got {args.episodes}")
        if args.video is not None:
            check_video_path(args.video)
        if args.video is not None and args.gui:
            raise ConfigError("--video and --gui cannot be combined: choose one")
        if args.gui:
            from robot6.envs.arm import display_available

            if not display_available():
                raise ConfigError("--gui needs a display, and none was found (DISPLAY is unset); use --video out.mp4 instead")
        if (args.checkpoint is None) == (args.scripted is None):
            raise ConfigError("give a checkpoint, or --scripted ENV (not both)")
        if args.scripted is None and (args.urdf or args.card):
            raise ConfigError("--urdf and --card go with --scripted; a checkpoint knows its arm")
        if args.card is not None and args.urdf is None:
            raise ConfigError("--card describes the gripper of --urdf PATH; give both")
        render = "rgb_array" if args.video else "human" if args.gui else None
        if args.scripted is not None:
            kwargs = {k: v for k, v in (("urdf", args.urdf), ("card", args.card)) if v is not None}
            env = make_eval_env(args.scripted, render, kwargs)
            if not hasattr(env.unwrapped, "demonstration"):
                env.close()
                raise ConfigError(f"--scripted {args.scripted}: this env has no scripted controller")
            actor, meta = (lambda obs: env.unwrapped.demonstration()), {"env_id": args.scripted}
        else:
            actor, meta = load_policy(args.checkpoint)
            env = make_eval_env(meta["env_id"], render, Config.from_dict(meta.get("config", {})).env_kwargs())
        frames: list | None = [] if args.video else None
        try:
            result = evaluate(actor, env, args.episodes, args.seed, frames, record_episodes=args.video_episodes)
            fps = env.metadata.get("render_fps") or 30
        finally:
            env.close()
        if args.video:
            try:
                write_video(args.video, frames, fps)
            except OSError as e:
                raise ConfigError(f"--video {args.video}: could not write the video ({e})") from e
    except Robot6Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = result.summary()
    if args.scripted is not None:
        print(f"scripted controller: {args.scripted}" + (f" on {args.urdf}" if args.urdf else ""))
    else:
        print(f"{args.checkpoint}: {meta['env_id']}, trained {meta['episode']} episodes, {meta['global_step']} steps")
    print(f"return        {s['mean_return']:.3f} +- {s['std_return']:.3f} over {args.episodes} episodes")
    if np.isfinite(s["success_rate"]):
        print(f"success rate  {s['success_rate']:.0%}")
    if np.isfinite(s["mean_final_distance"]):
        print(f"final distance {s['mean_final_distance']:.4f} m (mean)")
    print(f"episode length {s['mean_length']:.1f} steps (mean)")
    if args.video:
        print(f"video: {args.video} ({len(frames)} frames at {fps} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
