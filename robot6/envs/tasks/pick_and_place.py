"""Robot6PickAndPlace-v0: grasp a 4 cm cube with the xArm6's gripper, lift it and place it at a goal, on the
ground or up to 20 cm above it (the panda-gym / Fetch PickAndPlace convention).

As Robot6Push-v0 (``robot6.envs.tasks.push``), plus a fourth action component that opens and closes the gripper, and
the finger command and the finger width in the observation. The gripper's follower joints are tied to their
leader by gear constraints (``GripperArm.tie_gripper``), so the fingers keep their relation when they squeeze.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from robot6.envs.interface import TcpGripperInterface
from robot6.envs.tasks.push import (
    CUBE_HALF,
    OBS_DIM,
    REGION_HIGH,
    REGION_LOW,
    SUCCESS_DISTANCE,
    TIP_ACTION_SCALE,
    Robot6PushEnv,
    cube_goal_space,
)
from robot6.envs.urdf import UrdfError

# Grasping: more solver iterations than pushing, high friction on the finger pads and the cube, and a firm
# grip (measured with scripted_pick: 20 iterations, friction 3 and 100 N*m carried 11 of 12 cubes to goals in
# the air; 10 iterations, friction 2 and 50 N*m, 4 of 8).
PICK_SOLVER_ITERATIONS = 20
FRICTION = 3.0
GRIP_FORCE = 100.0
# The fingertips may rise high enough to hold the cube at the highest goal.
PICK_TIP_LOW = np.array([0.20, -0.30, 0.015])
PICK_TIP_HIGH = np.array([0.70, 0.30, 0.26])
PICK_TIP_START = (0.45, 0.0, 0.10)
GOAL_MAX_HEIGHT = 0.20  # m above the cube resting on the ground
GROUND_GOALS = 0.3  # the share of goals on the ground
PICK_OBS_DIM = OBS_DIM + 2  # the finger command (rad) and the finger width (m)


class Robot6PickAndPlaceEnv(Robot6PushEnv):
    """Pick a cube up and place it at a goal.

    Observation: ``observation`` (float32, 26): Push's 24 (fingertip position and velocity, cube position,
    orientation, velocities, position relative to the fingertips), the finger command (rad, 0 open to 0.85
    closed) and the finger width (m, 0.082 open); ``achieved_goal`` the cube's position, ``desired_goal`` the
    goal: on the ground for ``GROUND_GOALS`` of the episodes, else up to ``GOAL_MAX_HEIGHT`` above it.
    Action: ``Box(-1, 1, (4,))``: the fingertips' target moves by up to ``TIP_ACTION_SCALE`` m per axis (clipped to
    ``PICK_TIP_LOW``/``PICK_TIP_HIGH``), and the fourth component sets the gripper: -1 open, +1 closed (linearly between).
    Reward ``-(distance > 0.05)`` (``dense=True``: ``-distance``); success within 5 cm; 50 steps.
    The episode starts with the gripper open above the square, and every reset restores a snapshot (exact resume).
    ``reset(options={"cube": xy, "goal": xyz})`` places them instead of sampling.
    """

    CAMERA = {"target": [0.42, 0.0, 0.10], "distance": 0.6, "yaw": 50, "pitch": -20}
    TIP_BOUNDS = (PICK_TIP_LOW, PICK_TIP_HIGH)
    REACH_HEIGHTS = (PICK_TIP_LOW[2], CUBE_HALF + GOAL_MAX_HEIGHT)
    RANDOMIZABLE = (*Robot6PushEnv.RANDOMIZABLE, "obs_finger_width")
    INTERFACE = TcpGripperInterface

    def __init__(self, render_mode: str | None = None, dense: bool = False, width: int = 480, height: int = 360,
                 urdf: str | None = None, card: str | None = None, randomize: dict | None = None, action_history: int = 0):
        super().__init__(render_mode, dense, width, height, urdf, card, randomize, action_history)
        sim, robot = self._sim, self.robot
        if self._custom_arm and not robot.min_width < 2 * CUBE_HALF < robot.max_width:
            self.close()
            raise UrdfError(f"--urdf {self._urdf.given}: its fingers open to {robot.max_width * 1000:.0f} mm and close to "
                            f"{robot.min_width * 1000:.0f} mm; the cube is {2 * CUBE_HALF * 1000:.0f} mm wide, so they "
                            "cannot grasp it (the card's fingers and finger_links choose which joints and links count)")
        sim.setPhysicsEngineParameter(numSolverIterations=PICK_SOLVER_ITERATIONS)
        robot.set_finger_friction(FRICTION)
        sim.changeDynamics(self._cube, -1, lateralFriction=FRICTION)
        robot.tie_gripper(GRIP_FORCE)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.observation_space = cube_goal_space(PICK_OBS_DIM)
        # The start pose: fingertips at PICK_TIP_START, gripper open; the snapshot every reset restores.
        robot.place_tcp(PICK_TIP_START, 0.0, start=self._start_q)
        self._start_q = [s[0] for s in robot.joint_states()]
        self._initial_state = sim.saveState()
        self._finger = robot.open_command
        self._set_interface(self.INTERFACE)

    def _start_robot(self) -> None:
        """The robot at the start pose, gripper open, its followers free of the last episode's constraints."""
        self.robot.free_followers()
        self.robot.drive(self._start_q)
        self._finger = self.robot.grip(0.0)

    @staticmethod
    def _goal_at(given) -> np.ndarray:
        """The goal for ``reset(options={"goal": xyz})``."""
        return np.asarray(given, dtype=np.float64).reshape(3)

    def _draw_goal(self, cube: np.ndarray) -> np.ndarray:
        """On the ground for ``GROUND_GOALS`` of the episodes, else up to ``GOAL_MAX_HEIGHT`` above it; never
        within ``SUCCESS_DISTANCE`` of the cube."""
        while True:
            xy = self.np_random.uniform(REGION_LOW, REGION_HIGH)
            lift = 0.0 if self.np_random.uniform() < GROUND_GOALS else self.np_random.uniform(0.0, GOAL_MAX_HEIGHT)
            goal = np.array([xy[0], xy[1], CUBE_HALF + lift])
            if np.linalg.norm(goal - np.array([*cube, CUBE_HALF])) > SUCCESS_DISTANCE:
                return goal

    def _command(self, a: np.ndarray) -> tuple:
        """Push's fingertip target, and the gripper closed by the fraction ``(a[3] + 1) / 2``; the finger command
        the observation shows is the latest one commanded."""
        closed = (a[3] + 1.0) / 2.0
        self._finger = self.robot.finger_command(closed)
        return (*super()._command(a), closed)

    def _apply(self, command: tuple) -> None:
        super()._apply(command)
        self.robot.grip(command[1])

    def deployment_spec(self) -> dict:
        """Push's, and the finger joint's open and closed commands (``robot6.envs.interface.TcpGripperInterface``)."""
        return {**super().deployment_spec(), "open_command": self.robot.open_command, "closed_command": self.robot.closed_command}

    def read_fields(self) -> dict[str, np.ndarray]:
        """Push's readings, the finger width, and the finger command last sent (``finger_command``, the env's own)."""
        return {**super().read_fields(), "finger_width": np.array([self.robot.finger_width()]),
                "finger_command": np.array([self._finger])}

    def apply_command(self, command: dict[str, np.ndarray]) -> None:
        """Send an ``interface`` command to the motors: ``tcp_target`` and ``gripper`` (0 open to 1 closed)."""
        self._finger = float(command["finger_target"][0])
        self._apply((np.asarray(command["tcp_target"], dtype=np.float64), float(command["gripper"][0])))

    def demonstration(self) -> np.ndarray:
        """The scripted controller's action in the current state (``scripted_pick``): what ``--demos`` plays."""
        return scripted_pick(self._obs, self.robot.open_command, self.robot.closed_command)

    def _observe(self) -> tuple[dict[str, np.ndarray], float]:
        obs, distance = super()._observe()
        finger = getattr(self, "_finger", self.robot.open_command)
        obs["observation"] = np.concatenate([obs["observation"], np.array([finger, self.robot.finger_width()], dtype=np.float32)])
        self._obs = obs
        return obs, distance


