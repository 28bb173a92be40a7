"""The training loop: episodes of env steps and SAC updates, a checkpoint at every episode end.

``train(config)`` is a whole run, new or resumed. ``Trainer`` is the loop: ``run_episode`` plays one episode
(updating as it goes) and logs it, ``save`` checkpoints the state at that episode end, ``close`` lets go of the
run's files. Which checkpoint to resume is ``robot6.run.resume``'s job, writing the files ``robot6.run.saver``'s, the
process settings and the run-dir lock ``robot6.run.process``'s (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robot6.envs.factory import env_signature, make_env
from robot6.envs.goals import goal_spec
from robot6.errors import CheckpointError, ConfigError
from robot6.learn.agent import SAC
from robot6.learn.her import HindsightSampler
from robot6.learn.networks import action_bounds, from_env_bounds, to_env_bounds
from robot6.learn.replay import ReplayBuffer
from robot6.run import checkpoint as ckpt
from robot6.run import resume as resuming
from robot6.run.config import Config
from robot6.run.fileio import atomic_write_json
from robot6.run.logger import RunLogger
from robot6.run.process import RunDirLock, StopRequest, check_compile, new_run_name, process_settings, resolve_device, versions
from robot6.run.report import resume_command, run_summary
from robot6.run.resume import Resume
from robot6.run.rollouts import Evaluator
from robot6.run.saver import Checkpointer

SUCCESS_WINDOW = 20  # episodes in the progress bar's success rate


@dataclass
class TrainResult:
    """What a ``train`` call leaves behind."""

    run_name: str
    run_dir: Path
    log_dir: Path
    episode: int
    global_step: int
    last_checkpoint: Path | None
    interrupted: bool = False  # stopped by a signal before the run was complete
    stop_signal: int | None = None  # the signal that stopped it
    already_complete: bool = False  # --resume of a run that had nothing left to train: nothing was written

    @property
    def exit_code(self) -> int:
        """0 when the run is complete; 128 + the signal's number when a signal stopped it before its end."""
        return 128 + self.stop_signal if self.interrupted and self.stop_signal is not None else 0


@dataclass
class Episode:
    """One episode's outcome, as ``Trainer.run_episode`` returns it."""

    reward: float
    length: int
    success: bool | None  # the env's last ``info["is_success"]``; None when it reports none
    sps: float  # env steps per second, updates included


