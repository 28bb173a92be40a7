"""The checkpoint contract (format version 1): atomic save, validated safe load, resume candidates.

A checkpoint is one ``torch.save``d plain dict (docs/ARCHITECTURE.md lists its keys). It is written atomically (temp
file in the same folder, fsync, ``os.replace``, fsync of the folder), so a kill at any instant leaves the old
file or the new one. It is only ever read with ``torch.load(..., weights_only=True)``: a file that would run
code when unpickled is refused. Nothing else in the project calls ``torch.save``/``torch.load`` on
checkpoints. This module knows nothing of training; it moves dicts between memory and disk.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot6.errors import CheckpointError
from robot6.run.fileio import atomic_write_bytes, atomic_write_json

FORMAT_VERSION = 1
AGENT_KEYS = ("policy", "q1", "q2", "q1_target", "q2_target", "policy_opt", "q_opt", "alpha_opt", "log_alpha")
REQUIRED_KEYS = (*AGENT_KEYS, "global_step", "episode", "best_reward", "meta")
OPTIONAL_KEYS = ("rng", "replay", "logger", "evaluation")
POINTER_FILE = "latest_checkpoint.json"
_PERIODIC = re.compile(r"ckpt_(ep|step)_(\d+)\.pth$")


def serialize_checkpoint(state: dict[str, Any]) -> memoryview:
    """The bytes of the checkpoint dict ``state`` (a snapshot: later changes to the tensors do not show)."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    unknown = [k for k in state if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
    if missing or unknown:
        raise ValueError(f"checkpoint dict: missing keys {missing}, unknown keys {unknown}")
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getbuffer()


def save_checkpoint(state: dict[str, Any], *paths: Path) -> int:
    """Serialise the checkpoint dict ``state`` once and write it atomically to each of ``paths``.

    Returns the size in bytes. Raises ``OSError`` when the disk is full or the folder read-only; the
    previous file at that path is then untouched.
    """
    data = serialize_checkpoint(state)
    write_checkpoint(data, *paths)
    return len(data)


def write_checkpoint(data: bytes | memoryview, *paths: Path) -> None:
    """Write the bytes of ``serialize_checkpoint`` atomically to each of ``paths`` (``OSError`` as
    ``save_checkpoint``)."""
    for path in paths:
        atomic_write_bytes(Path(path), data)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and structurally validate a checkpoint; raises ``CheckpointError`` naming the file and why.

    Only plain data and tensors are accepted (``weights_only=True``): a pickle that would import or call
    anything is refused before any of it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        if found:
            raise CheckpointError(
                f"{path}: refused to load: it asks to run {found.group(1)}, and a checkpoint may only hold "
                "tensors and plain data (is it from an untrusted source?)"
            ) from None
        raise CheckpointError(f"{path}: unreadable: not a checkpoint of this project (corrupt pickle data)") from None
    except EOFError:
        raise CheckpointError(f"{path}: unreadable: the file is empty or truncated") from None
    except RuntimeError as e:
        reason = "truncated or corrupt archive" if "zip archive" in str(e) or "central directory" in str(e) else str(e).splitlines()[0]
        raise CheckpointError(f"{path}: unreadable: {reason}") from None
    except OSError as e:
        # PyTorch's zip reader answers EINVAL to an archive cut short.
        reason = "truncated or corrupt archive" if e.errno == errno.EINVAL else (e.strerror or str(e))
        raise CheckpointError(f"{path}: unreadable: {reason}") from None
    except Exception as e:  # any other failure of the unpickler on foreign bytes
        raise CheckpointError(f"{path}: unreadable: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint of this project (holds a {type(state).__name__}, not a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this project (missing keys: {', '.join(missing)})")
    meta = state["meta"]
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: not a checkpoint of this project (no meta.format_version)")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this code supports ({FORMAT_VERSION}); "
            "update Robot6 SAC to load it"
        )
    return state


