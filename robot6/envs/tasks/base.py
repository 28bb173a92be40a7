"""What every task on the arm shares: one PyBullet client per instance, a goal, a headless camera, closing,
domain randomization (``robot6.envs.randomize``) of its physics, timing and sensing, and the option of an
observation that holds the policy's last actions."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robot6.envs.arm import camera_image
from robot6.envs.interface import MAX_ACTION_HISTORY
from robot6.envs.randomize import Randomizer, add_noise

# Bounds of the per-episode generator of a randomized env's draws (one integer from the env's generator).
_EPISODE_SEED_HIGH = 2**63


class ArmTaskEnv(gym.Env):
    """Base of the arm's task envs. A subclass sets ``self._sim`` (``robot6.envs.arm.connect``) and ``self._goal``,
    calls ``_set_render_mode`` first in its ``__init__``, and names where its camera looks (``CAMERA``, the
    keywords of ``robot6.envs.arm.camera_image``)."""

    metadata = {"render_modes": ["human", "rgb_array"]}
    CAMERA: dict[str, Any]  # camera_image keywords: target, and distance, yaw, pitch where not its defaults
    RANDOMIZABLE: tuple[str, ...] = ()  # the randomization factors this task has (robot6.envs.randomize.FACTORS)
    _randomizer: Randomizer | None = None
    _history = 0  # past actions in the observation
    _cube: int | None = None  # the object's body, in the tasks that have one

    def _set_render_mode(self, render_mode: str | None, width: int, height: int) -> None:
        """Check and keep the render mode (None, "human" or "rgb_array") and the frame size."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.width, self.height = width, height

    def render(self):
        """An RGB frame (height, width, 3) with ``render_mode="rgb_array"`` (headless), else None."""
        if self.render_mode != "rgb_array":
            return None
        return camera_image(self._sim, self.width, self.height, **self.CAMERA)

    def close(self):
        if getattr(self, "_sim", None) is not None:
            self._sim.disconnect()
            self._sim = None

    @property
    def goal(self) -> np.ndarray:
        """The current goal position (3,), world frame, metres."""
        return self._goal.copy()

    # Domain randomization and the action history. A task calls _init_randomization in __init__ and _set_interface
    # once its spaces are set, _new_episode in reset (after restoring its snapshot, before it drives the motors),
    # and at every step _noisy_action (which remembers the action), _deliver and _policy_observation.

    def _init_randomization(self, randomize: dict[str, Any] | None, action_history: int = 0) -> None:
        """Randomize every episode within ``randomize`` (``{factor: [low, high]}``; None: never, and nothing is
        drawn, so that the env is bit for bit the nominal one; ``{}``: draw nothing but the episode's generator,
        the nominal physics with the goals a randomized env would draw). ``action_history``: the number of past
        actions the observation holds after its own values (``robot6.envs.interface``; 0: none, the observation
        bit for bit the plain one)."""
        if isinstance(action_history, bool) or not isinstance(action_history, int | np.integer) or not 0 <= action_history <= MAX_ACTION_HISTORY:
            raise ValueError(f"action_history must be a whole number from 0 to {MAX_ACTION_HISTORY}, got {action_history!r}")
        self._history = int(action_history)
        self._randomizer = Randomizer(randomize, self.RANDOMIZABLE) if randomize is not None else None
        self._dr_rng: np.random.Generator | None = None
        self._nominal: dict[str, Any] | None = None

    def _set_interface(self, kind: type) -> None:
        """The task's ``interface`` of this ``kind`` (``robot6.envs.interface``) from ``deployment_spec()``, and with
        an action history the observation space widened by it (each past action in [-1, 1])."""
        spec = self.deployment_spec()
        if self._history:
            spec.update(action_history=self._history, action_dim=int(self.action_space.shape[0]))
            self.observation_space = _widened(self.observation_space, self._history * int(self.action_space.shape[0]))
        self.interface = kind(spec)

    def _new_episode(self) -> dict[str, float] | None:
        """Forget the past actions, draw this episode's values (from a generator seeded by one draw of the env's
        own) and set the physics; the values, or None without randomization."""
        if self._history:
            self.interface.start_history()
        if self._randomizer is None:
            return None
        self._dr_rng = np.random.default_rng(int(self.np_random.integers(_EPISODE_SEED_HIGH)))
        values = self._randomizer.new_episode(self._dr_rng)
        self._set_physics(self._randomizer)
        return values

    def _set_physics(self, r: Randomizer) -> None:
        """The physical factors of the episode, as scales of the values the env was built with (read once)."""
        sim, robot = self._sim, self.robot
        if self._nominal is None:
            fingers = list(getattr(robot, "finger_joints", []))
            self._nominal = {
                "damping": [sim.getJointInfo(robot.id, j)[6] for j in robot.joints],
                "forces": list(robot.forces), "finger_forces": list(getattr(robot, "finger_forces", [])),
                "ground": sim.getDynamicsInfo(self._plane, -1)[1],
                "fingers": [sim.getDynamicsInfo(robot.id, j)[1] for j in fingers],
                "object": sim.getDynamicsInfo(self._cube, -1)[:2] if self._cube is not None else None,
            }
        n = self._nominal
        if "joint_damping" in r.ranges:
            for j, d in zip(robot.joints, n["damping"], strict=True):
                sim.changeDynamics(robot.id, j, jointDamping=d * r.scale("joint_damping"))
        if "motor_force" in r.ranges:
            robot.forces = [f * r.scale("motor_force") for f in n["forces"]]
            if n["finger_forces"]:
                robot.finger_forces = [f * r.scale("motor_force") for f in n["finger_forces"]]
        if "ground_friction" in r.ranges:
            sim.changeDynamics(self._plane, -1, lateralFriction=n["ground"] * r.scale("ground_friction"))
        if "finger_friction" in r.ranges:
            for j, f in zip(robot.finger_joints, n["fingers"], strict=True):
                sim.changeDynamics(robot.id, j, lateralFriction=f * r.scale("finger_friction"))
        if n["object"] is not None and ("object_mass" in r.ranges or "object_friction" in r.ranges):
            mass, friction = n["object"]
            sim.changeDynamics(self._cube, -1, mass=mass * r.scale("object_mass"),
                               lateralFriction=friction * r.scale("object_friction"))

    def _noisy_action(self, a: np.ndarray) -> np.ndarray:
        """The clipped action with this episode's action noise (unchanged without randomization); the action
        itself, noiseless, is the latest of the action history."""
        if self._history:
            self.interface.remember(a)
        return a if self._randomizer is None else self._randomizer.action(a, self._dr_rng)

    def _deliver(self, command: Any) -> Any:
        """The command that reaches the motors now: ``command`` itself, or under latency the one computed that
        many steps ago (None before the first arrives: the motors keep their targets)."""
        return command if self._randomizer is None else self._randomizer.deliver(command)

    def _policy_observation(self, obs):
        """What the policy observes of the state whose true observation is ``obs``: the observation from noisy
        readings (``read_fields`` plus this episode's sensor noise) where there is sensor noise, followed by the
        action history where there is one; ``obs`` itself when neither."""
        if self._randomizer is not None and self._randomizer.stds:
            obs = self.interface.native(add_noise(self.read_fields(), self._randomizer.stds, self._dr_rng))
        return self.interface.with_history(obs) if self._history else obs

    def _randomization_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """``info`` with the episode's drawn values under ``randomization`` (when randomized)."""
        if self._randomizer is not None:
            info["randomization"] = dict(self._randomizer.values)
        return info


def _widened(space: spaces.Space, extra: int) -> spaces.Space:
    """An observation space with ``extra`` values in [-1, 1] after its own (a goal Dict's: after its ``observation``)."""
    if isinstance(space, spaces.Dict):
        return spaces.Dict({**space.spaces, "observation": _widened(space["observation"], extra)})
    return spaces.Box(np.concatenate([space.low, np.full(extra, -1.0, dtype=np.float32)]),
                      np.concatenate([space.high, np.full(extra, 1.0, dtype=np.float32)]), dtype=np.float32)
