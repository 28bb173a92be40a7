"""Replay buffer: a preallocated numpy ring of transitions, drawn uniformly into typed batches.

The buffer knows nothing of goals or files: hindsight relabelling (``robot6.learn.her``) draws from it through
``draw``/``gather``/``to_batch``, and ``robot6.run.segments`` persists it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A minibatch on the training device. obs/next_obs: (B, obs_dim), act: (B, act_dim) in [-1, 1],
    rew: (B,), terminated: (B,) float (1.0 where the episode truly ended, not on a time-limit truncation)."""

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


FIELDS = ("obs", "act", "rew", "next_obs", "terminated")  # what a Batch holds
STORED = (*FIELDS, "to_end")  # what the buffer and its segment files hold


def split_batch(big: Batch, n: int) -> list[Batch]:
    """``big`` (``n * B`` rows) cut into ``n`` batches of ``B`` rows (views: one ``unbind`` per field, which
    makes the ``n`` views in half the time of ``n`` slices)."""
    if n == 1:
        return [big]
    batch_size = big.rew.shape[0] // n
    fields = [t.view(n, batch_size, *t.shape[1:]).unbind(0) for t in big]
    return [Batch(*views) for views in zip(*fields, strict=True)]


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions in float32 numpy arrays (allocated lazily by the OS).

    ``count`` is the number of transitions ever added; transition ``i`` lives at index ``i % capacity``, so
    the write position is ``count % capacity``. Draws use the buffer's own ``np.random.Generator``
    (``self.rng``), whose state is part of a checkpoint; whoever samples from the buffer (``robot6.learn.her``
    included) draws from it, so a checkpoint covers every draw.

    ``to_end[i]`` is how many transitions from ``i`` to the end of its episode (1 for the last), set by
    ``end_episode``; 0 while the episode runs and for transitions of unknown episodes.

    ``on_device=True`` keeps a copy of the ring on ``device`` (the GPU), refreshed with the new transitions
    in one copy per field just before a gather, and gathers batches there: no host-to-device copy of the
    batch per update. The numpy arrays stay the master copy, and the drawn indices are the same either way.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        on_device: bool = False,
    ):
        self.capacity = int(capacity)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.act = np.zeros((self.capacity, act_dim), dtype=np.float32)
        self.rew = np.zeros(self.capacity, dtype=np.float32)
        self.next_obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.to_end = np.zeros(self.capacity, dtype=np.int32)
        self.count = 0
        self._mirror: dict[str, torch.Tensor] | None = None
        if on_device:
            self._mirror = {
                name: torch.zeros(getattr(self, name).shape, dtype=torch.float32, device=self.device) for name in FIELDS
            }
        self._synced = 0  # transitions before this number are in the mirror

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    @property
    def pos(self) -> int:
        """Index the next transition is written to."""
        return self.count % self.capacity

    @property
    def on_device(self) -> bool:
        """Whether ``gather`` returns tensors on ``device`` (a device mirror) rather than numpy arrays."""
        return self._mirror is not None

    def add(self, obs: np.ndarray, act: np.ndarray, rew: float, next_obs: np.ndarray, terminated: bool) -> None:
        """Store one transition; ``act`` is the normalised action in [-1, 1]."""
        i = self.pos
        self.obs[i] = obs
        self.act[i] = act
        self.rew[i] = rew
        self.next_obs[i] = next_obs
        self.terminated[i] = terminated
        self.to_end[i] = 0  # the slot may hold a finished episode's transition from the ring's previous lap
        self.count += 1

    def end_episode(self, start: int, stop: int) -> None:
        """Mark transitions ``start..stop-1`` (``count`` numbering) as one finished episode (``to_end``)."""
        idx = np.arange(start, stop) % self.capacity
        self.to_end[idx] = stop - np.arange(start, stop)

    def add_batch(self, obs: np.ndarray, act: np.ndarray, rew: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Store ``len(rew)`` transitions at once (at most ``capacity``), of no known episode (``to_end`` 0)."""
        n = len(rew)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        self.put(self.count, {"obs": obs, "act": act, "rew": rew, "next_obs": next_obs, "terminated": terminated})
        self.count += n

    def draw(self, n: int) -> np.ndarray:
        """``n`` ring indices drawn uniformly with replacement from the stored transitions (``self.rng``)."""
        return self.rng.integers(0, len(self), size=n)

    def gather(self, idx: np.ndarray) -> list[np.ndarray] | list[torch.Tensor]:
        """The rows ``idx`` of each of ``FIELDS``: numpy copies (which the caller may edit), or tensors on the
        device with a mirror. ``to_batch`` makes the ``Batch``."""
        if self._mirror is not None:
            self._sync_mirror()
            index = torch.from_numpy(idx).to(self.device)
            return [self._mirror[name].index_select(0, index) for name in FIELDS]
        # np.take gathers rows in less than half fancy indexing's time.
        return [np.take(getattr(self, name), idx, axis=0) for name in FIELDS]

    def to_batch(self, fields: list[np.ndarray] | list[torch.Tensor]) -> Batch:
        """``gather``'s fields as a ``Batch`` on the training device."""
        return Batch(*(torch.as_tensor(f).to(self.device, non_blocking=True) for f in fields))

    def sample(self, batch_size: int) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement, as tensors on ``self.device``."""
        return self.to_batch(self.gather(self.draw(batch_size)))

    def sample_many(self, batch_size: int, n: int) -> list[Batch]:
        """``n`` batches of ``batch_size`` from one ``sample(batch_size * n)``. The updates of one env step
        see the same buffer, so they can share one draw; each draw costs ~200 us of numpy and indexing in a
        training loop whatever its size."""
        return split_batch(self.sample(batch_size * n), n)

    def _sync_mirror(self) -> None:
        """Copy the transitions added since the last sync into the device mirror (at most two slices)."""
        start = max(self._synced, self.count - self.capacity)
        while start < self.count:
            i = start % self.capacity
            n = min(self.count - start, self.capacity - i)
            for name in FIELDS:
                self._mirror[name][i : i + n].copy_(torch.from_numpy(getattr(self, name)[i : i + n]))
            start += n
        self._synced = self.count

    def transitions(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Copies of transitions ``start`` to ``stop - 1`` (by ``count`` numbering; all still in the ring)."""
        if not (max(0, self.count - self.capacity) <= start <= stop <= self.count):
            raise IndexError(f"transitions {start}..{stop} are not all in the buffer (count {self.count})")
        if stop - start <= self.capacity - start % self.capacity:  # contiguous in the ring: slice, no index array
            i = start % self.capacity
            return {name: getattr(self, name)[i : i + stop - start].copy() for name in STORED}
        idx = np.arange(start, stop) % self.capacity
        return {name: getattr(self, name)[idx] for name in STORED}

    def put(self, start: int, data: dict[str, np.ndarray]) -> None:
        """Write transitions numbered from ``start`` (inverse of ``transitions``); ``count`` is not changed.
        A missing ``to_end`` (transitions of no known episode) is written as 0."""
        n = len(data["rew"])
        self._synced = min(self._synced, start)  # the mirror must be refreshed from here on
        i = start % self.capacity
        where = slice(i, i + n) if i + n <= self.capacity else np.arange(start, start + n) % self.capacity
        for name in FIELDS:
            getattr(self, name)[where] = data[name]
        self.to_end[where] = data.get("to_end", 0)
