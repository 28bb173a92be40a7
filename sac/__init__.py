"""Robot6 SAC: a Soft Actor-Critic trainer whose runs survive interruption.

Modules: ``config`` (the run's hyperparameters), ``networks`` (actor and twin critic), ``agent`` (the SAC
update), ``replay`` (the replay buffer), ``checkpoint`` (the on-disk contract), ``logger`` (TensorBoard and
CSV), ``training`` (the loop).
"""

from sac.errors import Robot6Error

__all__ = ["Robot6Error"]
