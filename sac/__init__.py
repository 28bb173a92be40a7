"""Robot6 SAC: a Soft Actor-Critic trainer whose runs survive interruption.

``training`` is the loop; ``resume``, ``checkpointer``, ``runtime`` and ``logger`` serve a run; ``agent``,
``networks``, ``optim``, ``her`` and ``replay`` learn; ``checkpoint`` and ``replay_store`` are the files.
docs/ARCHITECTURE.md describes the layers and the contracts.
"""

from sac.errors import Robot6Error

__all__ = ["Robot6Error"]
