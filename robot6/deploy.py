"""Run an exported policy (``robot6-export``: ONNX or TorchScript) the way a robot runs it: named sensor readings
in SI units in, the command in the robot's units out, clamped to the limits the export records.

    robot6-deploy policy.onnx --dry-run --episodes 20                       # the simulator through this runtime
    robot6-deploy policy.onnx --dry-run --latency 1 --sensor-noise 2 --action-noise 0.05
    robot6-deploy policy.pt --dry-run --realtime                            # paced at the control rate
    robot6-deploy policy.onnx --robot my_robot:MyArm                        # your adapter class (docs/REAL_ROBOT.md)

``PolicyRuntime`` is the whole runtime: ``reset(fields)`` at an episode's start, then ``step(fields)`` once per
control period (``control_hz`` of its interface) returns the command. A robot is an adapter (``Robot``):
``read()`` the fields, ``send(command)``, ``wait()`` until the next control period, ``stop()``. The dry run's
adapter is the simulator (``SimRobot``); with no latency and no noise it plays exactly the episodes
``robot6-evaluate`` plays on the same seed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robot6.envs.interface import Interface, from_spec
from robot6.envs.randomize import Latency, add_noise
from robot6.errors import ConfigError, Robot6Error
from robot6.run.report import command


class PolicyRuntime:
    """An exported policy with its metadata: readings in, commands out.

    ``path``: a ``.onnx`` file (onnxruntime; metadata inside) or a TorchScript ``.pt`` file (its metadata in
    ``PATH.json``). ``ConfigError`` for a file that is not one of them or lacks the metadata. ``step`` raises
    ``ValueError`` (one line) for readings with missing, extra or misshapen fields.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such file (write one with robot6-export CHECKPOINT --format onnx --out FILE)")
        self.metadata = self._load()
        if "interface" not in self.metadata:
            raise ConfigError(f"{self.path}: its metadata has no interface (exported by an older robot6-export: export it again)")
        self.interface: Interface = from_spec(self.metadata["interface"])
        self.control_hz = float(self.metadata["interface"].get("control_hz") or 0) or None
        self.obs_dim = int(self.metadata["obs_dim"])
        self.act(np.zeros(self.obs_dim, dtype=np.float32))  # the first call of a model is slow: not in a control period
        self.interface.start_history()  # that call's action is no past action

    def _load(self) -> dict[str, Any]:
        if self.path.suffix == ".onnx":
            import onnxruntime

            try:
                self._session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime raises its own types for a file that is not ONNX
                raise ConfigError(f"{self.path}: not a readable ONNX file ({str(e).splitlines()[0]})") from None
            props = self._session.get_modelmeta().custom_metadata_map
            meta = {k.removeprefix("robot6."): json.loads(v) for k, v in props.items() if k.startswith("robot6.")}
            self._run = lambda obs: self._session.run(None, {"obs": obs})[0]
        else:
            import torch

            side = Path(f"{self.path}.json")
            if not side.is_file():
                raise ConfigError(f"{self.path}: its metadata {side} is missing (robot6-export writes it beside the .pt)")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still loadable
                    model = torch.jit.load(str(self.path), map_location="cpu")
            except (RuntimeError, ValueError) as e:
                raise ConfigError(f"{self.path}: not a readable TorchScript file ({str(e).splitlines()[0]})") from None
            meta = json.loads(side.read_text())

            def run(obs: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return model(torch.from_numpy(obs)).numpy()

            self._run = run
        if "obs_dim" not in meta:
            raise ConfigError(f"{self.path}: no robot6 metadata in it (export it with robot6-export)")
        return meta

    @property
    def fields(self) -> dict[str, tuple[int, str]]:
        """The readings ``step`` takes: name -> (size, unit)."""
        return dict(self.interface.fields)

    def reset(self, fields: dict[str, Any]) -> None:
        """An episode starts from these readings (the joint targets start where the joints are, the gripper open)."""
        self.interface.start(self.interface.check(fields))

    def observation(self, fields: dict[str, Any]) -> np.ndarray:
        """The policy's input built from the readings (checked)."""
        return self.interface.observation(self.interface.check(fields))

    def act(self, observation: np.ndarray) -> np.ndarray:
        """The policy's action (in the env's action bounds) for one observation; the latest of the action
        history that the next observation holds, for a policy trained with one."""
        action = self._run(np.asarray(observation, dtype=np.float32).reshape(1, self.obs_dim))[0]
        self.interface.remember(action)
        return action

    def command(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """The command for an action, clamped to the limits of the interface."""
        return self.interface.command(action)

    def step(self, fields: dict[str, Any]) -> dict[str, np.ndarray]:
        """One control period: readings -> observation -> action -> command."""
        return self.command(self.act(self.observation(fields)))


class Robot(Protocol):
    """What the control loop needs of a robot (docs/REAL_ROBOT.md has a template for a real one)."""

    def read(self) -> dict[str, np.ndarray]: ...  # the interface's fields, SI units
    def send(self, command: dict[str, np.ndarray]) -> None: ...  # the interface's command
    def wait(self) -> None: ...  # until the next control period
    def stop(self) -> None: ...  # hold still (the end of an episode, an error, Ctrl+C)


class SimRobot:
    """The simulator as a robot: the env of the export (nominal physics), read and driven through the same
    interface a real robot's adapter implements. ``realtime`` paces ``wait`` at the control rate."""

    def __init__(self, metadata: dict[str, Any], realtime: bool = False):
        from robot6.envs.factory import make_env

        self.env = make_env(metadata["env_id"], **metadata.get("env_kwargs", {}))
        self.sim = self.env.unwrapped
        if not hasattr(self.sim, "apply_command"):
            self.env.close()
            raise ConfigError(f"--dry-run drives Robot6 envs only; {metadata['env_id']} is not one")
        self.period = 1.0 / float(metadata["interface"]["control_hz"])
        self.realtime, self._next = realtime, None
        self.max_steps = self.env.spec.max_episode_steps if self.env.spec is not None else 50

    def reset(self, seed: int | None) -> None:
        self.env.reset(seed=seed)
        self._next = time.perf_counter() + self.period

    def read(self) -> dict[str, np.ndarray]:
        fields = self.sim.read_fields()
        fields.pop("finger_command", None)  # the env's own memory; a runtime keeps its own
        return fields

    def send(self, command: dict[str, np.ndarray]) -> None:
        self.sim.apply_command(command)

    def wait(self) -> None:
        self.sim.advance()
        if self.realtime:
            pause = self._next - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            self._next += self.period

    def stop(self) -> None:
        """Nothing to stop in a simulator: the motors keep their last targets."""

    def outcome(self) -> tuple[float, dict[str, Any]]:
        """The reward and info of the current state (as the env's ``step`` would return them)."""
        _, reward, info = self.sim.score()
        return reward, info

    def close(self) -> None:
        self.env.close()


def dry_run(runtime: PolicyRuntime, episodes: int, seed: int, latency: int = 0, sensor_noise: dict[str, float] | None = None,
            action_noise: float = 0.0, realtime: bool = False, progress: bool = True) -> dict[str, Any]:
    """Play ``episodes`` episodes in the simulator through ``runtime`` (the env seeded once with ``seed``, as
    ``robot6-evaluate`` does): each command reaches the motors ``latency`` control steps late, Gaussian noise of
    ``sensor_noise`` (field -> std, SI units) is added to the readings and ``action_noise`` to the actions.
    Returns success rate, returns, and the runtime's time per step."""
    from tqdm import tqdm

    robot = SimRobot(runtime.metadata, realtime)
    rng = np.random.default_rng(seed)
    returns, successes, compute = [], [], []
    try:
        for i in tqdm(range(episodes), desc="dry run", unit="ep", disable=not progress, dynamic_ncols=True, mininterval=1.0):
            robot.reset(seed if i == 0 else None)
            runtime.reset(robot.read())
            queue, ret, info = Latency(latency), 0.0, {}
            for _ in range(robot.max_steps):
                fields = robot.read()
                if sensor_noise:
                    fields = add_noise(fields, sensor_noise, rng)
                t0 = time.perf_counter()
                action = runtime.act(runtime.observation(fields))
                if action_noise > 0:
                    action = np.clip(action + rng.normal(0.0, action_noise, size=action.shape), -1.0, 1.0)
                cmd = runtime.command(action)
                compute.append(time.perf_counter() - t0)
                due = queue.push(cmd)
                if due is not None:
                    robot.send(due)
                robot.wait()
                reward, info = robot.outcome()
                ret += reward
            robot.stop()
            returns.append(ret)
            successes.append(float(info.get("is_success", np.nan)))
    finally:
        robot.close()
    return {"episodes": episodes, "seed": seed, "latency": latency, "sensor_noise": sensor_noise or {}, "action_noise": action_noise,
            "success_rate": float(np.mean(successes)), "returns": returns, "mean_return": float(np.mean(returns)),
            "step_ms_median": 1000 * float(np.median(compute)), "step_ms_max": 1000 * float(np.max(compute)),
            "control_hz": runtime.control_hz}


def control_loop(runtime: PolicyRuntime, robot: Robot, steps: int) -> None:
    """Run ``runtime`` on a real ``robot`` for ``steps`` control periods (an episode); the robot is stopped at the
    end, on an error and on Ctrl+C."""
    try:
        runtime.reset(robot.read())
        for _ in range(steps):
            robot.send(runtime.step(robot.read()))
            robot.wait()
    finally:
        robot.stop()


def load_robot(spec: str, runtime: PolicyRuntime) -> Robot:
    """``module:Class`` -> an instance of the user's adapter class, given the runtime's metadata."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"--robot {spec}: write MODULE:CLASS (e.g. my_robot:MyArm, importable from here)")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"--robot {spec}: cannot load it ({e})") from None
    return cls(runtime.metadata)


def main(argv: list[str] | None = None) -> int:
    from robot6.robustness import SENSOR_NOISE

    p = argparse.ArgumentParser(prog=command("deploy"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="an exported policy: .onnx, or .pt with its .pt.json")
    p.add_argument("--dry-run", action="store_true", help="drive the simulator through the runtime and report success")
    p.add_argument("--robot", metavar="MODULE:CLASS", default=None, help="your robot's adapter class (docs/REAL_ROBOT.md)")
    p.add_argument("--episodes", type=int, default=20, help="episodes (default: 20)")
    p.add_argument("--steps", type=int, default=50, help="with --robot: control periods per episode (default: 50)")
    p.add_argument("--seed", type=int, default=12345, help="with --dry-run: the env's seed (robot6-evaluate's default)")
    p.add_argument("--latency", type=int, default=0, help="with --dry-run: control steps between a reading and its command reaching the motors")
    p.add_argument("--sensor-noise", type=float, default=0.0, metavar="X",
                   help="with --dry-run: Gaussian noise on the readings, X times robot6-robustness's level 1 (e.g. 2 mm on the TCP)")
    p.add_argument("--action-noise", type=float, default=0.0, metavar="STD", help="with --dry-run: Gaussian noise on the actions (in [-1, 1])")
    p.add_argument("--realtime", action="store_true", help="with --dry-run: pace the loop at the control rate")
    args = p.parse_args(argv)
    try:
        if args.dry_run == (args.robot is not None):
            raise ConfigError("give --dry-run (the simulator) or --robot MODULE:CLASS (your robot), one of them")
        if args.episodes <= 0 or args.steps <= 0:
            raise ConfigError("--episodes and --steps must be positive")
        if args.latency < 0 or args.sensor_noise < 0 or args.action_noise < 0:
            raise ConfigError("--latency, --sensor-noise and --action-noise must be >= 0")
        runtime = PolicyRuntime(args.policy)
        if args.robot is not None:
            robot = load_robot(args.robot, runtime)
            for i in range(args.episodes):
                input(f"episode {i + 1}/{args.episodes}: Enter to start (Ctrl+C stops the robot and quits) ")
                control_loop(runtime, robot, args.steps)
            return 0
        noise = {k[4:]: args.sensor_noise * v for k, v in SENSOR_NOISE.items() if k[4:] in runtime.fields or
                 (k == "obs_object_orientation" and "object_quaternion" in runtime.fields)} if args.sensor_noise else {}
        result = dry_run(runtime, args.episodes, args.seed, args.latency, noise, args.action_noise, args.realtime)
    except ValueError as e:  # readings the runtime refuses
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Robot6Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    meta = runtime.metadata
    print(f"dry run of {args.policy} ({meta['env_id']}) through the deployment runtime: {args.episodes} episodes, seed {args.seed}, "
          f"latency {args.latency} step(s), sensor noise x{args.sensor_noise:g}, action noise {args.action_noise:g}")
    if result["success_rate"] == result["success_rate"]:
        print(f"success rate  {result['success_rate']:.0%}")
    print(f"return        {result['mean_return']:.3f} (mean)")
    hz = runtime.control_hz
    print(f"runtime       {result['step_ms_median']:.2f} ms per step (median; max {result['step_ms_max']:.2f}), "
          + (f"{1000 / hz:.1f} ms available at {hz:g} Hz" if hz else "no control rate recorded"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
