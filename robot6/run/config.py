"""The one configuration object of a run.

``Config`` holds every hyperparameter, path and cadence. ``robot6.train`` builds its command line from
these fields (the ``help`` metadata is the ``--help`` text), everything below receives the ``Config``
explicitly, and ``to_dict()`` goes into every checkpoint and into ``runs/<run>/config.json``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from robot6.errors import ConfigError


def _opt(default: Any, help: str, flag: str | None = None, metavar: str | None = None, **kw: Any) -> Any:
    """A dataclass field carrying its command-line help text (and flag name when it is not the field's, and
    the placeholder ``--help`` shows for its value when the type's is not the clearest)."""
    meta = {"help": help, "flag": flag, "metavar": metavar}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


# The envs that take an arm from a URDF (``urdf``; Reach also ``ee_link`` and ``workspace``, the cube tasks ``card``).
CUBE_ENVS = ("Robot6Push-v0", "Robot6PushDense-v0", "Robot6PickAndPlace-v0", "Robot6PickAndPlaceDense-v0")
URDF_ENVS = ("Robot6Reach-v0", *CUBE_ENVS)


@dataclass
class Config:
    """Everything that defines a training run. The defaults here are Robot6Reach-v0's; a run starts from its
    env's preset (``robot6.run.presets``, ``robot6/presets.toml``) in the fields a preset sets."""

    env_id: str = _opt("Robot6Reach-v0", "gymnasium environment id; any env with Box observation and action spaces", flag="--env")
    urdf: str | None = _opt(None, "the arm, from its URDF file (as given, else inside pybullet_data, e.g. kuka_iiwa/model.urdf): Robot6Reach-v0 on any arm (one action dimension per movable joint from the base to the end effector); Push and Pick-and-Place on any arm with a gripper and a card (--card)", metavar="PATH")
    card: str | None = _opt(None, "with --urdf on Push or Pick-and-Place: the arm's card (TOML: tcp_link, tcp_depth, approach, ...; docs/ARMS.md); default: URDF_STEM.card.toml beside the URDF, else the built-in card of a pybullet_data arm (franka_panda/panda.urdf, xarm/xarm6_with_gripper.urdf)", metavar="PATH")
    ee_link: str | None = _opt(None, "with --urdf: the end-effector link (default: where the chain from the base ends, e.g. a hand before its fingers)", metavar="NAME")
    workspace: list[float] | None = _opt(None, "with --urdf: goals only inside this box (m): x_min y_min z_min x_max y_max z_max", metavar="X")
    accept_urdf_change: bool = _opt(False, "with --resume --urdf PATH: continue although the URDF (or a mesh it names) differs from the one the checkpoint was trained on")
    randomize: bool | None = _opt(None, "domain randomization: every training episode draws its physics (object mass and friction, finger and ground friction, joint damping, motor forces), control latency, action noise and sensor noise from the ranges of --randomization (docs/REAL_ROBOT.md); --no-randomize: the nominal simulation")
    randomization: dict[str, list[float]] | None = _opt(None, "with --randomize: ranges that replace the env's (robot6/presets.toml, [randomization.ENV]), as NAME=LOW:HIGH or NAME=VALUE, e.g. --randomization object_mass=0.5:2 latency=0:2; the resolved ranges are kept in config.json and the checkpoints", metavar="NAME=LOW:HIGH")
    action_history: int = _opt(0, "the policy also observes its own last K actions (oldest first, zeros at an episode's start): under control latency it can tell which commands are still on their way (docs/REAL_ROBOT.md); 0: not", metavar="K")
    eval_randomize: bool = _opt(False, "evaluate during training under the run's randomization too (default: on the nominal simulation)")
    episodes: int = _opt(1000, "total episodes of the run; a resumed run trains only the remainder")
    total_steps: int | None = _opt(None, "alternative to --episodes: total env steps of the run (it ends at the first episode end at or past N)")
    seed: int = _opt(0, "random seed for networks, replay sampling, the environment and warm-up actions")
    device: str = _opt("auto", "where networks train: auto (CUDA when available, else CPU), cpu or cuda")
    lr: float = _opt(1e-3, "Adam learning rate of the policy, the critics and the entropy temperature")
    gamma: float = _opt(0.9, "discount factor of future rewards (0.9 looks about 10 steps ahead, 0.99 about 100)")
    tau: float = _opt(0.01, "Polyak averaging rate of the target critics: each update moves them this fraction of the way to the critics")
    batch_size: int = _opt(128, "transitions per gradient update")
    buffer_size: int = _opt(1_000_000, "replay buffer capacity in transitions")
    learning_starts: int = _opt(500, "env steps of uniformly random actions before learning starts")
    hidden: list[int] = _opt([80, 80], "hidden layer sizes of the actor and the critics, e.g. --hidden 256 256")
    utd: int = _opt(4, "update-to-data ratio: gradient updates of the critics per env step")
    policy_delay: int = _opt(4, "update the actor and the entropy temperature at every Nth gradient update only, the critics at every one (TD3's delayed policy update; with --utd 4, the actor once per env step); 1 = the paper's SAC")
    updates_every: int = _opt(1, "collect N env steps, then do their N*utd updates in one go (faster; each update then sees other data than with 1); an episode's updates are all done by its end")
    her: bool | None = _opt(None, "hindsight goal relabelling; on by default for goal envs (Robot6Reach-v0, Dict observation/achieved_goal/desired_goal envs), --no-her turns it off")
    her_k: int = _opt(2, "with --her: relabelled goals per original transition, drawn from the same episode's future (with --her-relabel sample, a sampled transition is relabelled with probability k/(k+1))")
    her_relabel: str = _opt("sample", "with --her: when goals are relabelled: sample (a fresh goal each time a transition is sampled, as Stable-Baselines3's HerReplayBuffer) or store (her-k relabelled copies stored at each episode end)", metavar="{sample,store}")
    demos: int = _opt(0, "a fresh run first fills the replay buffer with N episodes of the env's scripted controller (Robot6Push-v0: robot6.envs.tasks.push.scripted_push; Robot6PickAndPlace-v0: robot6.envs.tasks.pick_and_place.scripted_pick), stored and relabelled by HER like any transition; they are not steps of the run (--total-steps, the logs and the warm-up do not count them)", metavar="N")
    replay_on_device: bool = _opt(False, "keep a copy of the replay buffer on the training device (the GPU) and gather batches there")
    compile: bool | None = _opt(None, "a compiled update: on CUDA (the default there) the update captured once as a CUDA graph and replayed, the same results bit for bit; on a CPU through torch.compile (about 20 s of compiling at the first update, the same update to float rounding, needs a C++ compiler and the Python headers; slower than the plain update at --policy-delay > 1); --no-compile: the plain update everywhere")
    init_alpha: float = _opt(0.1, "initial entropy temperature, tuned automatically towards entropy -act_dim")
    eval_every: int = _opt(5000, "evaluate the deterministic policy every N env steps (at the first episode end past each multiple) on its own env and seeds; best.pth is then the checkpoint of the best mean evaluation return (before the first evaluation, of the best exploring episode); 0: no evaluation, best.pth by the exploring episodes' return")
    eval_episodes: int = _opt(20, "episodes per evaluation, each on a fresh goal")
    presets: str | None = _opt(None, "a fresh run's settings from this presets file instead of robot6/presets.toml (e.g. the one robot6-sweep STUDY --best writes)", metavar="PATH")
    checkpoint_dir: str = _opt("checkpoints", "folder holding one sub-folder of checkpoints per run")
    log_dir: str = _opt("runs", "folder holding one sub-folder of TensorBoard events and training.csv per run")
    ckpt_every: int = _opt(50, "also keep ckpt_ep_N.pth every N episodes (latest.pth is written every episode)")
    save_every_steps: int | None = _opt(None, "also keep ckpt_step_S.pth at the first episode end past every multiple of N env steps")
    keep_last: int | None = _opt(None, "keep only the newest K periodic checkpoints (ckpt_ep_*, ckpt_step_*); latest.pth and best.pth always stay")
    wandb: str | None = _opt(None, "also log to this Weights & Biases project (needs the wandb package); --resume continues the same W&B run")
    resume: bool = _opt(False, "continue the newest run from its newest valid checkpoint (or start fresh if none)")
    resume_ckpt: str | None = _opt(None, "with --resume: continue from this checkpoint file instead (e.g. best.pth)")

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the flag of the first invalid value."""
        positive_ints = ("episodes", "batch_size", "buffer_size", "ckpt_every", "utd", "policy_delay", "updates_every", "her_k",
                         "eval_episodes")
        for name in positive_ints:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{flag_of(name)} must be a positive integer, got {getattr(self, name)}")
        for name in ("total_steps", "save_every_steps", "keep_last"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{flag_of(name)} must be a positive integer, got {value}")
        if self.demos < 0:
            raise ConfigError(f"--demos must be >= 0, got {self.demos}")
        if self.her_relabel not in ("sample", "store"):
            raise ConfigError(f"--her-relabel must be sample or store, got {self.her_relabel!r}")
        if self.eval_every < 0:
            raise ConfigError(f"--eval-every must be >= 0 (0: no evaluation), got {self.eval_every}")
        if self.learning_starts < 0:
            raise ConfigError(f"--learning-starts must be >= 0, got {self.learning_starts}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"--gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"--tau must be in (0, 1], got {self.tau}")
        if not (self.init_alpha > 0 and math.isfinite(self.init_alpha)):
            raise ConfigError(f"--init-alpha must be a positive number, got {self.init_alpha}")
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ConfigError(f"--hidden needs one or more positive layer sizes, got {self.hidden}")
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"--batch-size ({self.batch_size}) cannot exceed --buffer-size ({self.buffer_size})")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.urdf is None and (self.ee_link is not None or self.workspace is not None):
            raise ConfigError("--ee-link and --workspace need --urdf PATH (the arm they are about)")
        if self.urdf is not None and self.env_id not in URDF_ENVS:
            raise ConfigError(f"--urdf works with --env {', '.join(URDF_ENVS)}, not {self.env_id}")
        if self.card is not None and (self.urdf is None or self.env_id not in CUBE_ENVS):
            raise ConfigError(f"--card describes the gripper of --urdf PATH on --env {', '.join(CUBE_ENVS)}")
        if self.urdf is not None and self.env_id != "Robot6Reach-v0" and (self.ee_link is not None or self.workspace is not None):
            raise ConfigError("--ee-link and --workspace are Robot6Reach-v0's; on Push and Pick-and-Place the card gives the arm's tool point")
        if self.accept_urdf_change and not (self.resume and self.urdf is not None):
            raise ConfigError("--accept-urdf-change needs --resume and --urdf PATH (the URDF to continue with)")
        if self.resume_ckpt is not None and not self.resume:
            raise ConfigError("--resume-ckpt needs --resume (--resume --resume-ckpt PATH)")
        if self.randomize and self.env_id not in URDF_ENVS:
            raise ConfigError(f"--randomize works with --env {', '.join(URDF_ENVS)}, not {self.env_id}")
        if self.action_history:
            from robot6.envs.interface import MAX_ACTION_HISTORY

            if not 0 <= self.action_history <= MAX_ACTION_HISTORY:
                raise ConfigError(f"--action-history must be from 0 to {MAX_ACTION_HISTORY}, got {self.action_history}")
            if self.env_id not in URDF_ENVS:
                raise ConfigError(f"--action-history works with --env {', '.join(URDF_ENVS)}, not {self.env_id}")
        if self.randomization is not None:
            from robot6.envs.randomize import RandomizationError, check_ranges

            try:
                check_ranges(self.randomization, where="--randomization")
            except RandomizationError as e:
                raise ConfigError(str(e)) from None

    def env_kwargs(self, randomized: bool = False) -> dict[str, Any]:
        """The keyword arguments of ``gymnasium.make`` for this run's env: the arm options that are set, the action
        history if any, and with ``randomized`` the ranges of ``--randomize`` (the training env's; evaluation's with
        ``--eval-randomize``)."""
        kwargs = {name: getattr(self, name) for name in ("urdf", "card", "ee_link", "workspace") if getattr(self, name) is not None}
        if self.action_history:
            kwargs["action_history"] = self.action_history
        if randomized and self.randomize:
            kwargs["randomize"] = dict(self.randomization or {})
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, int, float, bool, None, list) for checkpoints and config.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of ``to_dict``; keys this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def value_text(value: Any) -> str:
    """A setting as it is typed on the command line: ``[80, 80]`` -> ``80 80``, ``0.001`` -> ``0.001``."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def flag_of(name: str) -> str:
    """The command-line flag of a ``Config`` field, e.g. ``batch_size`` -> ``--batch-size``."""
    f = next(f for f in dataclasses.fields(Config) if f.name == name)
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


# Fields that name what is trained or where it is written, rather than how: a checkpoint's value of these
# is not reported as "changed" on resume.
RUN_FIELDS = ("accept_urdf_change", "presets", "episodes", "total_steps", "device", "wandb", "resume", "resume_ckpt", "checkpoint_dir", "log_dir")
