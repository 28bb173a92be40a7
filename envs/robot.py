"""The xArm6 in PyBullet, bare (``xarm/xarm6_robot.urdf``) or with its gripper (``xarm/xarm6_with_gripper.urdf``),
both from ``pybullet_data``: the simulation a task runs in, the arm's joints, limits and neutral pose, and the
calls a task makes on it every step (bound once: ``BulletClient`` looks each call up and wraps it anew).

Facts about the URDFs (pybullet 3.2.7): joint 0 is the fixed ``world_joint``, the six revolute arm joints are
indices 1-6 and link 6 (``link6``) is the flange. With the gripper: joint 7 ``gripper_fix`` (fixed; link 7, the
gripper base, coincides with the flange), joint 8 ``drive_joint`` and joints 9-13 (fingers and knuckles), all
0 (open, fingers ~82 mm apart) to 0.85 rad (closed), each ``<mimic>`` of the drive joint with multiplier 1.
PyBullet ignores ``<mimic>``, so the followers are driven to the drive joint's target with it.
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

ARM_URDF = "xarm/xarm6_robot.urdf"
GRIPPER_URDF = "xarm/xarm6_with_gripper.urdf"
ARM_JOINTS = np.arange(1, 7)
FLANGE_LINK = 6
GRIPPER_BASE_LINK = 7
GRIPPER_JOINTS = np.arange(8, 14)  # the drive joint, then its five followers
GRIPPER_OPEN, GRIPPER_CLOSED = 0.0, 0.85  # rad of every gripper joint
# Pointing down (roll pi), the fingertips of the closed gripper are this far below the gripper base (m).
FINGERTIP_DEPTH = 0.165
POINTING_DOWN = (1.0, 0.0, 0.0, 0.0)  # quaternion (x, y, z, w) of roll pi: the gripper's z axis down
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


class XArm6:
    """The arm in ``sim``: loaded with self-collision on, its fixed base on the ground ``plane`` (that contact
    skipped), joint targets tracked by position control at the URDF's forces.

    ``gripper=True`` loads the arm with its gripper; ``set_gripper`` then drives the drive joint and its
    followers to one angle. The neutral pose is set by ``reset_pose``, not at loading, so that a task can add
    its own bodies first (a simulation snapshot taken after it restores everything).
    """

    def __init__(self, sim: BulletClient, plane: int, gripper: bool = False):
        self.sim, self.gripper = sim, gripper
        self.id = sim.loadURDF(GRIPPER_URDF if gripper else ARM_URDF, useFixedBase=True, flags=pybullet.URDF_USE_SELF_COLLISION)
        # The fixed base rests on the floor: that contact can never matter, so skip it every substep.
        sim.setCollisionFilterPair(self.id, plane, -1, -1, 0)
        self.joints = ARM_JOINTS.tolist()
        self.forces = [sim.getJointInfo(self.id, j)[10] for j in self.joints]
        self.gripper_joints = GRIPPER_JOINTS.tolist() if gripper else []
        # The gripper's links (and the flange they hang from) never collide with each other: driven together,
        # the closed fingers and knuckles touch, and those contacts cost a third of a physics step.
        links = [FLANGE_LINK, GRIPPER_BASE_LINK, *self.gripper_joints] if gripper else []
        for i, a in enumerate(links):
            for b in links[i + 1:]:
                sim.setCollisionFilterPair(self.id, self.id, a, b, 0)
        self._gripper_forces = [sim.getJointInfo(self.id, j)[10] for j in self.gripper_joints]
        client = {"physicsClientId": sim._client}
        self.step_simulation = functools.partial(pybullet.stepSimulation, **client)
        self._motor_control = functools.partial(pybullet.setJointMotorControlArray, **client)
        self._joint_states = functools.partial(pybullet.getJointStates, **client)
        self._link_state = functools.partial(pybullet.getLinkState, **client)
        self._ik = functools.partial(pybullet.calculateInverseKinematics, **client)

    def reset_pose(self, q: np.ndarray = NEUTRAL_Q, gripper: float = GRIPPER_CLOSED) -> None:
        """Put the joints at ``q`` (and the gripper at ``gripper``), at rest, without simulating."""
        for j, x in zip(self.joints, q, strict=True):
            self.sim.resetJointState(self.id, j, x, 0.0)
        for j in self.gripper_joints:
            self.sim.resetJointState(self.id, j, gripper, 0.0)

    def drive(self, target: list[float]) -> None:
        """Position targets of the six arm joints (rad), tracked from the next physics step on."""
        self._motor_control(self.id, self.joints, pybullet.POSITION_CONTROL, targetPositions=target, forces=self.forces)

    def set_gripper(self, angle: float) -> None:
        """Drive the drive joint and its five followers to ``angle`` (rad, 0 open to 0.85 closed)."""
        self._motor_control(self.id, self.gripper_joints, pybullet.POSITION_CONTROL,
                            targetPositions=[angle] * len(self.gripper_joints), forces=self._gripper_forces)

    def joint_states(self) -> list[tuple]:
        """PyBullet's state (position, velocity, ...) of each arm joint."""
        return self._joint_states(self.id, self.joints)

    def link_position(self, link: int) -> tuple[float, float, float]:
        """World position of a link's frame (forward kinematics of the current joints)."""
        return self._link_state(self.id, link, computeForwardKinematics=True)[4]

    def link_position_velocity(self, link: int) -> tuple[tuple, tuple]:
        """World position and linear velocity of a link's frame."""
        state = self._link_state(self.id, link, computeLinkVelocity=1, computeForwardKinematics=True)
        return state[4], state[6]

    def inverse_kinematics(self, link: int, position: list[float], orientation: tuple = POINTING_DOWN) -> list[float]:
        """Arm joint targets (6, clipped to ``JOINT_LOW``/``JOINT_HIGH``) that put ``link`` at ``position`` with
        ``orientation``, starting from the current joints (PyBullet's damped least squares)."""
        q = self._ik(self.id, link, position, orientation, maxNumIterations=20)[:6]
        return [min(max(x, lo), hi) for x, lo, hi in zip(q, JOINT_LOW.tolist(), JOINT_HIGH.tolist())]
