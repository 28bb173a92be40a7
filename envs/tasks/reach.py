"""Robot6Reach-v0: bring the flange of a bare xArm6 (``envs.robot.XArm6``) to a random goal."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.robot import FLANGE_LINK, JOINT_HIGH, JOINT_LOW, NEUTRAL_Q, PHYSICS_HZ, SUBSTEPS, XArm6, connect
from envs.tasks.base import ArmTaskEnv

EE_LINK = FLANGE_LINK
_JOINT_LOW, _JOINT_HIGH = JOINT_LOW.tolist(), JOINT_HIGH.tolist()  # for step's Python loop
# Maximum change of each joint-position target per env step, per unit of action (rad).
ACTION_SCALE = 0.05
# Goals are drawn uniformly in this box (m, world frame); every point in it is reachable by IK.
GOAL_LOW = np.array([0.25, -0.30, 0.10])
GOAL_HIGH = np.array([0.55, 0.30, 0.45])
SUCCESS_DISTANCE = 0.05  # m
MAX_EPISODE_STEPS = 50
# Where the observation holds the flange position (the achieved goal) and the goal (the desired goal).
ACHIEVED_GOAL = slice(12, 15)
DESIRED_GOAL = slice(15, 18)


class Robot6ReachEnv(ArmTaskEnv):
    """Reach a random goal with the flange of an xArm6 (6 revolute joints), PyBullet physics.

    Observation (float32, 18): joint positions (6, rad), joint velocities (6, rad/s), end-effector position
    (3, m), goal position (3, m). Action: ``Box(-1, 1, (6,))``; each component moves its joint's position
    target by up to ``ACTION_SCALE`` rad, clipped to ``JOINT_LOW``/``JOINT_HIGH``, tracked by PyBullet's
    position controller at the URDF forces for ``SUBSTEPS`` physics steps.
    Reward: ``-distance(ee, goal)`` (also ``info["distance"]``), computed by ``compute_reward`` so that
    hindsight relabelling (``sac/her.py``) can recompute it for another goal; the observation's achieved and
    desired goal are ``obs[ACHIEVED_GOAL]`` and ``obs[DESIRED_GOAL]``. ``info["is_success"]`` is true while
    the distance is below ``SUCCESS_DISTANCE``. The episode never terminates on its own;
    ``gymnasium.make`` wraps it in a ``TimeLimit`` of 50 steps.

    Each instance owns one PyBullet client (``DIRECT`` unless ``render_mode="human"``), closed by ``close()``.
    ``reset(options={"goal": xyz})`` places the goal instead of sampling it.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": PHYSICS_HZ // SUBSTEPS}
    CAMERA = {"target": [0.3, 0.0, 0.2]}
    achieved_goal_slice = ACHIEVED_GOAL
    desired_goal_slice = DESIRED_GOAL

    def __init__(self, render_mode: str | None = None, width: int = 480, height: int = 360):
        self._set_render_mode(render_mode, width, height)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)
        # Loose but finite bounds: the tracked joints may overshoot their clipped targets a little, targets
        # move at most ACTION_SCALE * 24 Hz = 1.2 rad/s, and the arm (0.7 m long) cannot leave a 2 m cube.
        speed = np.full(6, 2 * np.pi)
        reach = np.full(3, 2.0)
        self.observation_space = spaces.Box(
            low=np.concatenate([JOINT_LOW - 0.2, -speed, -reach, GOAL_LOW]).astype(np.float32),
            high=np.concatenate([JOINT_HIGH + 0.2, speed, reach, GOAL_HIGH]).astype(np.float32),
            dtype=np.float32,
        )

        self._sim = sim = connect(render_mode)
        self._plane = sim.loadURDF("plane.urdf")
        self.robot = robot = XArm6(sim, self._plane)
        # The goal marker is the success region: the flange inside the sphere counts as success.
        marker = sim.createVisualShape(sim.GEOM_SPHERE, radius=SUCCESS_DISTANCE, rgbaColor=[0.0, 0.9, 0.9, 0.6])
        self._goal_marker = sim.createMultiBody(baseMass=0.0, baseVisualShapeIndex=marker, basePosition=GOAL_LOW.tolist())
        robot.reset_pose(NEUTRAL_Q)
        # A snapshot of the whole simulation (contact caches included) taken once: every reset restores it,
        # so an episode is bit-identical whatever ran before it in this client (exact resume needs this).
        self._initial_state = sim.saveState()
        self._step_simulation = robot.step_simulation
        self._drive = robot.drive
        self._target = NEUTRAL_Q.tolist()
        self._goal = (GOAL_LOW + GOAL_HIGH) / 2

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._sim.restoreState(self._initial_state)
        self._target = NEUTRAL_Q.tolist()
        self._drive(self._target)
        if options and options.get("goal") is not None:
            self._goal = np.asarray(options["goal"], dtype=np.float64).reshape(3)
        else:
            self._goal = self.np_random.uniform(GOAL_LOW, GOAL_HIGH)
        self._sim.resetBasePositionAndOrientation(self._goal_marker, self._goal.tolist(), [0, 0, 0, 1])
        obs, distance = self._observe()
        return obs, {"distance": distance, "is_success": bool(distance < SUCCESS_DISTANCE)}

    def step(self, action):
        # Six floats in Python rather than numpy: after a physics step each numpy call runs cold (~2-5 us), and
        # the same IEEE operations in the same order give the same bits (NaN propagates as with np.clip).
        a = np.asarray(action, dtype=np.float64).reshape(6).tolist()
        self._target = target = [
            min(max(t + ACTION_SCALE * min(max(x, -1.0), 1.0), low), high)
            for t, x, low, high in zip(self._target, a, _JOINT_LOW, _JOINT_HIGH)
        ]
        self._drive(target)
        for _ in range(SUBSTEPS):
            self._step_simulation()
        obs, distance = self._observe()
        info = {"distance": distance, "is_success": distance < SUCCESS_DISTANCE}
        # compute_reward(obs[ACHIEVED_GOAL], obs[DESIRED_GOAL]) for one observation, bit for bit: numpy's sum of
        # the three squares runs in this order.
        o = obs.tolist()
        d0, d1, d2 = (x - y for x, y in zip(o[ACHIEVED_GOAL], o[DESIRED_GOAL], strict=True))
        reward = -math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        if self.render_mode == "human":
            self.render()
        # terminated is always False: reaching is a holding task; the TimeLimit wrapper owns truncation.
        return obs, reward, False, False, info

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: dict | None) -> np.ndarray:
        """-distance between flange positions and goals, (..., 3) -> (...); the gymnasium-robotics signature."""
        diff = np.asarray(achieved_goal, dtype=np.float64) - np.asarray(desired_goal, dtype=np.float64)
        return -np.linalg.norm(diff, axis=-1)

    def _observe(self) -> tuple[np.ndarray, float]:
        states = self.robot.joint_states()
        ee = self.robot.link_position(EE_LINK)
        goal = self._goal
        obs = np.array([*(s[0] for s in states), *(s[1] for s in states), *ee, *goal], dtype=np.float32)
        diff = np.subtract(ee, goal)
        return obs, math.sqrt(diff @ diff)  # float(np.linalg.norm(ee - goal)), bit for bit
