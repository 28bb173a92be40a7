"""Robot6Reach-v0: bring the flange of a bare xArm6 to a random goal, or the end effector of any arm from a URDF to a
goal it can reach (both through ``robot6.envs.arm.UrdfArm``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from robot6.envs.arm import (
    ARM_JOINTS,
    ARM_URDF,
    FLANGE_LINK,
    JOINT_HIGH,
    JOINT_LOW,
    NEUTRAL_Q,
    PHYSICS_HZ,
    SUBSTEPS,
    UrdfArm,
    connect,
)
from robot6.envs.interface import JointTargetInterface
from robot6.envs.tasks.base import ArmTaskEnv
from robot6.envs.urdf import UrdfError, read_urdf

# Maximum change of each joint-position target per env step, per unit of action (rad).
JOINT_ACTION_SCALE = 0.05
# Goals are drawn uniformly in this box (m, world frame); every point in it is reachable by IK.
GOAL_LOW = np.array([0.25, -0.30, 0.10])
GOAL_HIGH = np.array([0.55, 0.30, 0.45])
SUCCESS_DISTANCE = 0.05  # m
# Where the xArm6's observation holds the flange position (the achieved goal) and the goal (the desired goal);
# an arm of n joints has them at 2n..2n+3 and 2n+3..2n+6.
ACHIEVED_GOAL = slice(12, 15)
DESIRED_GOAL = slice(15, 18)
# An arm from a URDF: goals are the end effector's position in random joint configurations, each revolute
# joint at most GOAL_SPAN rad from the neutral pose (an episode moves a joint up to 2.5 rad) and prismatic
# ones anywhere in range, kept when the arm touches neither itself nor the ground and the end effector is
# at least GOAL_MIN_HEIGHT above the ground (and inside the workspace box, if given).
GOAL_SPAN = 1.0
GOAL_MIN_HEIGHT = 0.05  # m
PRISMATIC_ACTION_SCALE = 0.01  # m per env step and unit of action
GOAL_TRIES = 10_000  # random configurations tried per goal before the workspace is declared unreachable


class Robot6ReachEnv(ArmTaskEnv):
    """Reach a random goal with the flange of an xArm6 (6 revolute joints), or with the end effector of the arm
    of ``urdf`` (any arm of 2 to 7 movable joints, ``robot6.envs.arm.UrdfArm``), PyBullet physics.

    Observation (float32, 2n + 6 for n arm joints; 18 for the xArm6): joint positions (n, rad or m), joint
    velocities (n), end-effector position (3, m), goal position (3, m). Action: ``Box(-1, 1, (n,))``; each
    component moves its joint's position target by up to ``action_scale`` (``JOINT_ACTION_SCALE`` rad, or less where
    the URDF's velocity limit is lower; ``PRISMATIC_ACTION_SCALE`` m for a prismatic joint), clipped to the
    joint limits (the xArm6's ``JOINT_LOW``/``JOINT_HIGH``), tracked by PyBullet's position controller at the
    URDF forces for ``SUBSTEPS`` physics steps.
    Goals: the xArm6's are uniform in the box ``GOAL_LOW``-``GOAL_HIGH``; a URDF arm's are forward kinematics
    of random joint configurations near its neutral pose (see ``GOAL_SPAN``), optionally inside ``workspace``
    (x_min, y_min, z_min, x_max, y_max, z_max in m), so that every goal is reachable by construction.
    Reward: ``-distance(ee, goal)`` (also ``info["distance"]``), computed by ``compute_reward`` so that
    hindsight relabelling (``robot6/learn/her.py``) can recompute it for another goal; the observation's achieved and
    desired goal are ``obs[achieved_goal_slice]`` and ``obs[desired_goal_slice]``. ``info["is_success"]`` is
    true while the distance is below ``SUCCESS_DISTANCE``. ``action_history`` k > 0: the observation ends with the
    last k actions (oldest first, zeros at the start; k * n values more). The episode never terminates on its own;
    ``gymnasium.make`` wraps it in a ``TimeLimit`` of 50 steps.

    Each instance owns one PyBullet client (``DIRECT`` unless ``render_mode="human"``), closed by ``close()``.
    ``reset(options={"goal": xyz})`` places the goal instead of sampling it. ``UrdfError`` (a ``ValueError``
    with a one-line message) for a URDF or an option it cannot use.

    ``randomize``: domain randomization within these ranges (``robot6.envs.randomize``; the factors in
    ``RANDOMIZABLE``), drawn at every reset; the values are in ``info["randomization"]``. ``interface`` is what
    the policy reads and commands in the robot's terms (``robot6.envs.interface``), ``read_fields`` the sensor
    readings of the current state, ``apply_command``/``advance``/``score`` one control step driven by commands
    rather than actions (the deployment dry run).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": PHYSICS_HZ // SUBSTEPS}
    CAMERA = {"target": [0.3, 0.0, 0.2]}
    achieved_goal_slice = ACHIEVED_GOAL
    desired_goal_slice = DESIRED_GOAL
    RANDOMIZABLE = ("joint_damping", "motor_force", "latency", "action_noise", "obs_joint_position", "obs_joint_velocity",
                    "obs_tcp")

    def __init__(self, render_mode: str | None = None, width: int = 480, height: int = 360, urdf: str | None = None,
                 ee_link: str | None = None, workspace: list[float] | None = None, randomize: dict | None = None,
                 action_history: int = 0):
        self._set_render_mode(render_mode, width, height)
        self._init_randomization(randomize, action_history)
        if urdf is None and (ee_link is not None or workspace is not None):
            raise UrdfError("--ee-link and --workspace choose the end effector and the goals of an arm given by --urdf")
        self._workspace = _check_workspace(workspace)
        self._urdf = read_urdf(urdf) if urdf is not None else None
        self._sim = sim = connect(render_mode)
        self._plane = sim.loadURDF("plane.urdf")
        try:
            goal_low, goal_high = self._load_xarm6() if self._urdf is None else self._load_urdf_arm(ee_link)
        except BaseException:
            self.close()
            raise
        n = len(self.robot.joints)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        # Loose but finite bounds: the tracked joints may overshoot their clipped targets a little, and the end
        # effector stays within the arm's reach of its base.
        self.observation_space = spaces.Box(
            low=np.concatenate([self._low - 0.2, -self._speed, np.full(3, -self._reach), goal_low]).astype(np.float32),
            high=np.concatenate([self._high + 0.2, self._speed, np.full(3, self._reach), goal_high]).astype(np.float32),
            dtype=np.float32,
        )
        self.achieved_goal_slice = slice(2 * n, 2 * n + 3)
        self.desired_goal_slice = slice(2 * n + 3, 2 * n + 6)
        self._joint_low, self._joint_high = self._low.tolist(), self._high.tolist()  # for step's Python loop
        # The goal marker is the success region: the end effector inside the sphere counts as success.
        marker = sim.createVisualShape(sim.GEOM_SPHERE, radius=SUCCESS_DISTANCE, rgbaColor=[0.0, 0.9, 0.9, 0.6])
        self._goal_marker = sim.createMultiBody(baseMass=0.0, baseVisualShapeIndex=marker, basePosition=goal_low.tolist())
        self.robot.reset_pose(self._neutral)
        # A snapshot of the whole simulation (contact caches included) taken once: every reset restores it,
        # so an episode is bit-identical whatever ran before it in this client (exact resume needs this).
        self._initial_state = sim.saveState()
        self._step_simulation = self.robot.step_simulation
        self._drive = self.robot.drive
        self._target = self._neutral.tolist()
        self._goal = (goal_low + goal_high) / 2
        self._arm: dict[str, Any] | None = None
        self._set_interface(JointTargetInterface)

    def _load_xarm6(self) -> tuple[np.ndarray, np.ndarray]:
        """The bare xArm6 and its goal box."""
        self.robot = UrdfArm(self._sim, self._plane, read_urdf(ARM_URDF))
        self._ee, self._neutral = FLANGE_LINK, NEUTRAL_Q
        self._low, self._high = JOINT_LOW, JOINT_HIGH
        self.action_scale = [JOINT_ACTION_SCALE] * len(ARM_JOINTS)
        # Targets move at most JOINT_ACTION_SCALE * 24 Hz = 1.2 rad/s; the arm (0.7 m long) cannot leave a 2 m cube.
        self._speed, self._reach = np.full(6, 2 * np.pi), 2.0
        return GOAL_LOW, GOAL_HIGH

    def _load_urdf_arm(self, ee_link: str | None) -> tuple[np.ndarray, np.ndarray]:
        """The arm of the URDF, its action scales, and the bounds of its goals."""
        self.robot = robot = UrdfArm(self._sim, self._plane, self._urdf, ee_link)
        self._ee, self._neutral = robot.ee_link, robot.neutral
        self._low, self._high = robot.low, robot.high
        control_hz = PHYSICS_HZ / SUBSTEPS
        self.action_scale = [
            PRISMATIC_ACTION_SCALE if kind == "prismatic" else min(JOINT_ACTION_SCALE, v / control_hz) if v > 0 else JOINT_ACTION_SCALE
            for kind, v in zip(robot.joint_types, robot.velocities.tolist(), strict=True)
        ]
        self._speed = np.maximum(2 * np.pi, 2 * robot.velocities)
        self._reach = robot.reach() + 0.5
        reach = self._reach
        self.CAMERA = {"target": [0.0, 0.0, 0.4 * reach], "distance": max(1.0, 1.5 * reach)}
        span = np.where(np.array(robot.joint_types) == "prismatic", np.inf, GOAL_SPAN)
        self._goal_q_low = np.maximum(robot.low, robot.neutral - span)
        self._goal_q_high = np.minimum(robot.high, robot.neutral + span)
        if self._workspace is not None:
            low, high = self._workspace
            if self._sample_goal(np.random.default_rng(0), tries=GOAL_TRIES // 5) is None:
                raise UrdfError(f"--workspace {' '.join(map(str, [*low, *high]))}: no goal found in it for "
                                f"{self._urdf.given} ({GOAL_TRIES // 5} random joint configurations tried)")
            return low, high
        return np.array([-reach, -reach, GOAL_MIN_HEIGHT]), np.full(3, reach)

    def _sample_goal(self, rng: np.random.Generator, tries: int = GOAL_TRIES) -> np.ndarray | None:
        """The end effector's position in a random joint configuration that passes the checks of ``GOAL_SPAN``'s
        comment, or None after ``tries`` configurations. Moves the joints: restore the snapshot after it."""
        for _ in range(tries):
            self.robot.reset_pose(rng.uniform(self._goal_q_low, self._goal_q_high))
            ee = np.array(self.robot.link_position(self._ee))
            if ee[2] < GOAL_MIN_HEIGHT:
                continue
            if self._workspace is not None and not (np.all(ee >= self._workspace[0]) and np.all(ee <= self._workspace[1])):
                continue
            if not self.robot.in_collision():
                return ee
        return None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and options.get("goal") is not None:
            self._goal = np.asarray(options["goal"], dtype=np.float64).reshape(3)
        elif self._urdf is None:
            self._goal = self.np_random.uniform(GOAL_LOW, GOAL_HIGH)
        else:
            goal = self._sample_goal(self.np_random)
            if goal is None:
                raise RuntimeError(f"no reachable goal found in {GOAL_TRIES} random joint configurations")
            self._goal = goal
        self._sim.restoreState(self._initial_state)
        self._new_episode()
        self._target = self._neutral.tolist()
        self._drive(self._target)
        self._sim.resetBasePositionAndOrientation(self._goal_marker, self._goal.tolist(), [0, 0, 0, 1])
        obs, distance = self._observe()
        info = self._randomization_info({"distance": distance, "is_success": bool(distance < SUCCESS_DISTANCE)})
        return self._policy_observation(obs), info

    def step(self, action):
        if self._randomizer is not None or self._history:
            return self._step_shifted(action)
        self._drive(self._command(np.asarray(action, dtype=np.float64).reshape(len(self._target)).tolist()))
        for _ in range(SUBSTEPS):
            self._step_simulation()
        obs, distance = self._observe()
        info = {"distance": distance, "is_success": distance < SUCCESS_DISTANCE}
        reward = self._reward(obs)
        if self.render_mode == "human":
            self.render()
        # terminated is always False: reaching is a holding task; the TimeLimit wrapper owns truncation.
        return obs, reward, False, False, info

    def _step_shifted(self, action):
        """``step`` under randomization (action noise, the command delivered late, noisy readings) or with an
        action history in the observation."""
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64).reshape(len(self._target))), -1.0, 1.0)
        due = self._deliver(self._command(self._noisy_action(a).tolist()))
        if due is not None:
            self._drive(due)
        self.advance()
        obs, reward, info = self.score()
        if self.render_mode == "human":
            self.render()
        return self._policy_observation(obs), reward, False, False, self._randomization_info(info)

    def _command(self, a: list[float]) -> list[float]:
        """The joint targets for the action ``a`` (``interface.command``'s arithmetic). n floats in Python rather
        than numpy: after a physics step each numpy call runs cold (~2-5 us), and the same IEEE operations in the
        same order give the same bits (NaN propagates as with np.clip)."""
        self._target = [
            min(max(t + s * min(max(x, -1.0), 1.0), low), high)
            for t, s, x, low, high in zip(self._target, self.action_scale, a, self._joint_low, self._joint_high)
        ]
        return self._target

    def _reward(self, obs: np.ndarray) -> float:
        """compute_reward(achieved, desired) for one observation, bit for bit: numpy's sum of the three squares
        runs in this order."""
        o = obs.tolist()
        d0, d1, d2 = (x - y for x, y in zip(o[self.achieved_goal_slice], o[self.desired_goal_slice], strict=True))
        return -math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)

    def deployment_spec(self) -> dict[str, Any]:
        """What a deployed policy needs to turn readings into observations and actions into joint targets
        (``robot6.envs.interface.JointTargetInterface``): joint names, units, limits, ``action_scale``, control rate."""
        kinds = list(getattr(self.robot, "joint_types", ["revolute"] * len(self.robot.joints)))
        return {"joints": [self._sim.getJointInfo(self.robot.id, j)[1].decode() for j in self.robot.joints],
                "joint_units": ["m" if k == "prismatic" else "rad" for k in kinds],
                "lower": self._low.tolist(), "upper": self._high.tolist(), "action_scale": list(self.action_scale),
                "control_hz": PHYSICS_HZ / SUBSTEPS}

    def read_fields(self) -> dict[str, np.ndarray]:
        """The sensor readings of the current state, by ``interface`` field name, in SI units."""
        states = self.robot.joint_states()
        return {"joint_position": np.array([s[0] for s in states]), "joint_velocity": np.array([s[1] for s in states]),
                "tcp": np.array(self.robot.link_position(self._ee)), "goal": self._goal.copy()}

    def apply_command(self, command: dict[str, np.ndarray]) -> None:
        """Send an ``interface`` command to the motors: ``joint_targets``."""
        self._target = [float(x) for x in command["joint_targets"]]
        self._drive(self._target)

    def advance(self) -> None:
        """One control step of physics."""
        for _ in range(SUBSTEPS):
            self._step_simulation()

    def score(self) -> tuple[np.ndarray, float, dict[str, Any]]:
        """The current state's true observation, reward and info (as ``step`` returns them without noise)."""
        obs, distance = self._observe()
        return obs, self._reward(obs), {"distance": distance, "is_success": distance < SUCCESS_DISTANCE}

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: dict | None) -> np.ndarray:
        """-distance between end-effector positions and goals, (..., 3) -> (...); the gymnasium-robotics signature."""
        diff = np.asarray(achieved_goal, dtype=np.float64) - np.asarray(desired_goal, dtype=np.float64)
        return -np.linalg.norm(diff, axis=-1)

    @property
    def arm(self) -> dict[str, Any]:
        """What a policy's actions mean on this arm, for checkpoints and exported policies: the URDF (as given,
        its robot name and ``sha256``), the end-effector link, and per arm joint (in action order) its name,
        type, limits (rad or m) and ``action_scale`` (the largest target change per step and unit of action),
        at ``control_hz`` steps per second."""
        if self._arm is None:
            urdf = self.robot.urdf  # the file the arm was loaded from, read once
            self._arm = {
                "urdf": urdf.given, "name": urdf.name, "sha256": urdf.sha256,
                "ee_link": self._sim.getJointInfo(self.robot.id, self._ee)[12].decode(),
                "joints": [self._sim.getJointInfo(self.robot.id, j)[1].decode() for j in self.robot.joints],
                "joint_types": list(getattr(self.robot, "joint_types", ["revolute"] * len(self.robot.joints))),
                "lower": self._low.tolist(), "upper": self._high.tolist(), "action_scale": list(self.action_scale),
                "control_hz": PHYSICS_HZ / SUBSTEPS,
            }
        return dict(self._arm)

    def _observe(self) -> tuple[np.ndarray, float]:
        states = self.robot.joint_states()
        ee = self.robot.link_position(self._ee)
        goal = self._goal
        obs = np.array([*(s[0] for s in states), *(s[1] for s in states), *ee, *goal], dtype=np.float32)
        diff = np.subtract(ee, goal)
        return obs, math.sqrt(diff @ diff)  # float(np.linalg.norm(ee - goal)), bit for bit


def _check_workspace(workspace: list[float] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) of a ``--workspace`` box given as x_min y_min z_min x_max y_max z_max; ``UrdfError`` if bad."""
    if workspace is None:
        return None
    box = np.asarray(workspace, dtype=np.float64).ravel()
    if box.shape != (6,) or not np.all(np.isfinite(box)) or not np.all(box[:3] < box[3:]):
        raise UrdfError(f"--workspace needs six numbers x_min y_min z_min x_max y_max z_max with each min < max, got "
                        f"{' '.join(map(str, np.asarray(workspace).ravel().tolist()))}")
    return box[:3], box[3:]
