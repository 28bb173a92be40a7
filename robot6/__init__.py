"""Robot6 SAC: a Soft Actor-Critic trainer for robot arms in PyBullet whose runs survive interruption.

Importing the package registers its env ids with gymnasium (``gymnasium.make("robot6:Robot6Push-v0")`` imports
it). The layers, each importing only those below it (docs/ARCHITECTURE.md):

- the commands, one module each: ``train``, ``evaluate``, ``compare``, ``show``, ``export``, ``sweep``
  (``python -m robot6.<command>``, or the console scripts ``robot6-<command>``);
- ``run``: a training run: its config and presets, the loop, resume, checkpoint files, logs, evaluation;
- ``learn``: the algorithm: networks, the SAC update, optimizers, the replay ring, hindsight relabelling;
- ``envs``: the PyBullet arms and tasks.

``errors`` (``Robot6Error``, the user-fixable mistakes) is below them all.
"""

from robot6 import envs as _envs  # noqa: F401  (registers the env ids)
from robot6.errors import Robot6Error

__all__ = ["Robot6Error"]
