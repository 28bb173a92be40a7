"""The training loop: episodes of env steps and SAC updates, a checkpoint at every episode end, resume.

``train(config)`` is the whole run. At each episode boundary it gathers the complete state (agent, counters,
every RNG, logger) into one checkpoint dict, so that ``--resume`` continues as if nothing had happened.
Files are written through ``sac.checkpoint`` and ``sac.logger``; the agent never sees a path.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime as _dt
import json
import os
import platform
import random
import signal
import sys
import sysconfig
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from sac import checkpoint as ckpt
from sac.agent import SAC
from sac.config import RUN_FIELDS, Config, flag_of
from sac.errors import CheckpointError, ConfigError
from sac.fileio import BackgroundWriter, atomic_write_bytes, atomic_write_json
from sac.her import FlattenGoalObservation, goal_spec, is_goal_dict_space, relabel_episode
from sac.logger import RunLogger
from sac.replay import ReplayBuffer, ReplayStore

# Fields a resumed run cannot change: they define the environment or the shape of saved tensors.
FIXED_ON_RESUME = ("env_id", "hidden", "buffer_size")
# Fields always taken from the current command line, never from the checkpoint.
CURRENT_ON_RESUME = ("checkpoint_dir", "log_dir", "resume", "resume_ckpt")
SUCCESS_WINDOW = 20  # episodes in the progress bar's success rate


@dataclass
class TrainResult:
    """What a finished (or interrupted) ``train`` call leaves behind."""

    run_name: str
    run_dir: Path
    log_dir: Path
    episode: int
    global_step: int
    last_checkpoint: Path | None
    interrupted: bool = False


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU. Raises ``ConfigError`` for CUDA without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is available to PyTorch here; use --device cpu or auto")
    return torch.device(name)


def check_compile(device: torch.device) -> None:
    """``--compile`` on a CPU: torch.compile builds C++ code at the first update, a Python extension module
    (its C++ wrapper); ``ConfigError`` now, before any training, when this machine has no C++ compiler it can
    use (``$CXX``, else g++) or no Python headers (``Python.h``) to build against."""
    if device.type != "cpu":
        return  # CUDA: a CUDA graph, nothing to build
    include = sysconfig.get_paths().get("include") or ""
    if not os.path.isfile(os.path.join(include, "Python.h")):
        raise ConfigError(
            f"--compile on a CPU builds a Python extension and needs the Python headers, which are not in "
            f"{include or 'this Python'} (Python.h); install them (e.g. apt install python3-dev), or train "
            "without --compile"
        )
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # another torch layout: torch.compile will say it itself
        return
    try:
        get_cpp_compiler()
    except Exception as e:  # torch._inductor.exc.InvalidCxxCompiler
        raise ConfigError(
            f"--compile on a CPU needs a C++ compiler for torch.compile and found none ({e}); "
            "install g++ (or set CXX), or train without --compile"
        ) from None


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with this project's envs registered; ``ConfigError`` for a bad id or space."""
    import envs  # noqa: F401  (registers Robot6Reach-v0)

    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise ConfigError(f"--env {env_id}: cannot make this environment: {str(e).splitlines()[0]}") from None
    except ModuleNotFoundError as e:
        raise ConfigError(f"--env {env_id}: a package it needs is not installed ({e.name})") from None
    if is_goal_dict_space(env.observation_space):
        env = FlattenGoalObservation(env)  # gymnasium-robotics style goal env: one flat vector, goals known
    for what, space in (("observation", env.observation_space), ("action", env.action_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            env.close()
            raise ConfigError(
                f"--env {env_id}: its {what} space is {space}; SAC here needs flat Box observation and action spaces"
            )
    if not (np.all(np.isfinite(env.action_space.low)) and np.all(np.isfinite(env.action_space.high))):
        env.close()
        raise ConfigError(f"--env {env_id}: its action space {env.action_space} is unbounded; SAC needs finite bounds")
    return env


def env_signature(env_id: str, env: gym.Env) -> dict[str, Any]:
    """What a checkpoint must match to be resumed in ``env``."""
    return {
        "env_id": env_id,
        "obs_dim": int(env.observation_space.shape[0]),
        "act_dim": int(env.action_space.shape[0]),
        "action_low": env.action_space.low.astype(np.float64).tolist(),
        "action_high": env.action_space.high.astype(np.float64).tolist(),
    }


def new_run_name(*parents: Path) -> str:
    """``sac_YYYYMMDD-HHMMSS``, with ``-2``, ``-3``... when a folder of that name already exists."""
    base = time.strftime("sac_%Y%m%d-%H%M%S")
    name, n = base, 1
    while any((Path(p) / name).exists() for p in parents):
        n += 1
        name = f"{base}-{n}"
    return name


def capture_rng(env: gym.Env, replay: ReplayBuffer, device: torch.device) -> dict[str, Any]:
    """Every random generator the run draws from, as plain data and tensors (loadable with weights_only)."""
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
        "replay": replay.rng.bit_generator.state,
    }


def restore_rng(state: dict[str, Any], env: gym.Env, replay: ReplayBuffer, device: torch.device) -> None:
    """Inverse of ``capture_rng``."""
    version, keys, gauss_next = state["python"]  # keys: a tensor, or in older checkpoints a tuple of ints
    random.setstate((version, tuple(keys.tolist() if isinstance(keys, torch.Tensor) else keys), gauss_next))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    env.unwrapped.np_random.bit_generator.state = state["env"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
    replay.rng.bit_generator.state = state["replay"]


def lock_run_dir(run_dir: Path) -> Any:
    """Hold an exclusive lock on ``run_dir`` for this process's lifetime (released by the OS even on kill -9).

    Two processes training the same run would interleave their checkpoints and logs; the second one gets a
    ``ConfigError`` instead. No-op where ``fcntl`` does not exist (Windows).
    """
    try:
        import fcntl
    except ImportError:
        return None
    f = open(run_dir / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        owner = f.read().strip() or "?"
        f.close()
        raise ConfigError(f"{run_dir} is being trained by another process (pid {owner}); stop it or wait for it to finish") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "gymnasium": str(gym.__version__),
    }


@dataclass
class _Resume:
    path: Path
    state: dict[str, Any]
    run_name: str
    in_place: bool
    parent_run_dir: Path  # the checkpoint folder the file lives in


def _check_env_id(path: Path, state: dict[str, Any], config: Config, given: set[str]) -> None:
    saved_env = state["meta"].get("env_id")
    if "env_id" in given and saved_env != config.env_id:
        raise CheckpointError(
            f"{path}: checkpoint env id is {saved_env!r} but --env is {config.env_id!r}; drop --env to continue "
            "that run, or choose another checkpoint with --resume-ckpt"
        )


def find_resume(config: Config, given: set[str]) -> _Resume | None:
    """The checkpoint ``--resume`` continues from, or None (after saying so) when there is none.

    With ``--resume-ckpt`` that file must be valid (else ``CheckpointError``). Otherwise the candidates of
    ``checkpoint.find_resume_candidates`` are tried in order; unreadable ones are reported and skipped.
    """
    checkpoint_dir = Path(config.checkpoint_dir)
    if config.resume_ckpt is not None:
        path = Path(config.resume_ckpt)
        state = ckpt.load_checkpoint(path)
    else:
        for path in ckpt.find_resume_candidates(checkpoint_dir):
            try:
                state = ckpt.load_checkpoint(path)
            except CheckpointError as e:
                print(f"[RESUME] Skipping {e}; trying the next newest checkpoint")
                continue
            break
        else:
            print("[RESUME] Checkpoint not found, starting from scratch")
            return None
    _check_env_id(path, state, config, given)
    run_dir = path.parent
    in_place = path.resolve().parent.parent == checkpoint_dir.resolve() and _is_newest_state(path, state)
    run_name = run_dir.name if in_place else new_run_name(checkpoint_dir, Path(config.log_dir))
    return _Resume(path=path, state=state, run_name=run_name, in_place=in_place, parent_run_dir=run_dir)


def _is_newest_state(path: Path, state: dict[str, Any]) -> bool:
    """Whether ``state`` is as far as its run went (else resuming it must fork, not overwrite history)."""
    latest = path.parent / "latest.pth"
    if path.name == "latest.pth" or not latest.is_file():
        return True
    try:
        newest = ckpt.load_checkpoint(latest)
    except CheckpointError:
        return True  # the newest state is lost; this is the best there is
    return state["global_step"] >= newest["global_step"]


def merge_resume_config(config: Config, given: set[str], saved: dict[str, Any], path: Path) -> Config:
    """The config a resumed run uses: the checkpoint's, overridden by the flags given now (reported)."""
    # Settings a checkpoint from before them lacks take the behaviour of its time, not today's default:
    # --her-relabel stored copies, every update trained the actor (--policy-delay 1).
    old = Config.from_dict({"her_relabel": "store", "policy_delay": 1, **saved})
    values = {}
    for f in dataclasses.fields(Config):
        now, before = getattr(config, f.name), getattr(old, f.name)
        if f.name in CURRENT_ON_RESUME or (f.name in given and now == before):
            values[f.name] = now
        elif f.name in given:
            if f.name in FIXED_ON_RESUME:
                raise CheckpointError(
                    f"{path}: {flag_of(f.name)} {_fmt(now)} differs from the checkpoint's {_fmt(before)}, and it "
                    "cannot change on resume; drop the flag or start a new run without --resume"
                )
            if f.name not in RUN_FIELDS:
                print(f"[RESUME] {flag_of(f.name)} {_fmt(now)} differs from the checkpoint's {_fmt(before)}: using {_fmt(now)}")
            values[f.name] = now
        else:
            values[f.name] = before
    return Config(**values)


def _fmt(v: Any) -> str:
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


class _StopRequest:
    """SIGINT/SIGTERM: the first asks the loop to stop at the next episode end; the second exits at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            # The last checkpoint on disk is complete: saves are atomic, so leaving mid-save is safe.
            sys.stderr.write("\nSecond signal: exiting now; the last saved checkpoint is intact.\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.requested = True
        sys.stderr.write(
            f"\n{signal.Signals(signum).name} received: finishing this episode and saving (signal again to quit now)\n"
        )
        sys.stderr.flush()


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS at once.

    Each update allocates and frees tensors of a few hundred KB. glibc serves those with fresh ``mmap``s or
    trims the heap after freeing them, so every update took ~250 page faults (zeroed pages) on a 2-core CPU;
    with these settings it takes ~1 and runs a few percent faster. Blocks over 32 MB (the replay arrays)
    are still mmapped. The setting is process-wide; nothing happens off glibc (returns False).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_trim_threshold, 512 << 20)) and bool(mallopt(m_mmap_threshold, 32 << 20))


def flush_denormals() -> bool:
    """Have the CPU treat denormal floats (below ~1.2e-38) as zero in this process's torch ops (``train`` calls
    it; tests/test_agent.py checks it with two threads); True where the CPU supports it.

    Adam's moments of weights whose gradient stays zero (ReLU units that never fire) decay geometrically into
    the denormal range within a few thousand updates, and arithmetic on denormals is tens of times slower on
    x86: in a default run of Robot6Reach-v0 the fused Adam kernel took 280 us per call instead of 30. Flushed,
    the same run takes 12-15% less time, and its network weights come out bit for bit the same (only those
    moments differ, 0 instead of ~1e-40: an Adam step of lr * 1e-40 / 1e-8 changes no float32 weight).
    """
    return torch.set_flush_denormal(True)


def train(config: Config, given: Iterable[str] | None = None) -> TrainResult:
    """Run (or resume) training as ``config`` says; returns where the run's files are.

    ``given``: names of the ``Config`` fields set explicitly on the command line. On resume the checkpoint's
    config is used for every other field; None means the fields that differ from ``Config()``'s defaults.
    Raises ``Robot6Error`` for anything the user can fix.
    """
    config.validate()
    if given is None:
        defaults = Config()
        given = {f.name for f in dataclasses.fields(Config) if getattr(config, f.name) != getattr(defaults, f.name)}
    given = set(given)
    if {"episodes", "total_steps"} <= given and config.total_steps is not None:
        raise ConfigError("--episodes and --total-steps both set the length of the run: give only one")
    resume = find_resume(config, given) if config.resume else None
    if resume is not None:
        config = merge_resume_config(config, given, resume.state["meta"].get("config", {}), resume.path)
        config.validate()
    if "episodes" in given:  # --episodes given now replaces a --total-steps of the checkpoint
        config = dataclasses.replace(config, total_steps=None)
    if resume is not None:
        done_ep, done_steps = resume.state["episode"], resume.state["global_step"]
        if config.total_steps is not None and config.total_steps <= done_steps:
            raise ConfigError(
                f"--total-steps {config.total_steps} is not above the {done_steps} steps already done in "
                f"{resume.path}; pass a larger --total-steps to train more"
            )
        if config.total_steps is None and config.episodes <= done_ep:
            raise ConfigError(
                f"--episodes {config.episodes} is not above the {done_ep} episodes already done in {resume.path}; "
                f"pass a larger --episodes to train more"
            )
    device = resolve_device(config.device)
    if config.compile:
        check_compile(device)
    keep_freed_memory()
    flush_denormals()
    env = make_env(config.env_id)
    try:
        return Trainer(config, env, device, resume).run()
    finally:
        env.close()


@dataclass
class _SaveInFlight:
    """A save whose files the background writer is writing."""

    episode: int
    names: list[str]
    manifest: dict[str, int]
    store_mark: tuple[int, int, int, int, bool]
    periodic: bool


class Trainer:
    """One run: builds (or restores) agent, replay buffer and logs, then loops over episodes."""

    def __init__(self, config: Config, env: gym.Env, device: torch.device, resume: _Resume | None):
        self.config, self.env, self.device = config, env, device
        self.signature = env_signature(config.env_id, env)
        if resume is not None:
            ckpt.check_compatible(resume.path, resume.state["meta"], self.signature)
        obs_dim, act_dim = self.signature["obs_dim"], self.signature["act_dim"]
        self.low = env.action_space.low.astype(np.float32)
        self.half_range = (env.action_space.high.astype(np.float32) - self.low) / 2

        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        env.action_space.seed(config.seed)
        # --her is on by default wherever it applies (it reaches 90% success on Robot6Reach-v0 in about half the steps).
        self.goals = goal_spec(env) if config.her is not False else None
        if config.her and self.goals is None:
            raise ConfigError(
                f"--her needs a goal env (Robot6Reach-v0, or a Dict observation with observation/achieved_goal/"
                f"desired_goal and compute_reward); {config.env_id} is not one"
            )
        # --compile unset: on CUDA the update replays as one CUDA graph (bit for bit the plain update, ~3x faster
        # there); on a CPU torch.compile only when asked (it compiles for ~10 s and rounds differently).
        compile = config.compile if config.compile is not None else device.type == "cuda"
        self.agent = SAC(
            obs_dim, act_dim, config.hidden, config.lr, config.gamma, config.tau, config.init_alpha, device,
            compile=compile, policy_delay=config.policy_delay,
        )
        self.replay = ReplayBuffer(
            config.buffer_size, obs_dim, act_dim, seed=config.seed, device=device, on_device=config.replay_on_device
        )
        if self.goals is not None and config.her_relabel == "sample":
            self.replay.relabel_on_sample(self.goals, config.her_k)
        self.episode, self.global_step, self.best_reward = 0, 0, float("-inf")
        self.reset_seed: int | None = config.seed

        self.run_name = resume.run_name if resume else new_run_name(Path(config.checkpoint_dir), Path(config.log_dir))
        self.run_dir = Path(config.checkpoint_dir) / self.run_name
        self.log_dir = Path(config.log_dir) / self.run_name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_run_dir(self.run_dir)
        for stale in [*self.run_dir.glob("*.tmp"), *self.run_dir.glob("replay/*.tmp")]:
            stale.unlink(missing_ok=True)  # left by a process killed in the middle of a save
        self.store = ReplayStore(self.run_dir / "replay")
        # Replay manifests of the checkpoints on disk in this run, by file name (to prune unused segments).
        self.manifests: dict[str, dict[str, int]] = {}
        forked = resume is not None and not resume.in_place
        logger_state = self._restore(resume) if resume is not None else None

        history = Path(config.log_dir) / resume.parent_run_dir.name if forked else None
        if forked and logger_state:
            logger_state = {**logger_state, "wandb_run_id": None}  # a fork is a new W&B run too
        self.logger = RunLogger(
            self.log_dir,
            start_episode=self.episode,
            start_step=self.global_step,
            history_from=history if history is not None and history.is_dir() else None,
            state=logger_state,
            wandb_project=config.wandb,
            run_name=self.run_name,
            config=config.to_dict(),
        )
        run_info = {**config.to_dict(), "run_name": self.run_name}
        if forked:
            run_info["resumed_from"] = str(resume.path)
        elif (self.log_dir / "config.json").is_file():
            previous = json.loads((self.log_dir / "config.json").read_text())
            if "resumed_from" in previous:
                run_info["resumed_from"] = previous["resumed_from"]
        atomic_write_json(self.log_dir / "config.json", run_info)
        self.meta_base = {"format_version": ckpt.FORMAT_VERSION, **self.signature, "run_name": self.run_name, "versions": _versions()}
        self.last_path: Path | None = None
        self.writer = BackgroundWriter()
        self._in_flight: _SaveInFlight | None = None

    def _restore(self, resume: _Resume) -> dict[str, Any] | None:
        """Load the complete state of ``resume`` into this trainer; returns the logger's saved state."""
        state, path = resume.state, resume.path
        try:
            self.agent.load_state_dict(state)
        except (ValueError, RuntimeError, KeyError) as e:
            raise CheckpointError(f"{path}: its networks do not fit this run: {str(e).splitlines()[0]}") from None
        self.episode, self.global_step = int(state["episode"]), int(state["global_step"])
        self.best_reward = float(state["best_reward"])
        print(f"[RESUME] Loaded {path}: episode {self.episode}, global_step {self.global_step}")

        manifest = state.get("replay")
        if manifest is None:
            print(f"[RESUME] {path} holds no replay buffer: continuing with an empty one")
        else:
            source = ReplayStore(resume.parent_run_dir / "replay", generation=int(manifest["generation"]))
            if resume.in_place:
                source.discard_after(int(manifest["count"]))  # written after this checkpoint, never used
            t0 = time.perf_counter()
            report = source.load(self.replay, manifest)
            if resume.in_place:
                self.store = source
            if not report.complete:
                print(
                    f"[RESUME] Replay buffer: {report.missing_segments} segment(s) missing or unreadable; restored "
                    f"{report.loaded:,} of {report.expected:,} transitions and continuing with those"
                )
            else:
                her = " (hindsight copies included)" if self.goals is not None and self.config.her_relabel == "store" else ""
                print(f"[RESUME] Replay buffer: {report.loaded:,} transitions{her} restored in {time.perf_counter() - t0:.2f} s")
        if resume.in_place:
            for f in self.run_dir.glob("*.pth"):
                m = ckpt.read_replay_manifest(f)
                if m is not None:
                    self.manifests[f.name] = m
        else:
            print(f"[RESUME] {path} is older than its run's newest state: continuing in a new run {self.run_name}")

        # Every generator continues from the checkpoint; the env's is created first so its state can be set.
        self.env.unwrapped.np_random  # noqa: B018
        if state.get("rng") is not None:
            restore_rng(state["rng"], self.env, self.replay, self.device)
        else:
            print(f"[RESUME] {path} holds no RNG state: the continuation will not repeat an uninterrupted run")
        self.reset_seed = None
        return state.get("logger")

    def _device_line(self) -> str:
        """Where the networks train and which update runs, as the one line printed at the start."""
        if self.device.type == "cuda":
            where = f"cuda ({torch.cuda.get_device_name(self.device)})"
            how = ("the update replays as one CUDA graph (--no-compile: the plain update)" if self.agent._graph is not None
                   else "the plain update (compile off in this run's settings; --compile for one CUDA graph)")
        else:
            threads = torch.get_num_threads()
            where = f"cpu ({threads} thread{'s' if threads > 1 else ''})"
            if self.agent._compiled_update is None:
                how = "the plain update (--compile: torch.compile, ~20 s to compile)"
            elif self.agent.policy_delay > 1:
                how = ("the update through torch.compile (at --policy-delay > 1 slower than the plain update, "
                       "whose critic-only updates share one actor pass: measured 0.88x the steps/s at the defaults)")
            else:
                how = "the update through torch.compile"
        return f"{where}: {how}"

    def _finished(self) -> bool:
        if self.config.total_steps is not None:
            return self.global_step >= self.config.total_steps
        return self.episode >= self.config.episodes

    def run(self) -> TrainResult:
        config = self.config
        by_steps = config.total_steps is not None
        print(f"[DEVICE] {self._device_line()}", flush=True)
        bar = tqdm(
            total=config.total_steps if by_steps else config.episodes,
            initial=self.global_step if by_steps else self.episode,
            unit="step" if by_steps else "ep",
            dynamic_ncols=True,
            mininterval=1.0,
            desc=self.run_name,
        )
        recent_success: deque[float] = deque(maxlen=SUCCESS_WINDOW)
        # The handlers stay installed until the logs are closed: a second signal always means "quit now".
        with _StopRequest() as stop:
            try:
                if self.manifests:
                    self.store.prune(list(self.manifests.values()))
                while not self._finished() and not stop.requested:
                    steps_before = self.global_step
                    reward, success, sps = self._episode()
                    self._save(reward)
                    if success is not None:
                        recent_success.append(float(success))
                    bar.update(self.global_step - steps_before if by_steps else 1)
                    postfix = {"ep": self.episode, "reward": f"{reward:.2f}", "sps": f"{sps:.0f}", "step": self.global_step}
                    if recent_success:
                        postfix["success"] = f"{np.mean(recent_success):.0%}"
                    bar.set_postfix(postfix, refresh=False)
            finally:
                bar.close()
                self.close()
            if stop.requested and self.last_path is not None:
                print(f"Saved {self.last_path} at episode {self.episode}; resume with: python Train_Robot6.py --resume")
        return TrainResult(
            self.run_name, self.run_dir, self.log_dir, self.episode, self.global_step, self.last_path, stop.requested
        )

    def close(self) -> None:
        """Collect the save in flight (reporting it if it failed), then close the checkpoint writer and the logs.
        ``run`` ends with it; the env stays open (its owner closes it)."""
        try:
            self._finish_save()
        finally:
            self.writer.close()
            self.logger.close()

    def _episode(self) -> tuple[float, Any, float]:
        """Play one episode, updating after every step once learning has started; log it."""
        config, env, agent, replay = self.config, self.env, self.agent, self.replay
        obs, _ = env.reset(seed=self.reset_seed)
        self.reset_seed = None
        agent.reset_noise()  # no action noise drawn ahead crosses an episode end, where checkpoints are taken
        ep_reward, ep_len, pending = 0.0, 0, 0
        # The raw metric record of each update, averaged once at the episode's end (SAC.reduce_metrics): a
        # dozen reductions per update would cost about 6% of its time (at 128x128).
        records: list[dict[str, torch.Tensor]] = []
        info: dict[str, Any] = {}
        ep_start = replay.count
        t0 = time.perf_counter()
        done = False
        while not done:
            if self.global_step < config.learning_starts:
                env_action = env.action_space.sample()
                action = ((env_action - self.low) / self.half_range - 1.0).astype(np.float32)
            else:
                action = agent.act(obs)
                env_action = (self.low + (action + 1.0) * self.half_range).astype(env.action_space.dtype)
            next_obs, reward, terminated, truncated, info = env.step(env_action)
            # Store `terminated`, not `terminated or truncated`: a time-limit cut must still bootstrap.
            replay.add(obs, action, float(reward), next_obs, bool(terminated))
            obs = next_obs
            ep_reward += float(reward)
            ep_len += 1
            self.global_step += 1
            done = terminated or truncated
            if done:
                replay.end_episode(ep_start, replay.count)
                if self.goals is not None and config.her_relabel == "store":
                    relabel_episode(replay, ep_start, replay.count, self.goals, config.her_k)
            if self.global_step >= config.learning_starts and len(replay) >= config.batch_size:
                pending += config.utd
            # Updates run after every step, or with --updates-every K after K steps; always by the episode's
            # end, so that a checkpoint never owes updates (exact resume).
            if pending and (done or pending >= config.utd * config.updates_every):
                # One draw for all of them: no transition is added between these updates.
                records += agent.update_many(replay.sample_many(config.batch_size, pending))
                pending = 0
        self.episode += 1
        self.last_ep_len = ep_len
        sps = ep_len / max(time.perf_counter() - t0, 1e-9)
        success = info.get("is_success")
        scalars = {
            "episode/reward": ep_reward,
            "episode/length": ep_len,
            "time/sps": sps,
            **({"episode/success": float(success)} if success is not None else {}),
            **{f"train/{k}": v.item() for k, v in agent.reduce_metrics(records).items()},
        }
        row = {
            "episode": self.episode - 1,
            "global_step": self.global_step,
            "episode_reward": round(ep_reward, 6),
            "episode_length": ep_len,
            "success": None if success is None else int(bool(success)),
            "final_distance": None if "distance" not in info else round(float(info["distance"]), 6),
            "sps": round(sps, 1),
        }
        self.logger.log_episode(row, scalars, self.global_step)
        return ep_reward, success, sps

    def _save(self, ep_reward: float) -> None:
        """Checkpoint the state at this episode end: latest.pth, plus best/periodic files when due.

        The state is gathered and serialised here; the files (replay segment, checkpoints, pointer, in that
        order) are written by a background thread while the next episode runs, and ``_finish_save`` collects
        the result at the next episode end or when the run stops. A failed save (disk full, read-only folder)
        is reported and training goes on; the files written before stay valid because every write is atomic.
        """
        self._finish_save()
        config = self.config
        is_best = ep_reward > self.best_reward
        self.best_reward = max(self.best_reward, ep_reward)
        names = ["latest.pth"]
        if is_best:
            names.append("best.pth")
        periodic = []
        if self.episode % config.ckpt_every == 0:
            periodic.append(f"ckpt_ep_{self.episode}.pth")
        if config.save_every_steps is not None:
            every, previous_end = config.save_every_steps, self.global_step - self.last_ep_len
            if self.global_step // every > previous_end // every:
                periodic.append(f"ckpt_step_{self.global_step}.pth")
        names += periodic
        saved_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        mark = self.store.bookmark()
        segments: list[tuple[Path, bytes]] = []
        try:
            self.logger.hand_over()  # logs first (made durable by write()): a checkpoint never runs ahead of them
            manifest = self.store.save(self.replay, write=lambda path, data: segments.append((path, data)))
            data = ckpt.serialize_checkpoint({
                **self.agent.state_dict(),
                "global_step": self.global_step,
                "episode": self.episode,
                "best_reward": self.best_reward,
                "meta": {**self.meta_base, "config": config.to_dict(), "saved_at": saved_at},
                "rng": capture_rng(self.env, self.replay, self.device),
                "replay": manifest,
                "logger": self.logger.state_dict(),
            })
        except OSError as e:
            self.store.rewind(mark)
            self._warn_failed_save(self.episode, e)
            return
        paths = [self.run_dir / n for n in names]
        pointer = (Path(config.checkpoint_dir), self.run_name, paths[0], self.episode, self.global_step, saved_at)

        def write() -> None:
            self.logger.sync()
            for path, blob in segments:  # the replay data first: a checkpoint never points at missing data
                atomic_write_bytes(path, blob)
            ckpt.write_checkpoint(data, *paths)
            ckpt.write_pointer(*pointer)

        self.writer.submit(write)
        self._in_flight = _SaveInFlight(self.episode, names, manifest, mark, bool(periodic))

    def _finish_save(self) -> None:
        """Wait for the save in flight; on success record its files (and tidy up when due), on an
        ``OSError`` report it and rewind the replay store so that the next save writes its data again."""
        save, self._in_flight = self._in_flight, None
        if save is None:
            return
        error = self.writer.wait()
        if error is None:
            self.last_path = self.run_dir / "latest.pth"
            for n in save.names:
                self.manifests[n] = save.manifest
            if save.periodic or self.store.needs_prune:
                self._housekeeping()
        elif isinstance(error, OSError):
            self.store.rewind(save.store_mark)
            self._warn_failed_save(save.episode, error)
        else:
            raise error

    def _warn_failed_save(self, episode: int, error: OSError) -> None:
        tqdm.write(f"WARNING: could not save the checkpoint of episode {episode} in {self.run_dir} ({error}); "
                   f"the previous checkpoint stays valid and training goes on", file=sys.stderr)

    def _housekeeping(self) -> None:
        """Apply --keep-last to periodic checkpoints and delete replay segments no checkpoint needs."""
        keep = self.config.keep_last
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
