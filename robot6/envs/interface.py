"""What a policy reads and what it commands, in the robot's terms: named sensor fields in SI units in, the
observation vector the policy was trained on, and the action turned into the command a robot executes.

The envs build their observations and commands by exactly this arithmetic (tests hold them equal bit for bit),
so the deployment runtime (``robot6.deploy``), which rebuilds them from a real robot's readings, feeds the
policy what it saw in training. No simulator here: numpy only.

An interface is plain data (``spec()``, saved in exported policies) plus three calls: ``start(fields)`` at an
episode's start, ``observation(fields)`` (the policy's input, float32) and ``command(action)`` (the command for
the clipped action, with every value clamped to the limits of the spec). A policy trained with an action history
(``action_history`` k > 0 in the spec) also reads its own last k actions, oldest first, zeros at an episode's start,
after the fields: ``remember(action)`` records each action the policy gives. Kinds:

- ``joint_targets`` (Robot6Reach-v0): fields ``joint_position`` (n; rad, m for a prismatic joint),
  ``joint_velocity`` (n), ``tcp`` (3, m: the end effector), ``goal`` (3, m); command ``joint_targets`` (n):
  each target moves by up to ``action_scale`` per step, within the joint limits.
- ``tcp_target`` (Robot6Push-v0): fields ``tcp`` (3, m), ``tcp_velocity`` (3, m/s), ``object_position`` (3, m),
  ``object_quaternion`` (4: x, y, z, w), ``object_velocity`` (3, m/s), ``object_angular_velocity`` (3, rad/s),
  ``goal`` (3, m); command ``tcp_target`` (3, m): where the TCP goes next (the observed TCP moved by up to
  ``tcp_step`` m per axis, within ``tcp_bounds``), pointing down, and ``tcp_displacement``, that move from the
  observed TCP.
- ``tcp_target_gripper`` (Robot6PickAndPlace-v0): Push's fields and ``finger_width`` (1, m); command
  ``tcp_target`` and ``gripper`` (0 open to 1 closed) with ``finger_target``, the first finger joint's target
  (rad or m). The finger command the policy observes is the interface's own memory of its last command.
- ``raw`` (any other env): one field ``observation`` (the env's observation vector); command ``action``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
MAX_ACTION_HISTORY = 8  # the most past actions an observation can hold


def matrix_columns(q) -> tuple[float, ...]:
    """The first two columns of the rotation matrix of the quaternion ``q`` (x, y, z, w), column by column:
    PyBullet's ``getMatrixFromQuaternion`` (Bullet's ``btMatrix3x3::setRotation``), bit for bit."""
    x, y, z, w = (float(v) for v in q)
    s = 2.0 / (x * x + y * y + z * z + w * w)
    xs, ys, zs = x * s, y * s, z * s
    wx, wy, wz = w * xs, w * ys, w * zs
    xx, xy, xz = x * xs, x * ys, x * zs
    yy, yz, zz = y * ys, y * zs, z * zs
    return (1.0 - (yy + zz), xy + wz, xz - wy, xy - wz, 1.0 - (xx + zz), yz + wx)


class Interface:
    """Base: the fields (name -> (size, unit)) and the kind; see the module's docstring."""

    kind = "raw"
    fields: dict[str, tuple[int, str]]

    def __init__(self, spec: dict[str, Any]):
        self._spec = dict(spec)
        self.history = int(spec.get("action_history", 0))
        self.past = np.zeros((self.history, int(spec.get("action_dim", 0))), dtype=np.float32)

    def spec(self) -> dict[str, Any]:
        """Plain data (JSON) from which ``from_spec`` builds the same interface."""
        return {"kind": self.kind, **self._spec, "fields": {k: list(v) for k, v in self.fields.items()}}

    def check(self, fields: dict[str, Any]) -> dict[str, np.ndarray]:
        """``fields`` as float64 arrays of the right sizes; ``ValueError`` (one line) naming missing, extra or
        misshapen fields, or values that are not finite numbers."""
        missing = [k for k in self.fields if k not in fields]
        extra = [k for k in fields if k not in self.fields]
        if missing or extra:
            said = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unexpected {', '.join(extra)}"] if extra else [])
            raise ValueError(f"observation fields: {'; '.join(said)} (this policy reads: "
                             + ", ".join(f"{k} ({n}, {u})" for k, (n, u) in self.fields.items()) + ")")
        out = {}
        for name, (size, unit) in self.fields.items():
            try:
                value = np.asarray(fields[name], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise ValueError(f"observation field {name}: not numbers ({type(fields[name]).__name__})") from None
            if value.shape != (size,):
                raise ValueError(f"observation field {name}: {value.size} value(s), this policy reads {size} ({unit})")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"observation field {name}: not finite ({value.tolist()})")
            out[name] = value
        return out

    def start(self, fields: dict[str, np.ndarray]) -> None:
        """A new episode starts from these readings (and with no past actions)."""
        self.start_history()

    def start_history(self) -> None:
        """No past actions yet (zeros)."""
        self.past[:] = 0.0

    def native(self, fields: dict[str, np.ndarray]):
        """The observation as the env returns it (a flat vector, or a goal Dict), without the action history."""
        return np.asarray(fields["observation"], dtype=np.float32)

    def remember(self, action: np.ndarray) -> None:
        """Record the policy's action (clipped to [-1, 1]) as the latest of its action history (nothing without one)."""
        if self.history:
            self.past[:-1] = self.past[1:]
            self.past[-1] = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64).reshape(-1)), -1.0, 1.0)

    def with_history(self, obs):
        """``obs`` (as ``native`` returns it) with the action history after it (in a goal Dict: after its
        ``observation``); ``obs`` itself without a history."""
        if not self.history:
            return obs
        if isinstance(obs, dict):
            return {**obs, "observation": np.concatenate([obs["observation"], self.past.ravel()])}
        return np.concatenate([obs, self.past.ravel()])

    def observation(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        """The policy's input (float32, flat: a goal Dict's observation, achieved_goal, desired_goal), with the
        action history."""
        obs = self.with_history(self.native(fields))
        if isinstance(obs, dict):
            return np.concatenate([np.asarray(obs[k], dtype=np.float32).ravel() for k in GOAL_KEYS])
        return obs

    def command(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """The command for ``action`` (the policy's output, in the env's action bounds)."""
        return {"action": np.asarray(action, dtype=np.float64)}


class RawInterface(Interface):
    """Any env: the observation vector is the one field."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.fields = {"observation": (int(spec["obs_dim"]), "as the env defines it")}


class JointTargetInterface(Interface):
    """Robot6Reach-v0 on any arm: joint position targets."""

    kind = "joint_targets"

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.lower, self.upper = list(map(float, spec["lower"])), list(map(float, spec["upper"]))
        self.scale = list(map(float, spec["action_scale"]))
        n = len(self.scale)
        units = spec.get("joint_units") or ["rad"] * n
        unit = units[0] if len(set(units)) == 1 else "rad or m"
        self.fields = {"joint_position": (n, unit), "joint_velocity": (n, f"{unit}/s"), "tcp": (3, "m"), "goal": (3, "m")}
        self.target: list[float] = [(lo + hi) / 2 for lo, hi in zip(self.lower, self.upper, strict=True)]

    def start(self, fields):
        super().start(fields)
        self.target = [float(x) for x in fields["joint_position"]]

    def native(self, fields):
        return np.array([*fields["joint_position"], *fields["joint_velocity"], *fields["tcp"], *fields["goal"]], dtype=np.float32)

    def command(self, action):
        # The env's step: the same floats in the same order.
        a = np.asarray(action, dtype=np.float64).reshape(len(self.target)).tolist()
        self.target = [
            min(max(t + s * min(max(x, -1.0), 1.0), low), high)
            for t, s, x, low, high in zip(self.target, self.scale, a, self.lower, self.upper)
        ]
        return {"joint_targets": np.array(self.target)}


class TcpInterface(Interface):
    """Robot6Push-v0 on any gripper arm: TCP targets, gripper held closed."""

    kind = "tcp_target"

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.step, self.period = float(spec["tcp_step"]), float(spec["control_period"])
        self.low, self.high = (np.asarray(b, dtype=np.float64) for b in spec["tcp_bounds"])
        self.fields = {"tcp": (3, "m"), "tcp_velocity": (3, "m/s"), "object_position": (3, "m"),
                       "object_quaternion": (4, "x y z w"), "object_velocity": (3, "m/s"),
                       "object_angular_velocity": (3, "rad/s"), "goal": (3, "m")}
        self._tcp = np.zeros(3, dtype=np.float32)

    def native(self, fields):
        tip, cube, w = fields["tcp"], fields["object_position"], fields["object_angular_velocity"]
        relative = (cube[0] - tip[0], cube[1] - tip[1], cube[2] - tip[2])
        turn = (w[0] * self.period, w[1] * self.period, w[2] * self.period)
        observation = np.array([*tip, *fields["tcp_velocity"], *cube, *matrix_columns(fields["object_quaternion"]),
                                *fields["object_velocity"], *turn, *relative, *self._extra(fields)], dtype=np.float32)
        self._tcp = observation[:3]
        return {"observation": observation, "achieved_goal": observation[6:9].copy(),
                "desired_goal": np.asarray(fields["goal"]).astype(np.float32)}

    def _extra(self, fields) -> tuple:
        return ()

    def tcp_target(self, tcp: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The TCP's next target: the observed TCP (float32, as the policy saw it) moved by the clipped action."""
        return np.clip(tcp + self.step * action[:3], self.low, self.high)

    def command(self, action):
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64).reshape(-1)), -1.0, 1.0)
        target = self.tcp_target(self._tcp, a)
        return {"tcp_target": target, "tcp_displacement": target - self._tcp}


