"""Arms in PyBullet: the simulation a task runs in, any arm from its URDF (``UrdfArm``: joints, limits, a
neutral pose) and any arm with a gripper (``GripperArm``: its TCP, inverse kinematics pointing down, the fingers
read from the URDF and its card), with the calls a task makes every step bound once (``BulletClient`` looks
each call up and wraps it anew).

The built-in xArm6 is two URDFs of ``pybullet_data`` through these classes: ``xarm/xarm6_robot.urdf`` (Reach)
and ``xarm/xarm6_with_gripper.urdf`` with its card (``robot6/envs/cards``; Push and Pick). Facts about them
(pybullet 3.2.7): joint 0 is the fixed ``world_joint``, the six revolute arm joints are indices 1-6 and link 6
(``link6``) is the flange. With the gripper: joint 7 ``gripper_fix`` (fixed; link 7, the gripper base,
coincides with the flange), joint 8 ``drive_joint`` and joints 9-13 (fingers and knuckles), all 0 (open,
fingers ~82 mm apart) to 0.85 rad (closed), each ``<mimic>`` of the drive joint with multiplier 1.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

import gymnasium as gym
import numpy as np
import pybullet
import pybullet_data
from pybullet_utils.bullet_client import BulletClient

from robot6.envs.card import LIMITS, ArmCard
from robot6.envs.urdf import UrdfError, UrdfFile

ARM_URDF = "xarm/xarm6_robot.urdf"
GRIPPER_URDF = "xarm/xarm6_with_gripper.urdf"
ARM_JOINTS = np.arange(1, 7)
FLANGE_LINK = 6
# At all-zero joints the arm is folded onto itself; this pose holds the flange near (0.36, 0, 0.31).
NEUTRAL_Q = np.array([0.0, -0.3, -0.6, 0.0, 0.9, 0.0])
# Joint targets are clipped to these (rad). URDF limits, with the +-2pi wrist/base joints cut to +-pi so
# the arm cannot wind its cables up; no task here needs more than half a turn.
JOINT_LOW = np.array([-np.pi, -2.059, -3.927, -np.pi, -1.69297, -np.pi])
JOINT_HIGH = np.array([np.pi, 2.0944, 0.19198, np.pi, np.pi, np.pi])
PHYSICS_HZ = 240
SUBSTEPS = 10  # physics steps per action: 24 Hz control


@contextlib.contextmanager
def _quiet_stdout():
    """Silence the process's stdout file descriptor (C-level prints) inside the block."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced stdout (pytest capture, notebooks)
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def display_available() -> bool:
    """Whether a window can be opened: PyBullet's GUI kills the process, not raises, when it cannot."""
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def connect(render_mode: str | None) -> BulletClient:
    """A new PyBullet client (a window with ``render_mode="human"``, else headless) with gravity, the physics
    time step and ``pybullet_data`` on the search path. ``gymnasium.error.Error`` when no window can open."""
    if render_mode == "human" and not display_available():
        raise gym.error.Error("render_mode='human' opens a PyBullet window, but no display was found (DISPLAY is unset)")
    mode = pybullet.GUI if render_mode == "human" else pybullet.DIRECT
    with _quiet_stdout():  # PyBullet's C code prints "argv[0]=" on every connection
        sim = BulletClient(connection_mode=mode)
    sim.setAdditionalSearchPath(pybullet_data.getDataPath())
    sim.setGravity(0, 0, -9.81)
    sim.setTimeStep(1.0 / PHYSICS_HZ)
    if mode == pybullet.GUI:
        sim.configureDebugVisualizer(pybullet.COV_ENABLE_GUI, 0)
    return sim


def camera_image(sim: BulletClient, width: int, height: int, target: list[float], distance: float = 1.0,
                 yaw: float = 45, pitch: float = -25) -> np.ndarray:
    """An RGB frame (height, width, 3) uint8 of ``sim`` from a camera aimed at ``target`` (TinyRenderer: headless)."""
    view = sim.computeViewMatrixFromYawPitchRoll(
        cameraTargetPosition=target, distance=distance, yaw=yaw, pitch=pitch, roll=0, upAxisIndex=2
    )
    proj = sim.computeProjectionMatrixFOV(fov=60, aspect=width / height, nearVal=0.05, farVal=5.0)
    _, _, rgba, _, _ = sim.getCameraImage(width, height, view, proj, renderer=pybullet.ER_TINY_RENDERER)
    return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()


