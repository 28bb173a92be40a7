"""A run's checkpoint files: which are due at an episode end, written by a background thread, the replay
store beside them, and tidying (``--keep-last``, replay segments no checkpoint needs)."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from robot6.learn.replay import ReplayBuffer
from robot6.run import checkpoint as ckpt
from robot6.run.fileio import BackgroundWriter, atomic_write_bytes
from robot6.run.segments import ReplayStore


class Logs(Protocol):
    """What a save needs of the run's logs (``robot6.run.logger.RunLogger``)."""

    def hand_over(self) -> None: ...
    def sync(self) -> None: ...


@dataclass
class _SaveInFlight:
    """A save whose files the background writer is writing."""

    episode: int
    names: list[str]
    manifest: dict[str, int]
    store_mark: tuple[int, int, int, int, bool]
    periodic: bool


class Checkpointer:
    """Writes the checkpoints of the run folder ``run_dir`` (and the pointer in its parent).

    ``save`` serialises the state now and has the files (replay segment, checkpoints, pointer, in that order)
    written by a background thread while the next episode runs; ``finish`` collects the result. A failed
    save (disk full, read-only folder) is reported and training goes on: the files written before stay valid
    because every write is atomic. The replay store is rewound so that the next save writes its data again.
    """

    def __init__(self, run_dir: Path, run_name: str, ckpt_every: int, save_every_steps: int | None, keep_last: int | None):
        self.run_dir, self.run_name = Path(run_dir), run_name
        self.ckpt_every, self.save_every_steps, self.keep_last = ckpt_every, save_every_steps, keep_last
        for stale in [*self.run_dir.glob("*.tmp"), *self.run_dir.glob("replay/*.tmp")]:
            stale.unlink(missing_ok=True)  # left by a process killed in the middle of a save
        self.store = ReplayStore(self.run_dir / "replay")
        # Replay manifests of the checkpoints on disk in this run, by file name (to prune unused segments).
        self.manifests: dict[str, dict[str, int]] = {}
        self.last_path: Path | None = None
        self._writer = BackgroundWriter()
        self._in_flight: _SaveInFlight | None = None

    def restore_replay(self, path: Path, manifest: dict[str, int] | None, source_dir: Path, in_place: bool,
                       replay: ReplayBuffer) -> None:
        """Fill ``replay`` from the segments of checkpoint ``path`` (in ``source_dir``), reporting what was found.
        ``in_place``: the run continues in ``source_dir``, so its store and manifests become this one's."""
        if manifest is None:
            print(f"[RESUME] {path} holds no replay buffer: continuing with an empty one")
            return
        source = ReplayStore(source_dir / "replay", generation=int(manifest["generation"]))
        if in_place:
            source.discard_after(int(manifest["count"]))  # written after this checkpoint, never used
        t0 = time.perf_counter()
        report = source.load(replay, manifest)
        if in_place:
            self.store = source
            for f in self.run_dir.glob("*.pth"):
                m = ckpt.read_replay_manifest(f)
                if m is not None:
                    self.manifests[f.name] = m
            self.store.prune(list(self.manifests.values()))
        if not report.complete:
            print(f"[RESUME] Replay buffer: {report.missing_segments} segment(s) missing or unreadable; restored "
                  f"{report.loaded:,} of {report.expected:,} transitions and continuing with those")
        else:
            print(f"[RESUME] Replay buffer: {report.loaded:,} transitions restored in {time.perf_counter() - t0:.2f} s")

    def due(self, episode: int, global_step: int, episode_length: int, is_best: bool) -> list[str]:
        """The files to write at the end of episode ``episode`` (1-based count) at ``global_step``."""
        names = ["latest.pth"] + (["best.pth"] if is_best else [])
        if episode % self.ckpt_every == 0:
            names.append(f"ckpt_ep_{episode}.pth")
        every = self.save_every_steps
        if every is not None and global_step // every > (global_step - episode_length) // every:
            names.append(f"ckpt_step_{global_step}.pth")
        return names

    def save(self, names: list[str], state: dict[str, Any], replay: ReplayBuffer, logs: Logs) -> None:
        """Checkpoint ``state`` (the checkpoint dict without ``replay``, whose meta gets ``saved_at``) as the
        files ``names``, with the transitions ``replay`` gained since the last save; returns once the state is
        serialised (see the class docstring)."""
        self.finish()
        saved_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        mark = self.store.bookmark()
        segments: list[tuple[Path, bytes]] = []
        try:
            logs.hand_over()  # logs first (made durable by write()): a checkpoint never runs ahead of them
            manifest = self.store.save(replay, write=lambda path, data: segments.append((path, data)))
            data = ckpt.serialize_checkpoint(
                {**state, "meta": {**state["meta"], "saved_at": saved_at}, "replay": manifest}
            )
        except OSError as e:
            self.store.rewind(mark)
            self._warn(state["episode"], e)
            return
        paths = [self.run_dir / n for n in names]
        pointer = (self.run_dir.parent, self.run_name, paths[0], state["episode"], state["global_step"], saved_at)

        def write() -> None:
            logs.sync()
            for path, blob in segments:  # the replay data first: a checkpoint never points at missing data
                atomic_write_bytes(path, blob)
            ckpt.write_checkpoint(data, *paths)
            ckpt.write_pointer(*pointer)

        self._writer.submit(write)
        periodic = any(n.startswith("ckpt_") for n in names)
        self._in_flight = _SaveInFlight(state["episode"], names, manifest, mark, periodic)

    def finish(self) -> None:
        """Wait for the save in flight; on success record its files (and tidy up when due), on an
        ``OSError`` report it and rewind the replay store so that the next save writes its data again."""
        save, self._in_flight = self._in_flight, None
        if save is None:
            return
        error = self._writer.wait()
        if error is None:
            self.last_path = self.run_dir / "latest.pth"
            for n in save.names:
                self.manifests[n] = save.manifest
            if save.periodic or self.store.needs_prune:
                self._tidy()
        elif isinstance(error, OSError):
            self.store.rewind(save.store_mark)
            self._warn(save.episode, error)
        else:
            raise error

    def close(self) -> None:
        """``finish``, then stop the writer thread."""
        try:
            self.finish()
        finally:
            self._writer.close()

    def _warn(self, episode: int, error: OSError) -> None:
        tqdm.write(f"WARNING: could not save the checkpoint of episode {episode} in {self.run_dir} ({error}); "
                   f"the previous checkpoint stays valid and training goes on", file=sys.stderr)

    def _tidy(self) -> None:
        """Apply --keep-last to periodic checkpoints and delete replay segments no checkpoint needs."""
        keep = self.keep_last
        if keep is not None:
            files = sorted(
                (f for f in self.run_dir.glob("ckpt_*.pth") if ckpt.periodic_number(f) is not None),
                key=lambda f: (f.stat().st_mtime_ns, f.name),
            )
            for f in files[:-keep] if len(files) > keep else []:
                f.unlink(missing_ok=True)
                self.manifests.pop(f.name, None)
        self.manifests = {n: m for n, m in self.manifests.items() if (self.run_dir / n).is_file()}
        self.store.prune(list(self.manifests.values()))