def train(config: Config, given: Iterable[str] | None = None,
          on_evaluation: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Run (or resume) training as ``config`` says; returns where the run's files are.

    ``given``: names of the ``Config`` fields set explicitly on the command line. On resume the checkpoint's
    config is used for every other field; None means the fields that differ from ``Config()``'s defaults.
    A ``--resume`` of a run that has trained as long as asked prints one line and writes nothing. Safe to call
    from a library: the process settings it changes are restored when it returns, and signal handlers are
    installed on the main thread only. Raises ``Robot6Error`` for anything the user can fix.
    ``on_evaluation``: see ``Trainer.run``.
    """
    config, resume = resuming.plan(config, resuming.given_fields(config, given))
    done = resuming.completion(config, resume)
    if done is not None:
        print(done)
        run_dir = resume.parent_run_dir
        return TrainResult(run_dir.name, run_dir, Path(config.log_dir) / run_dir.name, resume.episode,
                           resume.global_step, resume.path, already_complete=True)
    device = resolve_device(config.device)
    if config.compile:
        check_compile(device)
    with process_settings():
        env = make_env(config.env_id, **config.env_kwargs(randomized=True))
        try:
            return Trainer(config, env, device, resume).run(on_evaluation)
        finally:
            env.close()


class Trainer:
    """One run: builds (or restores) agent, replay buffer and logs, then plays episodes.

    Public API: ``run_episode()``, ``evaluate_if_due()``, ``save(episode_reward)``, ``flush()`` (wait for the
    checkpoint files), ``close()``, and ``run()``, the loop of ``train`` (a progress bar, signals, until the run is complete).
    The env stays open after ``close``: its owner closes it.
    """

    def __init__(self, config: Config, env: gym.Env, device: torch.device, resume: Resume | None = None):
        self.config, self.env, self.device = config, env, device
        self.signature = env_signature(config.env_id, env)
        if resume is not None:
            ckpt.check_arm(resume.path, resume.state["meta"], self.signature, accept_change=config.accept_urdf_change)
            ckpt.check_compatible(resume.path, resume.state["meta"], self.signature)
        self.low, self.half_range = action_bounds(env.action_space)
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        env.action_space.seed(config.seed)
        self._build_learner()
        self.episode, self.global_step, self.best_reward = 0, 0, float("-inf")
        self.last_ep_len = 0
        self.reset_seed: int | None = config.seed

        self.run_name = resume.run_name if resume else new_run_name(Path(config.checkpoint_dir), Path(config.log_dir))
        self.run_dir = Path(config.checkpoint_dir) / self.run_name
        self.log_dir = Path(config.log_dir) / self.run_name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = RunDirLock(self.run_dir)
        self.evaluator: Evaluator | None = None
        try:
            self.checkpointer = Checkpointer(self.run_dir, self.run_name, config.ckpt_every, config.save_every_steps,
                                             config.keep_last)
            if config.eval_every > 0:
                self.evaluator = Evaluator(config.env_id, config.eval_every, config.eval_episodes, config.seed,
                                           config.env_kwargs(randomized=config.eval_randomize))
            logger_state = self._restore(resume) if resume is not None else None
            self.logger = self._open_logs(resume, logger_state)
        except BaseException:
            if self.evaluator is not None:
                self.evaluator.close()
            self._lock.release()
            raise
        self.meta = {"format_version": ckpt.FORMAT_VERSION, **self.signature, "run_name": self.run_name,
                     "config": config.to_dict(), "versions": versions()}

    def _build_learner(self) -> None:
        """The agent, the replay buffer and what samples it (with hindsight goals on goal envs)."""
        config, obs_dim, act_dim = self.config, self.signature["obs_dim"], self.signature["act_dim"]
        goals = goal_spec(self.env) if config.her is not False else None
        if config.her and goals is None:
            raise ConfigError(
                f"--her needs a goal env (Robot6Reach-v0, or a Dict observation with observation/achieved_goal/"
                f"desired_goal and compute_reward); {config.env_id} is not one"
            )
        # --compile unset: on CUDA the update replays as one CUDA graph (bit for bit the plain update); on a
        # CPU torch.compile only when asked (it compiles for ~20 s and rounds differently).
        compile = config.compile if config.compile is not None else self.device.type == "cuda"
        self.agent = SAC(
            obs_dim, act_dim, config.hidden, config.lr, config.gamma, config.tau, config.init_alpha, self.device,
            compile=compile, policy_delay=config.policy_delay,
        )
        self.replay = ReplayBuffer(
            config.buffer_size, obs_dim, act_dim, seed=config.seed, device=self.device, on_device=config.replay_on_device
        )
        self.sampler: ReplayBuffer | HindsightSampler = (
            HindsightSampler(self.replay, goals, config.her_k, config.her_relabel) if goals is not None else self.replay
        )
        self.demonstrator: Callable[[], np.ndarray] | None = getattr(self.env.unwrapped, "demonstration", None)
        if config.demos and not callable(self.demonstrator):
            raise ConfigError(f"--demos needs an env with a scripted controller (Robot6Push-v0, Robot6PickAndPlace-v0 "
                              f"and their Dense variants); {config.env_id} has none")

    def _restore(self, resume: Resume) -> dict[str, Any] | None:
        """Load the complete state of ``resume`` into this trainer; returns the logger's saved state."""
        state, path = resume.state, resume.path
        try:
            self.agent.load_state_dict(state)
        except (ValueError, RuntimeError, KeyError) as e:
            raise CheckpointError(f"{path}: its networks do not fit this run: {str(e).splitlines()[0]}") from None
        self.episode, self.global_step = resume.episode, resume.global_step
        self.best_reward = float(state["best_reward"])
        print(f"[RESUME] Loaded {path}: episode {self.episode}, global_step {self.global_step}")
        self.checkpointer.restore_replay(path, state.get("replay"), resume.parent_run_dir, resume.in_place, self.replay)
        if not resume.in_place:
            print(f"[RESUME] {path} is older than its run's newest state: continuing in a new run {self.run_name}")
        if state.get("rng") is not None:
            ckpt.restore_rng(state["rng"], self.env, self.replay.rng, self.device)
        else:
            print(f"[RESUME] {path} holds no RNG state: the continuation will not repeat an uninterrupted run")
        self.reset_seed = None  # the env's generator continues from the checkpoint
        if self.evaluator is not None:
            self.evaluator.load_state_dict(state.get("evaluation"), self.global_step)
        return state.get("logger")

    def _open_logs(self, resume: Resume | None, logger_state: dict[str, Any] | None) -> RunLogger:
        """The run's logs, continued from the checkpoint (a fork starts with its parent's history), and its
        config.json (which remembers the checkpoint a fork was resumed from)."""
        config = self.config
        forked = resume is not None and not resume.in_place
        history = Path(config.log_dir) / resume.parent_run_dir.name if forked else None
        if forked and logger_state:
            logger_state = {**logger_state, "wandb_run_id": None}  # a fork is a new W&B run too
        logger = RunLogger(
            self.log_dir, start_episode=self.episode, start_step=self.global_step,
            history_from=history if history is not None and history.is_dir() else None, state=logger_state,
            wandb_project=config.wandb, run_name=self.run_name, config=config.to_dict(),
        )
        run_info = {**config.to_dict(), "run_name": self.run_name}
        if forked:
            run_info["resumed_from"] = str(resume.path)
        elif (self.log_dir / "config.json").is_file():
            previous = json.loads((self.log_dir / "config.json").read_text())
            if "resumed_from" in previous:
                run_info["resumed_from"] = previous["resumed_from"]
        atomic_write_json(self.log_dir / "config.json", run_info)
        return logger

    @property
    def complete(self) -> bool:
        """Whether the run has trained as long as ``--episodes``/``--total-steps`` ask."""
        if self.config.total_steps is not None:
            return self.global_step >= self.config.total_steps
        return self.episode >= self.config.episodes

    @property
    def last_path(self) -> Path | None:
        """The newest checkpoint file known to be on disk (None before the first save lands)."""
        return self.checkpointer.last_path

    def run(self, on_evaluation: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
        """Play episodes, saving at each end, until the run is complete or a signal asks it to stop; then close.

        ``on_evaluation(global_step, summary)`` is called after each evaluation, once that episode's checkpoint
        is saved (``summary``: ``EvalResult.summary()``); an exception from it ends the run (its files closed)
        and propagates: a sweep prunes a trial this way."""
        config = self.config
        by_steps = config.total_steps is not None
        print(f"[DEVICE] {self.agent.describe()}", flush=True)
        bar = tqdm(total=config.total_steps if by_steps else config.episodes,
                   initial=self.global_step if by_steps else self.episode, unit="step" if by_steps else "ep",
                   dynamic_ncols=True, mininterval=1.0, desc=self.run_name)
        recent_success: deque[float] = deque(maxlen=SUCCESS_WINDOW)
        if config.demos and self.episode == 0:  # a fresh run (a resumed one has them in its buffer)
            self.play_demos()
        # The handlers stay installed until the logs are closed: a second signal always means "quit now".
        with StopRequest() as stop:
            try:
                while not self.complete and not stop.requested:
                    ep = self.run_episode()
                    evaluated = self.evaluate_if_due()
                    self.save(ep.reward)
                    if evaluated and on_evaluation is not None:
                        on_evaluation(self.global_step, dict(self.evaluator.last))
                    if ep.success is not None:
                        recent_success.append(float(ep.success))
                    bar.update(ep.length if by_steps else 1)
                    # Strings: tqdm would print the numbers in its short form (50000 as 5e+4).
                    postfix = {"ep": str(self.episode), "reward": f"{ep.reward:.2f}", "sps": f"{ep.sps:.0f}", "step": str(self.global_step)}
                    if recent_success:
                        postfix["success"] = f"{np.mean(recent_success):.0%}"
                    last = self.evaluator.last if self.evaluator is not None else None
                    if last is not None:
                        rate = last["success_rate"]
                        postfix["eval"] = f"{rate:.0%}" if np.isfinite(rate) else f"{last['mean_return']:.2f}"
                    bar.set_postfix(postfix, refresh=False)
            finally:
                bar.close()
                self.close()
            interrupted = stop.requested and not self.complete
            if interrupted and self.last_path is not None:
                print(f"Saved {self.last_path} at episode {self.episode}; resume with: "
                      f"{resume_command(config, self.run_dir)}")
            elif not interrupted:
                print(run_summary(self.run_dir, self.log_dir), flush=True)
        return TrainResult(self.run_name, self.run_dir, self.log_dir, self.episode, self.global_step, self.last_path,
                           interrupted=interrupted, stop_signal=stop.signum)

    def play_demos(self) -> float:
        """Fill the replay buffer with ``--demos`` episodes of the env's scripted controller, before the run's
        first episode; returns their success rate. They are stored (and saved with the first checkpoint) and
        relabelled by HER like any transition, and drawn from the env's seeded generator (a run with demos is as
        reproducible as one without); they are not steps of the run: ``global_step``, the warm-up, the logs and
        ``--total-steps`` count the run's own episodes only."""
        env, replay, n = self.env, self.replay, self.config.demos
        successes, steps = 0, 0
        for _ in tqdm(range(n), desc="demos", unit="ep", dynamic_ncols=True, mininterval=1.0, leave=False):
            obs, _ = env.reset(seed=self.reset_seed)
            self.reset_seed = None
            start, info, done = replay.count, {}, False
            while not done:
                env_action = np.asarray(self.demonstrator(), dtype=env.action_space.dtype)
                action = from_env_bounds(env_action, self.low, self.half_range).astype(np.float32)
                next_obs, reward, terminated, truncated, info = env.step(env_action)
                replay.add(obs, action, float(reward), next_obs, bool(terminated))
                obs, done = next_obs, terminated or truncated
                steps += 1
            self.sampler.end_episode(start, replay.count)
            successes += bool(info.get("is_success", False))
        print(f"[DEMOS] {n} episodes of the scripted controller in the replay buffer ({steps} steps), "
              f"{successes / n:.0%} reached their goal", flush=True)
        return successes / n

    def run_episode(self) -> Episode:
        """Play one episode, updating after every step (or every ``--updates-every`` steps) once learning has
        started, and always by the episode's end, so that a checkpoint never owes updates; log it."""
        config, env, agent, replay = self.config, self.env, self.agent, self.replay
        obs, _ = env.reset(seed=self.reset_seed)
        self.reset_seed = None
        agent.reset_noise()  # no action noise drawn ahead crosses an episode end, where checkpoints are taken
        ep_reward, ep_len, pending = 0.0, 0, 0
        # Raw metric records of the updates, averaged once at the episode's end (SAC.reduce_metrics).
        records: list[dict[str, torch.Tensor]] = []
        info: dict[str, Any] = {}
        ep_start = replay.count
        t0 = time.perf_counter()
        done = False
        while not done:
            if self.global_step < config.learning_starts:
                env_action = env.action_space.sample()
                action = from_env_bounds(env_action, self.low, self.half_range).astype(np.float32)
            else:
                action = agent.act(obs)
                env_action = to_env_bounds(action, self.low, self.half_range).astype(env.action_space.dtype)
            next_obs, reward, terminated, truncated, info = env.step(env_action)
            # Store `terminated`, not `terminated or truncated`: a time-limit cut must still bootstrap.
            replay.add(obs, action, float(reward), next_obs, bool(terminated))
            obs = next_obs
            ep_reward += float(reward)
            ep_len += 1
            self.global_step += 1
            done = terminated or truncated
            if done:
                self.sampler.end_episode(ep_start, replay.count)
            if self.global_step >= config.learning_starts and len(replay) >= config.batch_size:
                pending += config.utd
            if pending and (done or pending >= config.utd * config.updates_every):
                # One draw for all of them: no transition is added between these updates.
                records += agent.update_many(self.sampler.sample_many(config.batch_size, pending))
                pending = 0
        self.episode += 1
        self.last_ep_len = ep_len
        success = info.get("is_success")
        episode = Episode(ep_reward, ep_len, None if success is None else bool(success),
                          ep_len / max(time.perf_counter() - t0, 1e-9))
        self._log(episode, info, records)
        return episode

    def _log(self, ep: Episode, info: dict[str, Any], records: list[dict[str, torch.Tensor]]) -> None:
        """One row of training.csv and the episode's scalars (with the updates' mean metrics) in TensorBoard."""
        scalars = {
            "episode/reward": ep.reward,
            "episode/length": ep.length,
            "time/sps": ep.sps,
            **({"episode/success": float(ep.success)} if ep.success is not None else {}),
            **{f"train/{k}": v.item() for k, v in self.agent.reduce_metrics(records).items()},
        }
        row = {
            "episode": self.episode - 1,
            "global_step": self.global_step,
            "episode_reward": round(ep.reward, 6),
            "episode_length": ep.length,
            "success": None if ep.success is None else int(ep.success),
            "final_distance": None if "distance" not in info else round(float(info["distance"]), 6),
            "sps": round(ep.sps, 1),
        }
        self.logger.log_episode(row, scalars, self.global_step)

    def evaluate_if_due(self) -> bool:
        """At an episode end: evaluate the deterministic policy if the next evaluation is due, log it (eval.csv,
        TensorBoard ``eval/*``); returns whether it ran. Nothing of training is drawn or changed."""
        if self.evaluator is None or not self.evaluator.due(self.global_step):
            return False
        result = self.evaluator.run(self.agent, self.global_step)
        self.logger.log_eval(*self.evaluator.log_entry(result, self.episode - 1, self.global_step), self.global_step)
        return True

    def save(self, episode_reward: float) -> None:
        """Checkpoint the state at this episode end: latest.pth, and best.pth and periodic files when due.
        best.pth follows the evaluations once there has been one (a new best mean evaluation return at this
        episode end), else the exploring episodes' return. Returns once the state is serialised; a background
        thread writes the files (``flush`` waits)."""
        is_best = episode_reward > self.best_reward
        self.best_reward = max(self.best_reward, episode_reward)
        by_evaluation = self.evaluator is not None and self.evaluator.count > 0
        if by_evaluation:
            is_best = self.evaluator.best_at == self.global_step
        names = self.checkpointer.due(self.episode, self.global_step, self.last_ep_len, is_best)
        state = {
            **self.agent.state_dict(),
            "global_step": self.global_step,
            "episode": self.episode,
            "best_reward": self.best_reward,
            "meta": {**self.meta, "best_by": "evaluation return" if by_evaluation else "episode return"},
            "rng": ckpt.capture_rng(self.env, self.replay.rng, self.device),
            "logger": self.logger.state_dict(),
        }
        if self.evaluator is not None:
            state["evaluation"] = self.evaluator.state_dict()
        self.checkpointer.save(names, state, self.replay, self.logger)

    def flush(self) -> None:
        """Wait until the files of the last ``save`` are on disk (or its failure is reported)."""
        self.checkpointer.finish()

    def close(self) -> None:
        """Finish the save in flight, close the logs and the evaluation env, release the run folder. The env
        stays open (its owner closes it)."""
        try:
            self.checkpointer.close()
        finally:
            try:
                self.logger.close()
                if self.evaluator is not None:
                    self.evaluator.close()
            finally:
                self._lock.release()
