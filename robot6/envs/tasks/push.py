"""Robot6Push-v0: push a 4 cm cube to a goal on the ground with the closed gripper of an xArm6, or of any arm with a
gripper given by its URDF and card (``robot6.envs.arm.GripperArm``, ``robot6.envs.card``).

A goal env in the gymnasium-robotics shape (as panda-gym's PandaPush and Fetch's FetchPush): a Dict
observation ``observation`` / ``achieved_goal`` (the cube's position) / ``desired_goal``, a vectorised
``compute_reward`` for hindsight relabelling, a sparse reward ``-(distance > 0.05)`` (``Robot6PushDense-v0``:
``-distance``) and success within 5 cm. The action moves the fingertips in Cartesian space, through PyBullet's
inverse kinematics with the gripper pointing down.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np
import pybullet
from gymnasium import spaces

from robot6.envs.arm import GRIPPER_URDF, GripperArm, connect
from robot6.envs.card import CARDS, find_card, read_card
from robot6.envs.interface import TcpInterface
from robot6.envs.tasks.base import ArmTaskEnv
from robot6.envs.urdf import UrdfError, read_urdf

# Physics: 120 Hz steps with 10 solver iterations, 5 per action (24 Hz control, as Reach). A 14-link arm
# in contact with a cube costs about three times the bare arm's step at 240 Hz and 50 iterations; at these
# settings a pushed cube ends within a few millimetres of where the finer settings put it.
CUBE_PHYSICS_HZ = 120
CUBE_SUBSTEPS = 5
CUBE_SOLVER_ITERATIONS = 10
TIP_ACTION_SCALE = 0.05  # m of fingertip displacement per step per axis, per unit of action
CUBE_HALF = 0.02  # a 4 cm cube
CUBE_MASS = 0.1  # kg
# Cube and goal are drawn in this square on the ground (m); the fingertips stay in the box below.
REGION_LOW = np.array([0.30, -0.15])
REGION_HIGH = np.array([0.60, 0.15])
# The fingertips stay in this box (m), starting above the middle of the square: low enough that an exploring
# policy touches the cube in about one episode in eight (one in thirty with a ceiling at 0.25 m).
TIP_LOW = np.array([0.20, -0.30, 0.025])
TIP_HIGH = np.array([0.70, 0.30, 0.12])
TIP_START = (0.45, 0.0, 0.06)
SUCCESS_DISTANCE = 0.05  # m
# Fingertip position and velocity, cube position, orientation (the first two columns of its rotation matrix:
# continuous and within [-1, 1], where Euler angles jump by 2 pi), linear velocity, angular velocity per control
# step (rad; in rad/s a knocked cube spins at up to 20, a hundred times the positions' scale), and the cube's
# position relative to the fingertips.
OBS_DIM = 24
CONTROL_PERIOD = CUBE_SUBSTEPS / CUBE_PHYSICS_HZ  # s per env step


def cube_goal_space(obs_dim: int) -> spaces.Dict:
    """The goal Dict of the cube tasks: ``observation`` (``obs_dim`` floats), and the cube's position as
    ``achieved_goal`` and the goal as ``desired_goal``, each within a metre of the square and the ground."""
    big = np.full(obs_dim, 10.0, dtype=np.float32)
    goal_low = np.array([*REGION_LOW - 1.0, -1.0], dtype=np.float32)
    goal_high = np.array([*REGION_HIGH + 1.0, 1.0], dtype=np.float32)
    return spaces.Dict({
        "observation": spaces.Box(-big, big, dtype=np.float32),
        "achieved_goal": spaces.Box(goal_low, goal_high, dtype=np.float32),
        "desired_goal": spaces.Box(goal_low, goal_high, dtype=np.float32),
    })


class Robot6PushEnv(ArmTaskEnv):
    """Push a cube to a goal on the ground; the gripper is held closed.

    Observation: ``observation`` (float32, 24): fingertip position (3, m) and velocity (3, m/s), cube position
    (3), orientation (6: the first two columns of its rotation matrix), linear velocity (3, m/s), angular
    velocity per control step (3, rad: rad/s times ``CONTROL_PERIOD``) and position relative to the fingertips (3);
    ``achieved_goal``: the cube's position (3); ``desired_goal``: the goal (3, on the ground at the cube's
    height). Action: ``Box(-1, 1, (3,))``: the fingertips' target moves by up to ``TIP_ACTION_SCALE`` m per axis
    from where they are, clipped to ``TIP_LOW``/``TIP_HIGH`` (above the ground), reached through inverse
    kinematics of the gripper base pointing down and position control for ``CUBE_SUBSTEPS`` physics steps.
    Reward: ``-(distance(cube, goal) > SUCCESS_DISTANCE)`` (``dense=True``: ``-distance``);
    ``info["is_success"]`` while the cube is within ``SUCCESS_DISTANCE`` of the goal. Cube and goal are drawn
    uniformly in the ``REGION_LOW``-``REGION_HIGH`` square, the goal never within ``SUCCESS_DISTANCE`` of the
    cube. The episode never terminates on its own; ``gymnasium.make`` wraps it in a ``TimeLimit`` of 50 steps.

    Every reset restores a snapshot of the simulation taken once, so an episode depends only on the seed
    stream (exact resume). ``reset(options={"cube": xy, "goal": xy})`` places them instead of sampling.

    ``urdf`` (and ``card``): another arm with a gripper; "fingertips" then means its TCP. Its card is ``card``,
    else found beside the URDF or built in (``robot6.envs.card.find_card``). The cube region must be reachable
    with the gripper pointing down (checked by inverse kinematics at construction). ``UrdfError`` (one line)
    for an arm or card that cannot be used.

    ``randomize``: domain randomization within these ranges (``robot6.envs.randomize``; the factors in
    ``RANDOMIZABLE``), drawn at every reset, the values in ``info["randomization"]``. ``action_history`` k > 0:
    ``observation`` ends with the last k actions (oldest first, zeros at the start). ``interface``,
    ``read_fields``, ``apply_command``, ``advance`` and ``score``: as ``Robot6ReachEnv``'s (TCP targets).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": CUBE_PHYSICS_HZ // CUBE_SUBSTEPS}
    CAMERA = {"target": [0.45, 0.0, 0.05], "distance": 0.9, "yaw": 60, "pitch": -35}
    TIP_BOUNDS = (TIP_LOW, TIP_HIGH)
    REACH_HEIGHTS = (TIP_LOW[2], 0.08)  # the TCP heights (m) an arm from a URDF must reach over the whole region
    RANDOMIZABLE = ("object_mass", "object_friction", "finger_friction", "ground_friction", "joint_damping", "motor_force",
                    "latency", "action_noise", "obs_tcp", "obs_tcp_velocity", "obs_object_position",
                    "obs_object_orientation", "obs_object_velocity")
    INTERFACE = TcpInterface

    def __init__(self, render_mode: str | None = None, dense: bool = False, width: int = 480, height: int = 360,
                 urdf: str | None = None, card: str | None = None, randomize: dict | None = None, action_history: int = 0):
        self._set_render_mode(render_mode, width, height)
        self._init_randomization(randomize, action_history)
        self.dense = dense
        if urdf is None and card is not None:
            raise UrdfError("--card describes the arm of --urdf PATH; give both")
        # The built-in arm is the xArm6 with its gripper, through the same class and its built-in card.
        self._custom_arm = urdf is not None
        self._urdf = read_urdf(urdf if urdf is not None else GRIPPER_URDF)
        card_path = find_card(self._urdf, card)
        if card_path is None:
            raise UrdfError(f"--urdf {urdf}: no card for this arm: Push and Pick need at least its tcp_link (the link "
                            f"the tool centre point is measured from), in {self._urdf.path.stem}.card.toml beside the "
                            "URDF or named by --card (docs/ARMS.md)")
        self._card = read_card(card_path)
        self._arm: dict[str, Any] | None = None
        if self._custom_arm:  # another arm may be larger than the xArm6: the camera steps back
            self.CAMERA = {**self.CAMERA, "distance": 1.5 * self.CAMERA["distance"]}
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.observation_space = cube_goal_space(OBS_DIM)

        self._sim = sim = connect(render_mode)
        sim.setTimeStep(1.0 / CUBE_PHYSICS_HZ)
        # Sorted broadphase pairs: restoreState leaves PyBullet's pair cache as the episodes before left it, and
        # the solver visits contacts in its order, so without sorting an episode could depend on those before it.
        sim.setPhysicsEngineParameter(numSolverIterations=CUBE_SOLVER_ITERATIONS, deterministicOverlappingPairs=1)
        self._plane = plane = sim.loadURDF("plane.urdf")
        try:
            self.robot = robot = GripperArm(sim, plane, self._urdf, self._card)
            if self._custom_arm:
                self._check_arm(robot)
        except BaseException:
            self.close()
            raise
        box = sim.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[CUBE_HALF] * 3)
        look = sim.createVisualShape(pybullet.GEOM_BOX, halfExtents=[CUBE_HALF] * 3, rgbaColor=[0.9, 0.5, 0.1, 1.0])
        self._cube = sim.createMultiBody(baseMass=CUBE_MASS, baseCollisionShapeIndex=box, baseVisualShapeIndex=look,
                                         basePosition=[*REGION_LOW, CUBE_HALF])
        marker = sim.createVisualShape(pybullet.GEOM_BOX, halfExtents=[CUBE_HALF] * 3, rgbaColor=[0.1, 0.8, 0.2, 0.4])
        self._goal_marker = sim.createMultiBody(baseMass=0.0, baseVisualShapeIndex=marker, basePosition=[*REGION_HIGH, CUBE_HALF])
        # The start pose: the fingertips at TIP_START, found once by inverse kinematics from the arm's home pose.
        robot.place_tcp(TIP_START, 1.0)
        self._start_q = [s[0] for s in robot.joint_states()]
        self._initial_state = sim.saveState()
        client = {"physicsClientId": sim._client}
        self._cube_pose = functools.partial(pybullet.getBasePositionAndOrientation, self._cube, **client)
        self._cube_velocity = functools.partial(pybullet.getBaseVelocity, self._cube, **client)
        self._matrix = functools.partial(pybullet.getMatrixFromQuaternion, **client)
        self._goal = np.array([*REGION_HIGH, CUBE_HALF])
        self._obs: dict[str, np.ndarray] | None = None
        self._set_interface(self.INTERFACE)

    def _check_arm(self, robot: GripperArm) -> None:
        """``UrdfError`` naming the points of the cube region (its corners and middle, at ``REACH_HEIGHTS``) that
        the arm's TCP cannot reach pointing down."""
        (x0, y0), (x1, y1) = REGION_LOW, REGION_HIGH
        corners = [(x0, y0), (x0, y1), (x1, y0), (x1, y1), ((x0 + x1) / 2, (y0 + y1) / 2)]
        missed = robot.unreachable([(x, y, z) for z in self.REACH_HEIGHTS for x, y in corners])
        if missed:
            points = ", ".join(f"({x:.3g}, {y:.3g}, {z:.3g})" for x, y, z in missed)
            raise UrdfError(f"--urdf {self._urdf.given}: its TCP ({self._card.tcp_link} + {self._card.tcp_depth} m) cannot "
                            f"reach, pointing down, within 1 cm: {points} (the cube region is x {x0:g}..{x1:g}, y {y0:g}.."
                            f"{y1:g} m from the arm's base; the card's home and tcp_depth, or the URDF's limits, decide)")

    def _restore_snapshot(self) -> None:
        """The simulation as at construction, whatever ran before: the cube's contacts from the last episode are
        dropped first (restoreState keeps contact manifolds that its snapshot does not hold), then the snapshot."""
        self._sim.resetBasePositionAndOrientation(self._cube, [0.0, 0.0, 50.0], [0, 0, 0, 1])
        self._sim.performCollisionDetection()
        self._sim.restoreState(self._initial_state)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        self._restore_snapshot()
        self._new_episode()
        self._start_robot()
        cube = np.asarray(options["cube"], dtype=np.float64) if options.get("cube") is not None else self.np_random.uniform(REGION_LOW, REGION_HIGH)
        self._goal = self._goal_at(options["goal"]) if options.get("goal") is not None else self._draw_goal(cube)
        self._sim.resetBasePositionAndOrientation(self._cube, [cube[0], cube[1], CUBE_HALF], [0, 0, 0, 1])
        self._sim.resetBasePositionAndOrientation(self._goal_marker, self._goal.tolist(), [0, 0, 0, 1])
        obs, distance = self._observe()
        return self._observe_noisy(obs), self._randomization_info(self._info(distance))

    def _observe_noisy(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation the policy gets (noisy under randomization, with the action history if any), kept for
        the next action's TCP target."""
        self._obs = obs = self._policy_observation(obs)
        return obs

    def _start_robot(self) -> None:
        """The robot at the start pose, gripper closed (the snapshot holds the pose; the motors need targets)."""
        self.robot.drive(self._start_q)
        self.robot.grip(1.0)

    @staticmethod
    def _goal_at(given) -> np.ndarray:
        """The goal for ``reset(options={"goal": xy})``: on the ground."""
        xy = np.asarray(given, dtype=np.float64)
        return np.array([xy[0], xy[1], CUBE_HALF])

    def _draw_goal(self, cube: np.ndarray) -> np.ndarray:
        """A goal on the ground in the square, never within ``SUCCESS_DISTANCE`` of the cube (never solved at the start)."""
        goal = self.np_random.uniform(REGION_LOW, REGION_HIGH)
        while np.linalg.norm(goal - cube) <= SUCCESS_DISTANCE:
            goal = self.np_random.uniform(REGION_LOW, REGION_HIGH)
        return np.array([goal[0], goal[1], CUBE_HALF])

    @staticmethod
    def _info(distance: float) -> dict[str, Any]:
        return {"distance": distance, "is_success": bool(distance < SUCCESS_DISTANCE)}

    def step(self, action):
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)), -1.0, 1.0)
        due = self._deliver(self._command(self._noisy_action(a)))
        if due is not None:
            self._apply(due)
        self.advance()
        obs, reward, info = self.score()
        if self.render_mode == "human":
            self.render()
        # terminated is always False: the cube may be pushed off the goal again; TimeLimit owns truncation.
        return self._observe_noisy(obs), reward, False, False, self._randomization_info(info)

    def advance(self) -> None:
        """One control step of physics."""
        for _ in range(CUBE_SUBSTEPS):
            self.robot.step_simulation()

    def score(self) -> tuple[dict[str, np.ndarray], float, dict[str, Any]]:
        """The current state's true observation, reward and info (as ``step`` returns them without noise)."""
        obs, distance = self._observe()
        return obs, float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], {})), self._info(distance)

    def deployment_spec(self) -> dict[str, Any]:
        """What a deployed policy needs to turn readings into observations and actions into TCP targets
        (``robot6.envs.interface.TcpInterface``): the step per unit of action, the TCP bounds, the control rate."""
        low, high = self.TIP_BOUNDS
        return {"tcp_step": TIP_ACTION_SCALE, "tcp_bounds": [low.tolist(), high.tolist()], "control_period": CONTROL_PERIOD,
                "control_hz": CUBE_PHYSICS_HZ / CUBE_SUBSTEPS, "tcp_link": self._card.tcp_link, "tcp_depth": self._card.tcp_depth}

    def read_fields(self) -> dict[str, np.ndarray]:
        """The sensor readings of the current state, by ``interface`` field name, in SI units."""
        tip, velocity = self.robot.tcp_position_velocity()
        cube, quaternion = self._cube_pose()
        linear, angular = self._cube_velocity()
        return {"tcp": np.array(tip), "tcp_velocity": np.array(velocity), "object_position": np.array(cube),
                "object_quaternion": np.array(quaternion), "object_velocity": np.array(linear),
                "object_angular_velocity": np.array(angular), "goal": self._goal.copy()}

    def apply_command(self, command: dict[str, np.ndarray]) -> None:
        """Send an ``interface`` command to the motors: ``tcp_target`` (reached by inverse kinematics)."""
        self._apply((np.asarray(command["tcp_target"], dtype=np.float64),))

    def demonstration(self) -> np.ndarray:
        """The scripted controller's action in the current state (``scripted_push``): what ``--demos`` plays."""
        return scripted_push(self._obs)

    @property
    def arm(self) -> dict[str, Any] | None:
        """For an arm given by ``urdf`` (None for the built-in xArm6): what checkpoints and exported policies
        record of it. The URDF (as given, its robot name, ``urdf_sha256`` over it and its meshes), the card (path,
        ``card_sha256``, TCP link (also as ``ee_link``) and depth, approach axis), ``sha256`` over both (resume
        refuses a change of either), the arm joints and their limits, the finger joints, and what each action
        component means."""
        if not self._custom_arm:
            return None
        if self._arm is None:
            card, robot = self._card, self.robot
            meaning = [f"TCP {axis} displacement (m per step: action x {TIP_ACTION_SCALE})" for axis in "xyz"]
            if self.action_space.shape[0] == 4:
                meaning.append(f"gripper: -1 open ({robot.open_command:g}) to +1 closed ({robot.closed_command:g}), "
                               "the first finger joint's target")
            self._arm = {
                "urdf": self._urdf.given, "name": self._urdf.name, "urdf_sha256": self._urdf.sha256,
                "card": f"built-in {card.path.name}" if card.path.parent == CARDS else str(card.path),
                "card_sha256": card.sha256,
                "sha256": hashlib.sha256(f"{self._urdf.sha256} {card.sha256}".encode()).hexdigest(),
                "tcp_link": card.tcp_link, "tcp_depth": card.tcp_depth, "approach": card.approach,
                "joints": list(robot.joint_names), "lower": robot.low.tolist(), "upper": robot.high.tolist(),
                "ee_link": card.tcp_link,
                "fingers": robot.finger_names,
                "action": meaning, "tcp_bounds": [self.TIP_BOUNDS[0].tolist(), self.TIP_BOUNDS[1].tolist()],
                "control_hz": CUBE_PHYSICS_HZ / CUBE_SUBSTEPS,
            }
        return dict(self._arm)

    def _command(self, a: np.ndarray) -> tuple:
        """The command for the clipped action ``a``: the fingertips' target, the observed ones moved by ``a[:3]``
        (``interface.command``'s arithmetic)."""
        return (self.interface.tcp_target(self._obs["observation"][:3], a),)

    def _apply(self, command: tuple) -> None:
        """Set the motors' targets for a command of ``_command``."""
        self.robot.drive(self.robot.tcp_ik(command[0]))

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: dict | None) -> np.ndarray:
        """Reward for cube positions and goals, (..., 3) -> (...): ``-(distance > 0.05)``, or ``-distance``
        when dense; the gymnasium-robotics signature, so hindsight relabelling can use it."""
        diff = np.asarray(achieved_goal, dtype=np.float64) - np.asarray(desired_goal, dtype=np.float64)
        distance = np.linalg.norm(diff, axis=-1)
        return -distance if self.dense else -(distance > SUCCESS_DISTANCE).astype(np.float64)

    def _observe(self) -> tuple[dict[str, np.ndarray], float]:
        tip, velocity = self.robot.tcp_position_velocity()
        cube, quaternion = self._cube_pose()
        linear, angular = self._cube_velocity()
        relative = (cube[0] - tip[0], cube[1] - tip[1], cube[2] - tip[2])
        m = self._matrix(quaternion)  # row-major 3x3
        turn = (angular[0] * CONTROL_PERIOD, angular[1] * CONTROL_PERIOD, angular[2] * CONTROL_PERIOD)
        observation = np.array([*tip, *velocity, *cube, m[0], m[3], m[6], m[1], m[4], m[7], *linear, *turn, *relative],
                               dtype=np.float32)
        self._obs = obs = {
            "observation": observation,
            "achieved_goal": observation[6:9].copy(),
            "desired_goal": self._goal.astype(np.float32),
        }
        # From the observed (float32) positions, as compute_reward sees them: reward and success agree.
        return obs, float(np.linalg.norm(obs["achieved_goal"].astype(np.float64) - obs["desired_goal"]))


def scripted_push(obs: dict[str, np.ndarray]) -> np.ndarray:
    """A hand-written policy for Robot6Push: fingertips behind the cube (on the far side from the goal), down,
    then through the cube towards the goal. Solves most episodes within 50 steps; it shows that the task is
    feasible in this simulation and gives a reference for learned policies."""
    o, goal = obs["observation"], obs["desired_goal"]
    tip, cube = o[:3], o[6:9]
    direction = goal[:2] - cube[:2]
    direction = direction / (np.linalg.norm(direction) + 1e-9)
    behind = cube[:2] - direction * 0.06
    away = np.linalg.norm(tip[:2] - behind)
    in_place = np.dot(tip[:2] - cube[:2], direction) < -0.03 and tip[2] < 0.04
    if away > 0.02 and not in_place:
        target = np.array([*behind, 0.08 if away > 0.03 else TIP_LOW[2]])
    else:
        target = np.array([*(cube[:2] + direction * 0.03), TIP_LOW[2]])
    return np.clip((target - tip) / TIP_ACTION_SCALE, -1.0, 1.0).astype(np.float32)
