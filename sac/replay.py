"""Replay buffer: a preallocated numpy ring of transitions, sampled uniformly into typed batches, and its
incremental on-disk persistence (``ReplayStore``)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from sac.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from sac.her import GoalSpec


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


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions in float32 numpy arrays (allocated lazily by the OS).

    ``count`` is the number of transitions ever added; transition ``i`` lives at index ``i % capacity``, so
    the write position is ``count % capacity``. Sampling draws indices with the buffer's own
    ``np.random.Generator`` (``self.rng``), whose state is part of a checkpoint.

    ``on_device=True`` keeps a copy of the ring on ``device`` (the GPU), refreshed with the new transitions
    in one copy per field just before a sample, and gathers batches there: no host-to-device copy of the
    batch per update. The numpy arrays stay the master copy (persistence, hindsight relabelling), and the
    sampled indices are the same either way; goals relabelled at sampling time are drawn and rewarded on the
    host (the env's ``compute_reward`` is numpy) and written into the gathered batch, so the batches are too.

    ``to_end[i]`` is how many transitions from ``i`` to the end of its episode (1 for the last), set by
    ``end_episode``; 0 while the episode runs. With ``relabel_on_sample`` (hindsight relabelling at sampling
    time, as Stable-Baselines3's ``HerReplayBuffer``), ``sample`` gives each drawn transition of a finished
    episode, with probability k/(k+1), the goal achieved at a uniformly drawn step of the rest of its episode.
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
        self._her: tuple[GoalSpec, int] | None = None
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

    def relabel_on_sample(self, spec: GoalSpec, k: int) -> None:
        """Relabel goals in ``sample`` (see the class docstring); ``k`` relabelled per original on average."""
        self._her = (spec, k)

    def add_batch(self, obs: np.ndarray, act: np.ndarray, rew: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Store ``len(rew)`` transitions at once (at most ``capacity``)."""
        n = len(rew)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        self.put(self.count, {"obs": obs, "act": act, "rew": rew, "next_obs": next_obs, "terminated": terminated})
        self.count += n

    def sample(self, batch_size: int) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement, as tensors on ``self.device``."""
        idx = self.rng.integers(0, len(self), size=batch_size)
        relabel = self._draw_goals(idx) if self._her is not None else None
        if self._mirror is not None:
            self._sync_mirror()
            index = torch.from_numpy(idx).to(self.device)
            batch = [self._mirror[name].index_select(0, index) for name in FIELDS]
            if relabel is not None:  # drawn and rewarded on the host (the env's compute_reward), written here
                self._write_goals(batch, [torch.from_numpy(a).to(self.device) for a in relabel])
            return Batch(*batch)
        # Copies (relabelling leaves the ring alone); np.take gathers rows in less than half fancy indexing's time.
        arrays = [np.take(getattr(self, name), idx, axis=0) for name in FIELDS]
        if relabel is not None:
            self._write_goals(arrays, relabel)
        return Batch(*(torch.from_numpy(a).to(self.device, non_blocking=True) for a in arrays))

    def sample_many(self, batch_size: int, n: int) -> list[Batch]:
        """``n`` batches of ``batch_size``: one ``sample(batch_size * n)`` cut into ``n`` (row views). The
        updates of one env step see the same buffer, so they can share one draw; each call of ``sample``
        costs ~200 us of numpy and indexing in a training loop whatever its size."""
        big = self.sample(batch_size * n)
        if n == 1:
            return [big]
        # One unbind per field makes its n views (40 slices took twice as long).
        fields = [t.view(n, batch_size, *t.shape[1:]).unbind(0) for t in big]
        return [Batch(*views) for views in zip(*fields, strict=True)]

    def _write_goals(self, fields: list, relabel: list | tuple) -> None:
        """Write ``_draw_goals``' (rows, goals, rewards) into a batch's ``FIELDS``, numpy arrays or tensors alike."""
        rows, goals, rewards = relabel
        obs, _, rew, next_obs, _ = fields
        desired = self._her[0].desired
        obs[rows, desired] = goals
        next_obs[rows, desired] = goals
        rew[rows] = rewards

    def _draw_goals(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hindsight goals for the drawn transitions ``idx``: the batch rows to relabel, their new goals (the
        goal achieved at a uniform step of the rest of the episode) and rewards (float32), from ``self.rng``."""
        spec, k = self._her
        to_end = self.to_end[idx]
        chosen = (self.rng.random(len(idx)) < k / (k + 1)) & (to_end > 0)
        i, left = idx[chosen], to_end[chosen]
        future = (i + (self.rng.random(len(i)) * left).astype(np.int64)) % self.capacity
        goals = self.next_obs[future, spec.achieved]
        rewards = spec.compute_reward(self.next_obs[i, spec.achieved], goals, {}).astype(np.float32)
        return np.flatnonzero(chosen), goals, rewards

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
        A missing ``to_end`` (stored copies, segments written before it existed) is written as 0."""
        n = len(data["rew"])
        self._synced = min(self._synced, start)  # the mirror must be refreshed from here on
        i = start % self.capacity
        where = slice(i, i + n) if i + n <= self.capacity else np.arange(start, start + n) % self.capacity
        for name in FIELDS:
            getattr(self, name)[where] = data[name]
        self.to_end[where] = data.get("to_end", 0)  # 0: no episode end known (copies, older segments)


SEGMENT_RE = re.compile(r"^g(\d+)_(\d+)_(\d+)\.pt$")


def segment_name(generation: int, start: int, stop: int) -> str:
    """File name of the segment holding transitions ``start`` to ``stop - 1`` of a generation."""
    return f"g{generation:03d}_{start:012d}_{stop:012d}.pt"


def list_segments(folder: Path) -> list[tuple[int, int, int, Path]]:
    """(generation, start, stop, path) of every segment file in ``folder``, sorted."""
    out = []
    if Path(folder).is_dir():
        for f in Path(folder).iterdir():
            m = SEGMENT_RE.match(f.name)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), f))
    return sorted(out)


@dataclass
class ReplayLoadReport:
    """How much of a checkpoint's replay window was found on disk."""

    expected: int
    loaded: int
    missing_segments: int

    @property
    def complete(self) -> bool:
        return self.loaded == self.expected