def scripted_pick(obs: dict[str, np.ndarray], open_command: float = 0.0, closed_command: float = 0.85) -> np.ndarray:
    """A hand-written policy for Robot6PickAndPlace: above the cube with the gripper open, down, close, then
    carry the cube to the goal. The finger command in the observation is its memory of having closed (the gripper's
    ``open_command`` and ``closed_command``: its first finger joint's targets, rad or m). It shows that the gripper
    holds the cube, and it is a source of demonstrations."""
    o, goal = obs["observation"], obs["desired_goal"]
    closed = (o[OBS_DIM] - open_command) / (closed_command - open_command) > 0.5
    tip, cube, width = o[:3], o[6:9], o[OBS_DIM + 1]
    offset = cube - tip
    between = np.linalg.norm(offset[:2]) < 0.02 and -0.04 < offset[2] < 0.035  # the cube between the pads
    # The grip has closed on it (not on nothing); it may slide a little along the pads while carried.
    held = closed and 0.01 < width < 0.045 and np.linalg.norm(offset) < 0.05
    if held:
        # Held: carry it (where it hangs in the grip) to the goal, lifted clear of the ground on the way.
        target, close = goal - offset, 1.0
        if np.linalg.norm(cube[:2] - goal[:2]) > 0.02:
            target[2] = max(target[2], 0.08)
            if tip[2] < 0.06:
                target[:2] = tip[:2]  # up first, then across
    elif between and tip[2] < PICK_TIP_LOW[2] + 0.005:
        target, close = tip, 1.0  # around it: close
    elif np.linalg.norm(offset[:2]) > 0.01:
        target, close = np.array([cube[0], cube[1], max(tip[2], 0.08)]), -1.0  # above it, open
    else:
        target, close = np.array([cube[0], cube[1], PICK_TIP_LOW[2]]), -1.0  # down around it
    move = np.clip((target - tip) / TIP_ACTION_SCALE, -1.0, 1.0)
    return np.array([*move, close], dtype=np.float32)