MOVABLE = {pybullet.JOINT_REVOLUTE: "revolute", pybullet.JOINT_PRISMATIC: "prismatic"}
MIN_ARM_JOINTS, MAX_ARM_JOINTS = 2, 7
DEFAULT_FORCE = 100.0  # N*m (N) for a joint whose URDF gives no effort limit: position control needs one
IK_ROUNDS = 20  # inverse kinematics repeated from its own answer: how a pose for a TCP point is found


def _effort(info: tuple) -> float:
    """A joint's force limit for position control (``getJointInfo``): the URDF's effort, else ``DEFAULT_FORCE``."""
    return info[10] if info[10] > 0 else DEFAULT_FORCE


class UrdfArm:
    """Any arm from a URDF in ``sim`` (``robot6.envs.urdf.read_urdf`` checked the file): fixed base on the ground
    ``plane`` (that contact skipped), self-collision on, joint targets tracked by position control.

    The end effector is the link ``ee_link``, or where the chain from the base ends: the first link with no
    child or more than one (a hand's fingers branch there). The arm's joints are the movable joints
    (revolute, prismatic, continuous) from the base to the end effector, in PyBullet's joint order (the
    URDF's for a chain); every other movable joint (fingers) is held at the middle of its range. Limits,
    forces and velocities are the URDF's; a continuous joint (or a revolute one without limits) works in
    +-pi. The neutral pose is the middle of every arm joint's range. Links in contact in the neutral pose
    touch by design (coarse collision meshes), so their pair is not checked for collision.
    """

    def __init__(self, sim: BulletClient, plane: int, urdf: UrdfFile, ee_link: str | None = None):
        self.sim, self.urdf = sim, urdf
        try:
            with _quiet_stdout():
                self.id = sim.loadURDF(str(urdf.path), useFixedBase=True, flags=pybullet.URDF_USE_SELF_COLLISION)
        except pybullet.error as e:
            raise UrdfError(f"--urdf {urdf.given}: PyBullet cannot load it ({e})") from None
        infos = [sim.getJointInfo(self.id, j) for j in range(sim.getNumJoints(self.id))]
        parent = {info[0]: info[16] for info in infos}
        # The base, and links fixed to it, rest on the floor: those contacts never matter.
        rooted = [-1]
        for info in infos:
            if info[2] == pybullet.JOINT_FIXED and info[16] in rooted:
                rooted.append(info[0])
        for link in rooted:
            sim.setCollisionFilterPair(self.id, plane, link, -1, 0)
        links = {info[12].decode(): info[0] for info in infos}
        movable = [info[0] for info in infos if info[2] in MOVABLE]
        if not movable:
            raise UrdfError(f"--urdf {urdf.given}: no movable joint (revolute, prismatic or continuous); an arm needs some")
        if ee_link is None:
            children = {j: [info[0] for info in infos if info[16] == j] for j in [-1, *parent]}
            self.ee_link = -1
            while len(children[self.ee_link]) == 1:
                self.ee_link = children[self.ee_link][0]
        elif ee_link in links:
            self.ee_link = links[ee_link]
        else:
            raise UrdfError(f"--ee-link {ee_link}: {urdf.given} has no such link (its links: {', '.join(links)})")
        chain, link = set(), self.ee_link
        while link != -1:
            chain.add(link)
            link = parent[link]
        self.joints = [j for j in movable if j in chain]
        if not MIN_ARM_JOINTS <= len(self.joints) <= MAX_ARM_JOINTS:
            raise UrdfError(
                f"--urdf {urdf.given}: {len(self.joints)} movable joint(s) from the base to the end effector "
                f"({self.ee_link_name if self.ee_link >= 0 else 'the base'}); an arm here has {MIN_ARM_JOINTS} to "
                f"{MAX_ARM_JOINTS} (--ee-link picks another end effector)"
            )
        self.joint_names = [infos[j][1].decode() for j in self.joints]
        self.joint_types = [
            "continuous" if urdf.joint_types.get(name) == "continuous" else MOVABLE[infos[j][2]]
            for j, name in zip(self.joints, self.joint_names, strict=True)
        ]
        low, high = [], []
        for j, kind in zip(self.joints, self.joint_types, strict=True):
            lo, hi = infos[j][8], infos[j][9]
            if kind == "continuous" or (kind == "revolute" and lo >= hi):
                lo, hi = -np.pi, np.pi
            elif lo >= hi:
                raise UrdfError(f"--urdf {urdf.given}: prismatic joint {infos[j][1].decode()} has no limits")
            low.append(lo)
            high.append(hi)
        self.low, self.high = np.array(low), np.array(high)
        self.neutral = (self.low + self.high) / 2
        self.forces = [_effort(infos[j]) for j in self.joints]
        self.velocities = np.array([infos[j][11] for j in self.joints])
        self._hold([j for j in movable if j not in chain], infos)
        self._plane = plane
        client = {"physicsClientId": sim._client}
        self.step_simulation = functools.partial(pybullet.stepSimulation, **client)
        self._motor_control = functools.partial(pybullet.setJointMotorControlArray, **client)
        self._joint_states = functools.partial(pybullet.getJointStates, **client)
        self._link_state = functools.partial(pybullet.getLinkState, **client)
        self.reset_pose(self.neutral)
        sim.performCollisionDetection()
        for c in sim.getContactPoints(self.id, self.id):
            sim.setCollisionFilterPair(self.id, self.id, c[3], c[4], 0)

    def _hold(self, joints: list[int], infos: list[tuple]) -> None:
        """Hold ``joints`` (movable joints outside the arm) at the middle of their range (0 without limits)."""
        self.held = joints
        self._held_q = [(infos[j][8] + infos[j][9]) / 2 if infos[j][8] < infos[j][9] else 0.0 for j in joints]
        self._held_forces = [_effort(infos[j]) for j in joints]

    @property
    def ee_link_name(self) -> str:
        return self.sim.getJointInfo(self.id, self.ee_link)[12].decode()

    def reset_pose(self, q: np.ndarray) -> None:
        """Put the arm joints at ``q`` and the held joints at their hold position, at rest, without simulating;
        the held joints' motors hold them there."""
        for j, x in zip(self.joints, q, strict=True):
            self.sim.resetJointState(self.id, j, float(x), 0.0)
        for j, x in zip(self.held, self._held_q, strict=True):
            self.sim.resetJointState(self.id, j, x, 0.0)
        if self.held:
            self._motor_control(self.id, self.held, pybullet.POSITION_CONTROL, targetPositions=self._held_q,
                                forces=self._held_forces)

    def drive(self, target: list[float]) -> None:
        """Position targets of the arm joints, tracked from the next physics step on."""
        self._motor_control(self.id, self.joints, pybullet.POSITION_CONTROL, targetPositions=target, forces=self.forces)

    def joint_states(self) -> list[tuple]:
        """PyBullet's state (position, velocity, ...) of each arm joint."""
        return self._joint_states(self.id, self.joints)

    def link_position(self, link: int) -> tuple[float, float, float]:
        """World position of a link's frame (forward kinematics of the current joints)."""
        return self._link_state(self.id, link, computeForwardKinematics=True)[4]

    def in_collision(self) -> bool:
        """Whether, in the current joint positions, the arm touches itself (pairs not touching in the neutral
        pose) or the ground (its base excepted)."""
        self.sim.performCollisionDetection()
        return bool(self.sim.getContactPoints(self.id, self.id) or self.sim.getContactPoints(self.id, self._plane))

    def reach(self) -> float:
        """An upper bound of the distance from the base to the end effector (m): the sum of the chain's joint
        offsets, plus the end effector's own."""
        total, link = 0.0, self.ee_link
        while link != -1:
            info = self.sim.getJointInfo(self.id, link)
            total += float(np.linalg.norm(info[14]))
            link = info[16]
        return total