MERGE_EVERY = 64  # small segments written before they are merged into one


class ReplayStore:
    """Incremental, append-only persistence of a ``ReplayBuffer`` under ``checkpoints/<run>/replay/``.

    Each ``save`` writes one segment file (atomically) with the transitions added since the previous save,
    so a per-episode checkpoint costs O(episode), not O(buffer). Every ``MERGE_EVERY`` saves, the segment
    written instead spans everything since the previous merge (read from the ring in memory), which keeps
    the folder small and resumes fast; ``prune`` later deletes the small segments it covers.

    A checkpoint stores the returned manifest (generation, count, capacity). ``load`` rebuilds the ring
    exactly as it was at that count from segments covering the window [count - capacity, count); data past
    the count (written after the checkpoint) is never used. A generation starts afresh (one full-window
    segment) when a run forks into a new folder or when segments were lost.
    """

    def __init__(self, folder: Path, generation: int = 0, persisted: int = 0):
        self.folder = Path(folder)
        self.generation = generation
        self.persisted = persisted  # transitions before this number are on disk (this generation)
        self._merge_from = persisted  # where the small segments since the last merge start
        self._small = 0
        self.needs_prune = False

    def save(self, buffer: ReplayBuffer, write: Callable[[Path, bytes], None] = atomic_write_bytes) -> dict[str, int]:
        """Write the transitions added since the last save; returns the manifest for the checkpoint.

        ``write(path, data)`` writes the segment file: atomically, now, by default; a background writer
        queues it instead, and if that write then fails, ``rewind`` to the ``bookmark`` taken before this call.
        """
        lo = max(0, buffer.count - buffer.capacity)
        start = max(self.persisted, lo)
        if buffer.count > start:
            if self._small + 1 >= MERGE_EVERY and max(self._merge_from, lo) < start:
                start = max(self._merge_from, lo)
                self._merge_from, self._small = buffer.count, 0
                self.needs_prune = True  # once the checkpoint lands, the merged small segments can go
            else:
                self._small += 1
            self._write(start, buffer.transitions(start, buffer.count), write)
            self.persisted = buffer.count
        return {"generation": self.generation, "count": buffer.count, "capacity": buffer.capacity}

    def bookmark(self) -> tuple[int, int, int, int, bool]:
        """The store's bookkeeping, for ``rewind`` after a deferred ``save`` write failed."""
        return (self.generation, self.persisted, self._merge_from, self._small, self.needs_prune)

    def rewind(self, mark: tuple[int, int, int, int, bool]) -> None:
        """Back to ``bookmark``'s state: the next ``save`` writes again what the failed one did not."""
        self.generation, self.persisted, self._merge_from, self._small, self.needs_prune = mark

    def _write(self, start: int, data: dict[str, np.ndarray], write: Callable[[Path, bytes], None] = atomic_write_bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        blob = io.BytesIO()
        torch.save({k: torch.from_numpy(v) for k, v in data.items()}, blob)
        stop = start + len(data["rew"])
        write(self.folder / segment_name(self.generation, start, stop), blob.getbuffer())

    def load(self, buffer: ReplayBuffer, manifest: dict[str, int]) -> ReplayLoadReport:
        """Fill the empty ``buffer`` with the transitions of ``manifest``; exact when the report is complete.

        Missing or unreadable segments leave gaps: the transitions found are then packed in order from
        position 0 (so sampling never sees empty slots) and the store moves to a new generation, whose
        first save writes the whole buffer.
        """
        gen, count = int(manifest["generation"]), int(manifest["count"])
        lo = max(0, count - buffer.capacity)
        segs = self._window_segments(gen, lo, count)
        chunks: list[tuple[int, dict[str, np.ndarray]]] = []
        missing, p = 0, lo
        while p < count:
            # Of the segments holding transition p, the one reaching furthest (up to the count) first.
            covering = sorted(((min(e, count), s, f) for s, e, f in segs if s <= p < e), key=lambda c: c[0], reverse=True)
            for reach, s, f in covering:
                data = _read_segment(f)
                if data is not None and len(data["rew"]) >= reach - s:
                    chunks.append((p, {k: v[p - s : reach - s] for k, v in data.items()}))
                    p = reach
                    break
            else:
                missing += 1
                later = [s for s, _, _ in segs if s > p]
                p = min(later) if later else count
        loaded = sum(len(c["rew"]) for _, c in chunks)
        if loaded == count - lo:
            for start, chunk in chunks:
                buffer.put(start, chunk)
            buffer.count = count
            self.generation = gen
            self.persisted = self._merge_from = count
        else:
            n = 0
            for _, chunk in chunks:
                buffer.put(n, chunk)
                n += len(chunk["rew"])
            buffer.count = n
            self.generation, self.persisted, self._merge_from = gen + 1, 0, 0
        self._small = 0
        return ReplayLoadReport(expected=count - lo, loaded=loaded, missing_segments=missing)

    def _window_segments(self, generation: int, lo: int, count: int) -> list[tuple[int, int, Path]]:
        """(start, stop, path) of the segments of ``generation`` holding any of transitions ``lo..count-1``."""
        return [(s, e, f) for g, s, e, f in list_segments(self.folder) if g == generation and s < count and e > lo]

    def covered(self, manifest: dict[str, int]) -> tuple[int, int]:
        """(transitions of ``manifest``'s window that segment files cover, transitions in the window), judged
        by file names alone: nothing is read."""
        count = int(manifest["count"])
        lo = max(0, count - int(manifest["capacity"]))
        covered, p = 0, lo
        for s, e, _ in sorted(self._window_segments(int(manifest["generation"]), lo, count)):
            p = max(p, s)  # past a gap, as ``load`` goes on with the next segment
            if p < e:
                covered += min(e, count) - p
                p = min(e, count)
        return covered, count - lo

    def discard_after(self, count: int) -> None:
        """Drop what the current generation holds past ``count``: written after a checkpoint that never
        landed, it would disagree with the continuation. Called when a run continues in place from the
        checkpoint at ``count``; a segment straddling ``count`` is cut to end there."""
        for g, s, e, f in list_segments(self.folder):
            if g != self.generation or e <= count:
                continue
            if s < count:
                data = _read_segment(f)
                if data is not None:
                    self._write(s, {k: v[: count - s] for k, v in data.items()})
            f.unlink(missing_ok=True)

    def prune(self, manifests: list[dict[str, int]]) -> int:
        """Delete segments no checkpoint in ``manifests`` (those still on disk) needs: those before every
        checkpoint's window, those of generations no checkpoint uses, and those inside a larger segment.
        Returns how many were deleted."""
        keep_from: dict[int, int] = {}
        for m in manifests:
            g, lo = int(m["generation"]), max(0, int(m["count"]) - int(m["capacity"]))
            keep_from[g] = min(keep_from.get(g, lo), lo)
        keep_from.setdefault(self.generation, self.persisted)  # the next save continues this generation
        deleted, reach = 0, (-1, -1)  # (generation, furthest stop) of the segments seen so far
        for g, s, e, f in sorted(list_segments(self.folder), key=lambda x: (x[0], x[1], -x[2])):
            covered = reach[0] == g and e <= reach[1]  # an earlier-starting segment already holds it all
            reach = (g, max(e, reach[1]) if reach[0] == g else e)
            if g not in keep_from or e <= keep_from[g] or covered:
                f.unlink(missing_ok=True)
                deleted += 1
        self.needs_prune = False
        return deleted


def _read_segment(path: Path) -> dict[str, np.ndarray] | None:
    try:
        data = torch.load(path, weights_only=True)
        arrays = {k: data[k].numpy() for k in FIELDS}
        if "to_end" in data:  # segments written before it existed have none: put() writes 0
            arrays["to_end"] = data["to_end"].numpy()
    except Exception:  # missing, truncated or foreign file: treated as a gap
        return None
    n = len(arrays["rew"])
    return arrays if all(len(a) == n for a in arrays.values()) else None