def read_replay_manifest(path: Path) -> dict[str, int] | None:
    """The ``replay`` entry of a checkpoint, read without loading its tensors (memory-mapped); None when the
    file is unreadable or has none."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        manifest = state.get("replay")
    except Exception:
        return None
    return manifest if isinstance(manifest, dict) else None


def check_compatible(path: Path, meta: dict[str, Any], expected: dict[str, Any]) -> None:
    """Raise ``CheckpointError`` when the checkpoint's env id, dims or action bounds differ from ``expected``.

    ``expected`` has the keys env_id, obs_dim, act_dim, action_low, action_high of the current run.
    """
    names = {"env_id": "env id", "obs_dim": "obs_dim", "act_dim": "act_dim", "action_low": "action low", "action_high": "action high"}
    for key, label in names.items():
        have, want = meta.get(key), expected[key]
        if key.startswith("action_"):
            same = have is not None and np.allclose(np.asarray(have, dtype=np.float64), np.asarray(want, dtype=np.float64))
        else:
            same = have == want
        if not same:
            raise CheckpointError(f"{path}: checkpoint {label} is {have!r} but the current run has {want!r}")


def check_arm(path: Path, meta: dict[str, Any], expected: dict[str, Any], accept_change: bool = False) -> None:
    """Raise ``CheckpointError`` when the arm's URDF (or a mesh it names, or its card) differs from the one the
    checkpoint was trained on, naming both files and hashes; with ``accept_change`` say so and go on. Checkpoints without
    an ``arm`` in their meta (other envs) pass."""
    have, want = meta.get("arm"), expected.get("arm")
    if not (isinstance(have, dict) and isinstance(want, dict)) or have.get("sha256") == want.get("sha256"):
        return
    what = "URDF"
    if "card_sha256" in have or "card_sha256" in want:  # a gripper arm: URDF and card hashed together
        urdf_changed = have.get("urdf_sha256") != want.get("urdf_sha256")
        card_changed = have.get("card_sha256") != want.get("card_sha256")
        what = "URDF and card" if urdf_changed and card_changed else "card" if card_changed else "URDF"
    change = (f"the checkpoint's arm is {have.get('urdf')} (sha256 {str(have.get('sha256'))[:16]}), the current one is "
              f"{want.get('urdf')} (sha256 {str(want.get('sha256'))[:16]})")
    if what != "URDF":
        change += f" (card {have.get('card')} sha256 {str(have.get('card_sha256'))[:16]}, now {want.get('card')} " \
                  f"sha256 {str(want.get('card_sha256'))[:16]})"
    if not accept_change:
        raise CheckpointError(f"{path}: the arm's {what} changed: {change}; to train on with the new file, resume with "
                              f"--urdf {want.get('urdf')} --accept-urdf-change")
    print(f"[RESUME] The arm's {what} changed: {change}; continuing with it (--accept-urdf-change)")


def periodic_number(path: Path) -> int | None:
    """N of ``ckpt_ep_N.pth``/``ckpt_step_N.pth``, else None."""
    m = _PERIODIC.search(Path(path).name)
    return int(m.group(2)) if m else None


def read_pointer(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The content of ``latest_checkpoint.json``, or None when it is absent or unreadable."""
    try:
        data = json.loads((Path(checkpoint_dir) / POINTER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("path"), str) else None


def write_pointer(checkpoint_dir: Path, run: str, path: Path, episode: int, global_step: int, saved_at: str) -> None:
    """Atomically rewrite ``latest_checkpoint.json``; ``path`` is stored relative to ``checkpoint_dir``."""
    checkpoint_dir = Path(checkpoint_dir)
    rel = os.path.relpath(Path(path), checkpoint_dir)
    atomic_write_json(
        checkpoint_dir / POINTER_FILE,
        {"run": run, "path": rel, "episode": episode, "global_step": global_step, "saved_at": saved_at},
    )


def find_resume_candidates(checkpoint_dir: Path) -> list[Path]:
    """Checkpoint files to try for ``--resume``, best first (docs/ARCHITECTURE.md, "Resume rules").

    Order: the target of ``latest_checkpoint.json``; then, for each run folder from the most recently
    saved to the oldest, its ``latest.pth`` followed by its periodic files (``ckpt_ep_N.pth`` and
    ``ckpt_step_N.pth``), the newest first. Files are only listed, not read: the caller skips the
    unreadable ones.
    """
    checkpoint_dir = Path(checkpoint_dir)
    out: list[Path] = []
    pointer = read_pointer(checkpoint_dir)
    if pointer is not None:
        target = checkpoint_dir / pointer["path"]
        if target.is_file():
            out.append(target)
    if checkpoint_dir.is_dir():
        runs = [d for d in checkpoint_dir.iterdir() if d.is_dir() and any(d.glob("*.pth"))]
        runs.sort(key=lambda d: (max(f.stat().st_mtime for f in d.glob("*.pth")), d.name), reverse=True)
        for run in runs:
            periodic = [f for f in run.glob("ckpt_*.pth") if periodic_number(f) is not None]
            # Newest first: by the time each was written (an episode and a step number do not compare).
            periodic.sort(key=lambda f: (f.stat().st_mtime_ns, periodic_number(f)), reverse=True)
            for f in [run / "latest.pth", *periodic]:
                if f.is_file() and f not in out:
                    out.append(f)
    return out


def capture_rng(env: Any, replay_rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    """Every random generator a run draws from, as plain data and tensors (loadable with weights_only): Python's,
    numpy's global one, torch's (and CUDA's), the env's and its action space's, and the replay buffer's."""
    np_state = np.random.get_state()
    version, keys, gauss_next = random.getstate()
    return {
        # The Mersenne Twister's 625 ints as one tensor: pickled one by one they were a quarter of the objects
        # torch.save handles per checkpoint (about 0.4 ms of every save).
        "python": [version, torch.tensor(keys, dtype=torch.int64), gauss_next],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
        "env": env.unwrapped.np_random.bit_generator.state,
        "action_space": env.action_space.np_random.bit_generator.state,
        "replay": replay_rng.bit_generator.state,
    }


def restore_rng(state: dict[str, Any], env: Any, replay_rng: np.random.Generator, device: torch.device) -> None:
    """Inverse of ``capture_rng``."""
    version, keys, gauss_next = state["python"]  # keys: a tensor, or a tuple of ints (format version 1 allows both)
    random.setstate((version, tuple(keys.tolist() if isinstance(keys, torch.Tensor) else keys), gauss_next))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    env.unwrapped.np_random  # noqa: B018  (creates the env's generator if no reset made it yet)
    env.unwrapped.np_random.bit_generator.state = state["env"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
    replay_rng.bit_generator.state = state["replay"]