# The orientation (quaternion x, y, z, w) that turns each approach axis of the TCP link to point down (world -z).
_S = float(np.sqrt(0.5))
POINTING_DOWN_BY_AXIS = {
    "z": (1.0, 0.0, 0.0, 0.0), "-z": (0.0, 0.0, 0.0, 1.0),
    "x": (0.0, _S, 0.0, _S), "-x": (0.0, -_S, 0.0, _S),
    "y": (-_S, 0.0, 0.0, _S), "-y": (_S, 0.0, 0.0, _S),
}


class GripperArm(UrdfArm):
    """Any arm with a gripper, from its URDF and its card (``robot6.envs.card``), with the interface the cube
    tasks use: the TCP's position and velocity, the arm joints that put the TCP at a point with the gripper
    pointing down (inverse kinematics), and the gripper closed by a fraction.

    The arm is ``UrdfArm``'s chain (the base to where the chain branches: the hand). The fingers are the card's
    ``fingers``, else the movable joints past the chain; a finger that is a ``<mimic>`` of another follows it
    (PyBullet ignores ``<mimic>``): driven by its own motor to ``multiplier * leader + offset``, or, after
    ``tie_gripper``, tied to its leader by a gear constraint. Open and closed are the leaders' limits: the card's
    ``open``, else the end where the two finger links are farther apart. The finger width is the gap between the
    two finger links' collision shapes (or the card's ``width_offset`` rule).
    ``UrdfError`` (one line) for a URDF without fingers, a card naming a link or joint the URDF lacks, or
    fingers that do not open.
    """

    def __init__(self, sim: BulletClient, plane: int, urdf: UrdfFile, card: ArmCard):
        super().__init__(sim, plane, urdf)
        self.card = card
        infos = [sim.getJointInfo(self.id, j) for j in range(sim.getNumJoints(self.id))]
        joint_ids = {info[1].decode(): info[0] for info in infos}
        link_ids = {info[12].decode(): info[0] for info in infos}
        where = f"card {card.path}"
        if card.fingers is not None:
            missing = [n for n in card.fingers if n not in joint_ids]
            if missing:
                raise UrdfError(f"{where}: fingers: {urdf.given} has no joint {', '.join(missing)} "
                                f"(its joints: {', '.join(joint_ids)})")
            fingers = [joint_ids[n] for n in card.fingers]
            wrong = [infos[j][1].decode() for j in fingers if j not in self.held]
            if wrong:
                raise UrdfError(f"{where}: fingers: {', '.join(wrong)} is not a movable joint past the arm chain "
                                f"(which ends at {self.ee_link_name})")
        else:
            fingers = list(self.held)
        if not fingers:
            raise UrdfError(f"--urdf {urdf.given}: no gripper: no movable joint past the arm chain (it ends at "
                            f"{self.ee_link_name}); Push and Pick need finger joints (a card's `fingers` names them)")
        names = [infos[j][1].decode() for j in fingers]
        self._hold([j for j in self.held if j not in fingers], infos)
        # Leaders are commanded; each follower copies its leader through its <mimic>.
        self.finger_joints = fingers
        self._tied: list[int] = []  # the followers tied to their leader (tie_gripper)
        self._follows: list[tuple[int, float, float] | None] = []
        for name in names:
            leader = urdf.mimics.get(name)
            self._follows.append((names.index(leader[0]), leader[1], leader[2]) if leader and leader[0] in names else None)
        lows, highs = [], []
        for j, name in zip(fingers, names, strict=True):
            if not infos[j][8] < infos[j][9]:
                raise UrdfError(f"--urdf {urdf.given}: finger joint {name} has no limits: open and closed are read from them")
            lows.append(infos[j][8])
            highs.append(infos[j][9])
        if card.finger_links is not None:
            missing = [n for n in card.finger_links if n not in link_ids]
            if missing:
                raise UrdfError(f"{where}: finger_links: {urdf.given} has no link {', '.join(missing)} "
                                f"(its links: {', '.join(link_ids)})")
            pair = tuple(link_ids[n] for n in card.finger_links)
        else:
            pair = None
        if card.tcp_link not in link_ids:
            raise UrdfError(f"{where}: tcp_link: {urdf.given} has no link {card.tcp_link} (its links: {', '.join(link_ids)})")
        self.tcp_link = link_ids[card.tcp_link]
        self._depth = card.tcp_depth
        self.pointing_down = POINTING_DOWN_BY_AXIS[card.approach]
        if card.home is not None and len(card.home) != len(self.joints):
            raise UrdfError(f"{where}: home has {len(card.home)} values; the arm has {len(self.joints)} joints "
                            f"({', '.join(self.joint_names)})")
        for joint, lo, hi in card.limits or ():
            if joint not in self.joint_names:
                raise UrdfError(f"{where}: limits: {joint} is not an arm joint (those are: {', '.join(self.joint_names)})")
            i = self.joint_names.index(joint)
            self.low[i], self.high[i] = lo, hi
        self.home = np.array(card.home) if card.home is not None else self.neutral
        self.finger_forces = [card.grip_force or _effort(infos[j]) for j in fingers]  # the finger motors' force limits
        # Which limit opens: measured, unless the card says (the finger links' gap at each end).
        lows_a, highs_a = np.array(lows), np.array(highs)
        gaps = {}
        for end, q in (("lower", lows_a), ("upper", highs_a)):
            self._put_fingers(q)
            gaps[end] = self._link_gaps(pair)
        self._put_fingers((lows_a + highs_a) / 2)
        if pair is None:  # the two finger-joint links whose gap changes most between the two ends
            pair = max(gaps["lower"], key=lambda p: abs(gaps["lower"][p] - gaps["upper"][p]))
        opens = card.open or max(LIMITS, key=lambda end: gaps[end][pair])
        self.finger_links = pair
        self._open_q = highs_a if opens == "upper" else lows_a
        self._closed_q = lows_a if opens == "upper" else highs_a
        self.max_width = gaps[opens][pair]
        self.min_width = gaps["upper" if opens == "lower" else "lower"][pair]
        if self.max_width < 0.005:
            raise UrdfError(f"--urdf {urdf.given}: the fingers ({', '.join(names)}) open by {self.max_width * 1000:.1f} mm "
                            "between their limits; a gripper must open (the card's fingers / finger_links choose others)")
        self.open_command, self.closed_command = float(self._open_q[0]), float(self._closed_q[0])
        # The gripper's own links never collide with each other or the hand (driven together they touch).
        own = [self.ee_link, *fingers]
        for i, a in enumerate(own):
            for b in own[i + 1:]:
                sim.setCollisionFilterPair(self.id, self.id, a, b, 0)
        self._ik = functools.partial(pybullet.calculateInverseKinematics, physicsClientId=sim._client)
        movable = [info[0] for info in infos if info[2] != pybullet.JOINT_FIXED]
        self._ik_index = [movable.index(j) for j in self.joints]  # IK returns one value per movable joint
        self._target = self._open_q.copy()

    def _put_fingers(self, leader_q: np.ndarray) -> None:
        """Set the finger joints (leaders at ``leader_q``, followers by their mimic), without simulating."""
        for j, q in zip(self.finger_joints, self._finger_q(leader_q), strict=True):
            self.sim.resetJointState(self.id, j, float(q), 0.0)

    def _finger_q(self, leader_q: np.ndarray) -> list[float]:
        return [float(leader_q[i]) if f is None else f[1] * float(leader_q[f[0]]) + f[2]
                for i, f in enumerate(self._follows)]

    def _link_gaps(self, pair: tuple[int, int] | None) -> dict[tuple[int, int], float]:
        """The gap between the collision shapes of ``pair``, or of every pair of finger links."""
        pairs = [pair] if pair is not None else [
            (a, b) for i, a in enumerate(self.finger_joints) for b in self.finger_joints[i + 1:]]
        return {p: self._gap(*p) for p in pairs}

    def _gap(self, a: int, b: int) -> float:
        """The distance between the collision shapes of links ``a`` and ``b`` (0 when they touch), or between
        their frames less the card's ``width_offset``."""
        if self.card.width_offset is not None:
            return max(0.0, float(np.linalg.norm(np.subtract(self.link_position(a), self.link_position(b))))
                       - self.card.width_offset)
        points = self.sim.getClosestPoints(self.id, self.id, 1.0, a, b)
        return max(0.0, min((c[8] for c in points), default=1.0))

    def _leader_target(self, closed: float) -> np.ndarray:
        """The finger joints' leader targets the fraction ``closed`` of the way from open to closed."""
        return self._open_q + closed * (self._closed_q - self._open_q)

    def reset_pose(self, q: np.ndarray, closed: float = 0.0) -> None:
        """Arm joints at ``q``, the gripper closed by the fraction ``closed`` (0 open, 1 closed), at rest."""
        super().reset_pose(q)
        if hasattr(self, "_open_q"):  # UrdfArm's constructor sets a pose before the fingers are known
            self._target = self._leader_target(closed)
            self._put_fingers(self._target)
            self._drive_fingers()

    def _drive_fingers(self) -> None:
        driven = [i for i in range(len(self.finger_joints)) if i not in self._tied]
        q = self._finger_q(self._target)
        self._motor_control(self.id, [self.finger_joints[i] for i in driven], pybullet.POSITION_CONTROL,
                            targetPositions=[q[i] for i in driven], forces=[self.finger_forces[i] for i in driven])

    def finger_command(self, closed: float) -> float:
        """The first finger joint's target (rad or m) for the fraction ``closed`` (0 open, 1 closed)."""
        return float(self._leader_target(closed)[0])

    def grip(self, closed: float) -> float:
        """Drive the gripper to the fraction ``closed`` of the way from open to closed; returns the first finger
        joint's target (rad or m): the finger command a task observes."""
        self._target = self._leader_target(closed)
        self._drive_fingers()
        return float(self._target[0])

    def tie_gripper(self, force: float) -> None:
        """Tie each follower (a ``<mimic>`` without offset) to its leader with a gear constraint, as a linkage
        does, so that the fingers keep their relation when they squeeze something; the leaders are then driven
        with up to ``force`` (the card's ``grip_force`` wins), the tied followers by the ties alone. Call
        ``free_followers`` after every ``restoreState``."""
        self._tied = []
        for i, follow in enumerate(self._follows):
            if follow is None or follow[2] != 0.0:
                continue
            leader, follower = self.finger_joints[follow[0]], self.finger_joints[i]
            tie = self.sim.createConstraint(self.id, leader, self.id, follower, pybullet.JOINT_GEAR, [1, 0, 0],
                                            [0, 0, 0], [0, 0, 0])
            self.sim.changeConstraint(tie, gearRatio=-follow[1], maxForce=1000, erp=1)
            self._tied.append(i)
        self.finger_forces = [self.card.grip_force or force] * len(self.finger_joints)
        self.free_followers()

    def free_followers(self) -> None:
        """Switch the tied followers' motors off (PyBullet's default velocity motor would hold them)."""
        tied = [self.finger_joints[i] for i in self._tied]
        if tied:
            self._motor_control(self.id, tied, pybullet.VELOCITY_CONTROL, forces=[0.0] * len(tied))

    def finger_width(self) -> float:
        """The gap between the two finger links' shapes (m): 0 where they touch, ``max_width`` open; with the
        card's ``width_offset``, the distance between their frames less that offset."""
        return self._gap(*self.finger_links)

    def set_finger_friction(self, friction: float) -> None:
        """The lateral friction of the gripper's moving links (the pads that hold an object)."""
        for link in self.finger_joints:
            self.sim.changeDynamics(self.id, link, lateralFriction=friction)

    @property
    def finger_names(self) -> list[str]:
        """The finger joints' names, leaders and followers, in the URDF's order."""
        return [self.sim.getJointInfo(self.id, j)[1].decode() for j in self.finger_joints]

    def tcp_position_velocity(self) -> tuple[tuple, tuple]:
        """The TCP's world position and linear velocity: ``tcp_depth`` below the TCP link's frame (the tasks hold
        the approach axis pointing down, and ``tcp_ik`` places the frame ``tcp_depth`` above its target)."""
        state = self._link_state(self.id, self.tcp_link, computeLinkVelocity=1, computeForwardKinematics=True)
        position = state[4]
        return (position[0], position[1], position[2] - self._depth), state[6]

    def place_tcp(self, point, closed: float, start: np.ndarray | None = None) -> None:
        """Put the arm at rest where ``IK_ROUNDS`` rounds of ``tcp_ik`` from ``start`` (default ``home``) bring the
        TCP to ``point``, pointing down, the gripper closed by the fraction ``closed`` (a task's start pose)."""
        self.reset_pose(self.home if start is None else start, closed)
        for _ in range(IK_ROUNDS):
            self.reset_pose(self.tcp_ik(point), closed)

    def unreachable(self, points, tolerance: float = 0.01) -> list[tuple[float, ...]]:
        """The ``points`` that ``place_tcp`` (from ``home``, as a task's start pose is found) cannot bring the TCP
        within ``tolerance`` m of, pointing down. Moves the joints: restore a snapshot after it."""
        missed = []
        for point in points:
            self.place_tcp(point, 1.0)
            if np.linalg.norm(np.subtract(self.tcp_position_velocity()[0], point)) > tolerance:
                missed.append(tuple(float(x) for x in point))
        return missed

    def tcp_ik(self, tip) -> list[float]:
        """Arm joint targets (clipped to the limits) that put the TCP at ``tip``, the gripper pointing down,
        starting from the current joints."""
        link_target = [float(tip[0]), float(tip[1]), float(tip[2]) + self._depth]  # the approach axis points down
        q = self._ik(self.id, self.tcp_link, link_target, self.pointing_down, maxNumIterations=20)
        return [min(max(q[i], lo), hi) for i, lo, hi in zip(self._ik_index, self.low.tolist(), self.high.tolist())]