class TcpGripperInterface(TcpInterface):
    """Robot6PickAndPlace-v0 on any gripper arm: TCP targets and the gripper."""

    kind = "tcp_target_gripper"

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.open, self.closed = float(spec["open_command"]), float(spec["closed_command"])
        self.fields["finger_width"] = (1, "m")
        self.finger = self.open

    def start(self, fields):
        super().start(fields)
        self.finger = self.open

    def finger_command(self, closed: float) -> float:
        """The first finger joint's target for the fraction ``closed`` (0 open, 1 closed)."""
        return float(np.float64(self.open) + closed * (np.float64(self.closed) - np.float64(self.open)))

    def _extra(self, fields) -> tuple:
        # An env passes the finger command it sent (``finger_command``); a robot's runtime keeps its own.
        finger = fields["finger_command"][0] if "finger_command" in fields else self.finger
        return (finger, *fields["finger_width"])

    def command(self, action):
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64).reshape(-1)), -1.0, 1.0)
        closed = float(np.clip((a[3] + 1.0) / 2.0, 0.0, 1.0))
        self.finger = self.finger_command(closed)
        target = self.tcp_target(self._tcp, a)
        return {"tcp_target": target, "tcp_displacement": target - self._tcp, "gripper": np.array([closed]),
                "finger_target": np.array([self.finger])}


KINDS = {cls.kind: cls for cls in (RawInterface, JointTargetInterface, TcpInterface, TcpGripperInterface)}


def from_spec(spec: dict[str, Any]) -> Interface:
    """The interface of ``spec`` (an ``Interface.spec()``); ``ValueError`` for an unknown kind."""
    kind = spec.get("kind", "raw")
    if kind not in KINDS:
        raise ValueError(f"unknown interface kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind]({k: v for k, v in spec.items() if k not in ("kind", "fields")})


def interface_of(env) -> Interface:
    """The interface of a (possibly wrapped) env: its own (``env.unwrapped.interface``), else ``raw``."""
    own = getattr(env.unwrapped, "interface", None)
    if isinstance(own, Interface):
        return from_spec(own.spec())
    return RawInterface({"obs_dim": int(env.observation_space.shape[0])})
