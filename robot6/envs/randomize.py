"""Domain randomization: the physics, the timing and the sensing of an episode drawn from ranges, so that a
policy trained in simulation survives the real arm's differences from it.

A randomization is a mapping ``factor -> [low, high]``; each episode draws every factor uniformly from its
range (``latency`` an integer in it, both ends included) with the env's own generator, in the sorted order of
the names, so that a run with randomization is as reproducible, and resumes as exactly, as one without. What a
factor means (``FACTORS``):

- scales of the nominal physics, applied at the episode's start: ``object_mass``, ``object_friction``,
  ``finger_friction`` (the gripper's moving links), ``ground_friction``, ``joint_damping`` (the URDF's
  ``<dynamics damping>``; an arm whose URDF gives none has none to scale), ``motor_force`` (every motor's force
  limit: the arm joints and the fingers);
- ``latency``: each command reaches the motors this many control steps after the observation it was computed
  from (before the first one arrives the motors keep their targets);
- ``action_noise``: the standard deviation of Gaussian noise added to each action component (actions are in
  [-1, 1]; the sum is clipped to it);
- ``obs_FIELD``: the standard deviation of Gaussian noise added to a sensor reading at every step, in its unit
  (``robot6.envs.interface`` names the fields: ``obs_joint_position`` in rad, ``obs_tcp`` in m, ...). Quantities
  derived from a reading (the cube relative to the TCP, the achieved goal) are derived from the noisy one.

An env lists the factors it has in ``RANDOMIZABLE``; a factor it lacks is an error, not a silent no-op.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

# factor -> (kind, what it is); kind: "scale" of a nominal value, "steps" (an integer), "std" of Gaussian noise.
FACTORS: dict[str, tuple[str, str]] = {
    "object_mass": ("scale", "the object's mass"),
    "object_friction": ("scale", "the object's lateral friction"),
    "finger_friction": ("scale", "the gripper's moving links' lateral friction"),
    "ground_friction": ("scale", "the ground's lateral friction"),
    "joint_damping": ("scale", "the arm joints' damping (the URDF's)"),
    "motor_force": ("scale", "every motor's force limit"),
    "latency": ("steps", "control steps between an observation and its command reaching the motors"),
    "action_noise": ("std", "Gaussian noise on each action component (actions in [-1, 1])"),
    "obs_joint_position": ("std", "noise on the joint positions (rad, or m for a prismatic joint)"),
    "obs_joint_velocity": ("std", "noise on the joint velocities (rad/s or m/s)"),
    "obs_tcp": ("std", "noise on the TCP position (m)"),
    "obs_tcp_velocity": ("std", "noise on the TCP velocity (m/s)"),
    "obs_object_position": ("std", "noise on the object position (m)"),
    "obs_object_orientation": ("std", "noise on the object orientation (rad, a rotation about a random axis)"),
    "obs_object_velocity": ("std", "noise on the object's linear velocity (m/s)"),
    "obs_finger_width": ("std", "noise on the finger width (m)"),
}
MAX_LATENCY = 10  # control steps; a longer delay is no longer a latency but another task


class RandomizationError(ValueError):
    """A randomization that cannot be used (an unknown factor, a bad range); one line."""


def check_ranges(ranges: dict[str, Any], allowed: tuple[str, ...] | None = None, where: str = "randomization") -> dict[str, list[float]]:
    """``ranges`` as ``{factor: [low, high]}`` with floats (ints for ``latency``), checked: known factors (and,
    when ``allowed`` is given, only those), low <= high, scales positive, noise and latency >= 0."""
    checked: dict[str, list[float]] = {}
    for name, value in ranges.items():
        if name not in FACTORS:
            raise RandomizationError(f"{where}: no factor {name!r} (factors: {', '.join(FACTORS)})")
        if allowed is not None and name not in allowed:
            raise RandomizationError(f"{where}: {name} does not apply to this env (its factors: {', '.join(allowed)})")
        try:
            low, high = (float(v) for v in value)
        except (TypeError, ValueError):
            raise RandomizationError(f"{where}: {name} needs [low, high], got {value!r}") from None
        kind = FACTORS[name][0]
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise RandomizationError(f"{where}: {name} needs finite low <= high, got [{low:g}, {high:g}]")
        if kind == "scale" and low <= 0:
            raise RandomizationError(f"{where}: {name} scales a physical value and must be > 0, got [{low:g}, {high:g}]")
        if kind == "std" and low < 0:
            raise RandomizationError(f"{where}: {name} is a standard deviation and must be >= 0, got [{low:g}, {high:g}]")
        if kind == "steps":
            if low != int(low) or high != int(high) or low < 0 or high > MAX_LATENCY:
                raise RandomizationError(f"{where}: {name} needs whole control steps in 0..{MAX_LATENCY}, got [{low:g}, {high:g}]")
            low, high = int(low), int(high)
        checked[name] = [low, high]
    return checked


def parse_range(text: str) -> tuple[str, list[float]]:
    """``NAME=LOW:HIGH`` (or ``NAME=VALUE`` for a fixed value) from the command line -> (name, [low, high])."""
    name, sep, value = text.partition("=")
    low, _, high = value.partition(":")
    try:
        pair = [float(low), float(high or low)]
    except ValueError:
        raise RandomizationError(f"--randomization {text}: write NAME=LOW:HIGH or NAME=VALUE, e.g. object_mass=0.5:2") from None
    if not sep or not name:
        raise RandomizationError(f"--randomization {text}: write NAME=LOW:HIGH or NAME=VALUE, e.g. object_mass=0.5:2")
    return name.strip(), pair


def draw(ranges: dict[str, list[float]], rng: np.random.Generator) -> dict[str, float]:
    """One episode's values: each factor uniform in its range (``latency`` an integer, ends included), in
    sorted order from ``rng``."""
    values: dict[str, float] = {}
    for name in sorted(ranges):
        low, high = ranges[name]
        if FACTORS[name][0] == "steps":
            values[name] = int(rng.integers(int(low), int(high) + 1))
        else:
            values[name] = float(rng.uniform(low, high))
    return values


def rotate_quaternion(q: np.ndarray, angle: float, axis: np.ndarray) -> np.ndarray:
    """The quaternion (x, y, z, w) ``q`` turned by ``angle`` rad about the unit ``axis`` (world frame)."""
    s = math.sin(angle / 2)
    r = np.array([axis[0] * s, axis[1] * s, axis[2] * s, math.cos(angle / 2)])
    x1, y1, z1, w1 = r
    x2, y2, z2, w2 = q
    return np.array([
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
    ])


def add_noise(fields: dict[str, np.ndarray], stds: dict[str, float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``fields`` (sensor readings by name, ``robot6.envs.interface``) with Gaussian noise of ``stds`` (field name ->
    standard deviation; 0 draws nothing) added, in sorted order of the names; ``object_orientation`` turns the
    ``object_quaternion`` about a random axis by an angle of that deviation."""
    noisy = dict(fields)
    for name in sorted(stds):
        std = stds[name]
        if std <= 0:
            continue
        if name == "object_orientation":
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis) + 1e-12
            noisy["object_quaternion"] = rotate_quaternion(np.asarray(fields["object_quaternion"], dtype=np.float64),
                                                           float(rng.normal(0.0, std)), axis)
        elif name in noisy:
            value = np.asarray(noisy[name], dtype=np.float64)
            noisy[name] = value + rng.normal(0.0, std, size=value.shape)
    return noisy


