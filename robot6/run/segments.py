"""The replay buffer on disk: append-only segment files under ``checkpoints/<run>/replay/``.

A checkpoint holds only a manifest (generation, count, capacity) of the buffer; the transitions themselves
live in segment files written once and never rewritten, so that a per-episode checkpoint costs O(episode),
not O(buffer). See docs/ARCHITECTURE.md, "The checkpoint contract".
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robot6.learn.replay import FIELDS, ReplayBuffer
from robot6.run.fileio import atomic_write_bytes

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
        for g, _, e, f in sorted(list_segments(self.folder), key=lambda x: (x[0], x[1], -x[2])):
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
        if "to_end" in data:  # a segment without it holds transitions of no known episode: put() writes 0
            arrays["to_end"] = data["to_end"].numpy()
    except Exception:  # missing, truncated or foreign file: treated as a gap
        return None
    n = len(arrays["rew"])
    return arrays if all(len(a) == n for a in arrays.values()) else None