def noise_stds(values: dict[str, float]) -> dict[str, float]:
    """The sensor fields' noise of an episode's values: ``obs_tcp`` -> ``tcp`` (positive ones only)."""
    return {name[4:]: v for name, v in values.items() if name.startswith("obs_") and v > 0}


class Latency:
    """Commands delivered ``steps`` control steps after they were computed: ``push(command)`` returns the command
    due now, None while none is (the motors then keep their targets)."""

    def __init__(self, steps: int = 0):
        self.steps = int(steps)
        self._queue: deque = deque()

    def push(self, command: Any) -> Any:
        if self.steps == 0:
            return command
        self._queue.append(command)
        return self._queue.popleft() if len(self._queue) > self.steps else None


class Randomizer:
    """An env's randomization: its ranges (checked against the env's ``allowed`` factors) and the values of the
    current episode. The env calls ``new_episode(rng)`` at every reset (it draws the values and starts an empty
    latency queue), then ``action(a, rng)`` and ``deliver(command)`` at every step."""

    def __init__(self, ranges: dict[str, Any], allowed: tuple[str, ...]):
        self.ranges = check_ranges(ranges, allowed)
        self.values: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self._latency = Latency(0)

    def new_episode(self, rng: np.random.Generator) -> dict[str, float]:
        self.values = draw(self.ranges, rng)
        self.stds = noise_stds(self.values)
        self._latency = Latency(int(self.values.get("latency", 0)))
        return self.values

    def scale(self, name: str) -> float:
        """This episode's scale of a physical factor (1 when it is not randomized)."""
        return float(self.values.get(name, 1.0))

    def action(self, a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The action with this episode's action noise, clipped to [-1, 1]."""
        std = self.values.get("action_noise", 0.0)
        if std <= 0:
            return a
        return np.clip(a + rng.normal(0.0, std, size=a.shape), -1.0, 1.0)

    def deliver(self, command: Any) -> Any:
        """The command that reaches the motors now (``Latency.push``)."""
        return self._latency.push(command)
