"""Hyperparameter sweeps on Optuna whose trials are ordinary, resumable runs (docs/SWEEPS.md).

    robot6-sweep STUDY --env Robot6Push-v0 --trials 40 --budget 200000 --seeds 2 --workers 2
    robot6-sweep STUDY --storage postgresql+psycopg://user:pw@host/db ...   # the same on every machine
    robot6-sweep STUDY --best          # the top trials, the command that trains the best, a preset file
    robot6-sweep STUDY --plot          # optimisation history and parameter importances (PNG)

A trial is one run per seed under ``sweeps/STUDY/trial_N/seed_K/`` (checkpoints, TensorBoard, CSV), trained
for ``--budget`` env steps with the env's preset and the trial's parameters (the search space is the
``search`` table of robot6/presets.toml) and evaluated ``--evals`` times on the deterministic policy; its value is
the mean over seeds of the last evaluation (success rate on goal envs, else mean return), and each
evaluation is reported for pruning. Storage: a journal file ``sweeps/STUDY/journal.log`` by default (no
server; processes on one machine or on machines sharing the folder), or ``--storage`` an Optuna RDB URL
(PostgreSQL for many machines). No trial is lost: a worker's trial whose heartbeat stops is marked failed and
queued again with the same parameters, and the worker that takes it resumes its runs from their checkpoints
when it can see their files (else it restarts them and says so); SIGINT/SIGTERM finishes the episode, saves,
and queues the trial again at once.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import types
import warnings
from pathlib import Path
from typing import Any

from robot6.errors import ConfigError, Robot6Error
from robot6.run.config import Config, flag_of, value_text
from robot6.run.presets import PRESETS_FILE, load_presets, read_presets_file
from robot6.run.report import command

ROOT_ATTR = "sweep:root"  # user attr: the trial whose files a retried trial continues
SEEDS_ATTR = "sweep:seed_values"  # user attr: each seed's final evaluation
SURPLUS_ATTR = "sweep:surplus"  # user attr: a trial asked for after the study had all it needs
HEARTBEAT_ATTR = "sweep:heartbeat"  # system attr (journal storage): the time its worker last said it was alive
SETTINGS_ATTR = "sweep:settings"  # study user attr: env, budget, seeds, evals; every worker must match them
GRACE_S = 60  # default --grace: a trial without a heartbeat for this long is taken as dead
DB_RETRY_S = 120  # how long a write to an RDB storage is retried while the server is away


class Stopped(Exception):
    """The worker was asked to stop (SIGINT/SIGTERM): the trial's runs are saved, the trial goes back to the queue."""


class Surplus(Exception):
    """The study already had every trial it needs when this one was asked for."""


def masked(url: str) -> str:
    """A storage URL with its password hidden, for anything printed or stored."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<storage URL>"


def _connection_lost(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it: Optuna wraps SQLAlchemy's errors) says the database is unreachable."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError

    while error is not None:
        if isinstance(error, (OperationalError, InterfaceError, PendingRollbackError)):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        error = error.__cause__ or error.__context__
    return False


def _retrying(method):
    """``method`` of an RDB storage, retried while the database cannot be reached (a server restart)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        deadline = time.monotonic() + DB_RETRY_S
        delay = 0.5
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as e:
                if not _connection_lost(e) or time.monotonic() > deadline:
                    raise
                print(f"[SWEEP] database unreachable ({method.__name__}); retrying in {delay:.1f} s", flush=True)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    return call


def heartbeat_period(grace: int) -> int:
    """Seconds between heartbeats: several per grace period, so that one late beat is not a death."""
    return max(1, grace // 6)


def open_storage(url: str | None, study_dir: Path, grace: int = GRACE_S):
    """The study's storage: a journal file in ``study_dir``, or the RDB at ``url`` with Optuna's heartbeats,
    dead trials queued again (``requeue``), and every call retried while the server is away."""
    import optuna

    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        study_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    if url.startswith("sqlite"):
        raise ConfigError("--storage: SQLite locks up with parallel workers; use the default journal file on one machine "
                          "or PostgreSQL for many (docs/SWEEPS.md)")
    base = optuna.storages.RDBStorage
    # Every storage call (and the heartbeat's), not the constructor: Optuna's RDB storage does not retry.
    names = [n for n, v in vars(base).items() if isinstance(v, types.FunctionType)
             and (not n.startswith("_") or n == "_get_stale_trial_ids")
             and n not in ("remove_session", "upgrade", "get_current_version", "get_head_version", "get_all_versions")]
    retrying = type("RetryingRDBStorage", (base,), {n: _retrying(getattr(base, n)) for n in names})
    for attempt in range(5):
        try:
            return retrying(url, heartbeat_interval=heartbeat_period(grace), grace_period=grace,
                            heartbeat_stale_trial_callback=requeue, engine_kwargs={"pool_pre_ping": True})
        except Exception as e:
            # Workers that start together on a new database race to create Optuna's tables: the losers retry.
            racing = "already exists" in str(e) or "duplicate key" in str(e)
            if racing and attempt < 4:
                time.sleep(0.5 + 0.5 * attempt)
                continue
            raise ConfigError(f"--storage {masked(url)}: cannot open it ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    raise AssertionError("unreachable")


def requeue(study, trial) -> None:
    """Queue a failed trial again with its parameters, pointing at the trial whose files it continues."""
    import optuna

    root = trial.user_attrs.get(ROOT_ATTR, trial.number)
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.WAITING, params=trial.params,
                                        distributions=trial.distributions, user_attrs={ROOT_ATTR: root}))
    print(f"[SWEEP] trial {trial.number} failed; queued again (its runs are those of trial {root})", flush=True)


def search_space(env_id: str, path: Path = PRESETS_FILE) -> dict[str, Any]:
    """The env's search space from the presets file's ``search`` table (``search.ENV`` over ``search.default``)."""
    tables = read_presets_file(path).get("search", {})
    space = tables.get(env_id) or tables.get("default")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: no [search.default] (or [search.\"{env_id}\"]) table for sweeps")
    fields = set(Config.__dataclass_fields__)
    unknown = sorted(set(space) - fields)
    if unknown:
        raise ConfigError(f"{path}: [search] names settings {command('train')} does not have: {', '.join(unknown)}")
    return space


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    """The trial's value of each setting of ``space`` (a list: a choice; a table: a range)."""
    values = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            labels = [value_text(v) for v in spec]  # Optuna's choices are plain values: "256 256" for [256, 256]
            label = trial.suggest_categorical(name, labels)
            values[name] = spec[labels.index(label)]
        elif isinstance(spec.get("low"), int) and isinstance(spec.get("high"), int):
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            values[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return values


class Sweep:
    """One worker's view of a study: its settings, storage and folder; ``work()`` runs trials until the study
    has ``trials`` finished (complete or pruned) ones."""

    def __init__(self, args: argparse.Namespace):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # this module prints what happens, in one line each
        self.args = args
        self.dir = Path(args.sweeps_dir) / args.study
        self.storage = open_storage(args.storage, self.dir, args.grace)
        self.journal = args.storage is None
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=args.prune_after, n_warmup_steps=args.budget // 2)
                  if args.pruner == "median" else optuna.pruners.NopPruner())
        self.study = optuna.create_study(study_name=args.study, storage=self.storage, direction="maximize",
                                         pruner=pruner, load_if_exists=True)
        self.stop = threading.Event()
        self.stop_signal: int | None = None  # the signal that stopped this worker

    def check_settings(self) -> None:
        """Record the study's settings, or check that this worker's match them."""
        mine = {"env": self.args.env, "budget": self.args.budget, "seeds": self.args.seeds, "evals": self.args.evals}
        theirs = self.study.user_attrs.get(SETTINGS_ATTR)
        if theirs is None:
            self.study.set_user_attr(SETTINGS_ATTR, mine)
        elif theirs != mine:
            diff = ", ".join(f"--{k} {theirs[k]} (not {mine[k]})" for k in mine if theirs.get(k) != mine[k])
            raise ConfigError(f"study {self.args.study} was started with {diff}; join it with the same settings")

    def counts(self) -> dict[Any, int]:
        from optuna.trial import TrialState

        counts = {state: 0 for state in TrialState}
        for t in self.study.get_trials(deepcopy=False):
            if not t.user_attrs.get(SURPLUS_ATTR):
                counts[t.state] += 1
        return counts

    def fail_stale(self) -> None:
        """Mark trials whose worker died as failed and queue them again (Optuna does this for RDB storages;
        for the journal, under a lock so that two workers do not both do it)."""
        import optuna
        from filelock import FileLock

        if not self.journal:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            return
        with FileLock(str(self.dir / "requeue.lock")):
            now = time.time()
            for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                beat = t.system_attrs.get(HEARTBEAT_ATTR) or (t.datetime_start.timestamp() if t.datetime_start else now)
                if now - beat > self.args.grace:
                    self.storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
                    requeue(self.study, t)

    def work(self) -> None:
        """Run trials until the study has enough finished ones; wait while the last ones run elsewhere."""
        from optuna.trial import TrialState

        self.check_settings()
        while not self.stop.is_set():
            self.fail_stale()
            c = self.counts()
            done = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
            if done >= self.args.trials:
                return
            if done + c[TrialState.RUNNING] >= self.args.trials and c[TrialState.WAITING] == 0:
                self.stop.wait(min(5.0, self.args.grace / 4))  # the last trials run elsewhere; take over any that die
                continue
            try:
                self.study.optimize(self.objective, n_trials=1, catch=())
            except (Surplus, Stopped):
                pass

    def objective(self, trial) -> float:
        """Train (or resume) the trial's runs, one per seed; the mean of their last evaluations. A trial asked
        for once the study already has every trial it needs is marked surplus and trains nothing."""
        from optuna.trial import TrialState

        live = [t for t in self.study.get_trials(deepcopy=False)
                if t.number < trial.number and not t.user_attrs.get(SURPLUS_ATTR)
                and t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)]
        if len(live) >= self.args.trials:
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise Surplus()
        root = trial.user_attrs.get(ROOT_ATTR, trial.number)
        folder = self.dir / f"trial_{root}"
        if root != trial.number:
            visible = any(folder.glob("seed_*/checkpoints/*/latest.pth"))
            print(f"[SWEEP] trial {trial.number} retries trial {root}: "
                  + ("resuming its runs from their checkpoints" if visible else
                     f"its files are not in {folder}: restarting its runs from zero"), flush=True)
        params = suggest(trial, search_space(self.args.env, Path(self.args.presets or PRESETS_FILE)))
        print(f"[SWEEP] trial {trial.number}: " + " ".join(f"{flag_of(k)} {value_text(v)}" for k, v in params.items()),
              flush=True)
        with self.heartbeat(trial):
            values = []
            try:
                for seed in range(self.args.seeds):
                    values.append(self.run_seed(trial, folder, seed, params))
            except Stopped as e:
                self.stop_signal = e.args[0] if e.args else signal.SIGTERM
                self.stop.set()
                requeue(self.study, trial)  # the runs are saved: the next worker resumes them
                raise
        trial.set_user_attr(SEEDS_ATTR, values)
        value = sum(values) / len(values)
        print(f"[SWEEP] trial {trial.number}: {value:.4g} (seeds: {', '.join(f'{v:.4g}' for v in values)})", flush=True)
        return value

    def run_seed(self, trial, folder: Path, seed: int, params: dict[str, Any]) -> float:
        """Train (or resume, or find complete) the trial's run of ``seed``; its last evaluation's score."""
        import optuna

        from robot6.run import checkpoint as ckpt
        from robot6.run.loop import train

        budget, args = self.args.budget, self.args
        every = max(1, budget // args.evals)
        checkpoints = folder / f"seed_{seed}" / "checkpoints"
        config = Config(env_id=args.env, seed=seed, total_steps=budget, eval_every=every, checkpoint_dir=str(checkpoints),
                        log_dir=str(folder / f"seed_{seed}" / "runs"), resume=any(checkpoints.glob("*/*.pth")),
                        presets=args.presets, **params)
        given = {"env_id", "seed", "total_steps", "eval_every", "checkpoint_dir", "log_dir", "resume", *params}
        if args.eval_episodes is not None:
            config.eval_episodes = args.eval_episodes
            given.add("eval_episodes")

        def report(step: int, summary: dict[str, float]) -> None:
            trial.report(score(summary), seed * budget + step)
            if trial.should_prune():
                print(f"[SWEEP] trial {trial.number} pruned at seed {seed}, step {step}", flush=True)
                raise optuna.TrialPruned()

        result = train(config, given, on_evaluation=report)
        if result.interrupted:
            raise Stopped(result.stop_signal)
        state = ckpt.load_checkpoint(result.last_checkpoint)
        last = (state.get("evaluation") or {}).get("last")
        if last is None:
            raise ConfigError(f"{result.last_checkpoint}: the run has no evaluation; --evals must be positive")
        return score(last)

    @contextlib.contextmanager
    def heartbeat(self, trial):
        """While the trial runs, say so every ``heartbeat_period`` (journal storage; Optuna does it for RDB)."""
        if not self.journal:
            yield
            return
        done = threading.Event()

        def beat() -> None:
            while not done.is_set():
                try:
                    self.storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
                except Exception as e:  # e.g. another worker took the trial as dead: its own end says so
                    print(f"[SWEEP] trial {trial.number}: heartbeat stopped ({type(e).__name__})", flush=True)
                    return
                done.wait(heartbeat_period(self.args.grace))

        thread = threading.Thread(target=beat, name="sweep-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def score(summary: dict[str, float]) -> float:
    """An evaluation's score: the success rate where the env reports success, else the mean return."""
    rate = summary.get("success_rate", float("nan"))
    return float(rate) if math.isfinite(rate) else float(summary["mean_return"])


def load_study(args: argparse.Namespace):
    """The existing study ``args.study`` (``ConfigError`` if there is none), and its folder."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study_dir = Path(args.sweeps_dir) / args.study
    where = masked(args.storage) if args.storage else str(study_dir / "journal.log")
    if args.storage is None and not (study_dir / "journal.log").is_file():
        raise ConfigError(f"no study {args.study} in {where}")
    try:
        return optuna.load_study(study_name=args.study, storage=open_storage(args.storage, study_dir)), study_dir
    except KeyError:
        raise ConfigError(f"no study {args.study} in {where}") from None


def best(args: argparse.Namespace, top: int = 5) -> int:
    """Print the top trials and the command that trains the best; write it as a preset file."""
    import optuna

    study, study_dir = load_study(args)
    settings = study.user_attrs.get(SETTINGS_ATTR, {})
    trials = sorted((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: -t.value)
    if not trials:
        raise ConfigError(f"study {args.study}: no complete trial yet")
    space = search_space(settings.get("env", args.env), Path(args.presets or PRESETS_FILE))
    print(f"study {args.study}: {len(trials)} complete trials; {settings.get('env')}, {settings.get('budget'):,} steps, "
          f"{settings.get('seeds')} seed(s) each")
    print("| trial | value | seeds (min-max) | " + " | ".join(flag_of(k) for k in space) + " |")
    print("|" + " --- |" * (3 + len(space)))
    for t in trials[:top]:
        seeds = t.user_attrs.get(SEEDS_ATTR, [t.value])
        print(f"| {t.number} | {t.value:.4g} | {min(seeds):.4g} to {max(seeds):.4g} | "
              + " | ".join(str(t.params.get(k, "")) for k in space) + " |")
    winner = trials[0]
    params = {k: _parse(k, v, space) for k, v in winner.params.items()}
    env = settings.get("env", args.env)
    train = [command("train"), "--env", env, "--total-steps", str(settings.get("budget"))]
    if args.presets:
        train += ["--presets", args.presets]
    for k, v in params.items():
        train += [flag_of(k), value_text(v)]
    print("\nthe best trial's settings, trained like its runs:\n  " + " ".join(train))
    preset = study_dir / "best_preset.toml"
    defaults = load_presets(Path(args.presets or PRESETS_FILE))["default"]
    lines = ["# The best trial of study " + args.study + f" (trial {winner.number}, value {winner.value:.4g}).",
             "[default]", *(f"{k} = {_toml(v)}" for k, v in defaults.items()), "", f'["{env}"]',
             *(f"{k} = {_toml(v)}" for k, v in params.items())]
    preset.write_text("\n".join(lines) + "\n")
    print(f"as a preset: {command('train')} --env {env} --presets {preset} --total-steps {settings.get('budget')}")
    return 0


def _parse(name: str, value: Any, space: dict[str, Any]) -> Any:
    """A trial's parameter as the setting's value ("256 256" back to [256, 256])."""
    spec = space.get(name)
    if isinstance(spec, list):
        return spec[[value_text(v) for v in spec].index(value)]
    return value


def _toml(value: Any) -> str:
    return json.dumps(value)


def plot(args: argparse.Namespace) -> int:
    """Write the optimisation history and the parameter importances as PNGs beside the study."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as vis

    study, study_dir = load_study(args)
    study_dir.mkdir(parents=True, exist_ok=True)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError(f"study {args.study}: no complete trial yet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
        figures = {"history": vis.plot_optimization_history(study)}
        if len(done) >= 2:
            figures["importances"] = vis.plot_param_importances(study)
    for name, ax in figures.items():
        path = study_dir / f"{name}.png"
        ax.figure.savefig(path, dpi=100, bbox_inches="tight")
        print(f"wrote {path}")
    return 0


def spawn_workers(args: argparse.Namespace, argv: list[str]) -> int:
    """Run ``--workers`` worker processes here, each with cores/N torch threads. They run in their own session,
    so a signal to this process's group (Ctrl+C, ``timeout``) reaches them once, forwarded from here."""
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen([sys.executable, "-m", "robot6.sweep", *argv, "--workers", "1"], env=env, start_new_session=True)
             for _ in range(args.workers)]

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return max(codes, key=abs)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog=command("sweep"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", help="the study's name (its folder: SWEEPS_DIR/STUDY)")
    p.add_argument("--env", default="Robot6Reach-v0", help="gymnasium env id (default: Robot6Reach-v0)")
    p.add_argument("--trials", type=int, default=20, help="finished (complete or pruned) trials the study needs (default: 20)")
    p.add_argument("--budget", type=int, default=20_000, help="env steps of each run (default: 20000)")
    p.add_argument("--seeds", type=int, default=1, help="runs per trial, seeds 0..N-1; the value is their mean (default: 1)")
    p.add_argument("--evals", type=int, default=5, help="evaluations per run, the last at the budget (default: 5)")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation (default: the env's preset)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine, each with cores/N threads")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="an Optuna RDB URL, e.g. postgresql+psycopg://user:password@host/db (default: the journal "
                        "file SWEEPS_DIR/STUDY/journal.log); never printed with its password")
    p.add_argument("--pruner", choices=("median", "none"), default="median",
                   help="median: stop a trial whose evaluation is below the median of earlier trials at the same "
                        "step, after half the budget and --prune-after finished trials; none (default: median)")
    p.add_argument("--prune-after", type=int, default=5, help="finished trials before the median pruner acts (default: 5)")
    p.add_argument("--grace", type=int, default=GRACE_S, metavar="SECONDS",
                   help=f"a trial whose worker has been silent this long is taken as dead and queued again (default: {GRACE_S})")
    p.add_argument("--presets", default=None, metavar="PATH", help="presets file with the search space (default: robot6/presets.toml)")
    p.add_argument("--sweeps-dir", default="sweeps", metavar="PATH", help="folder of the studies (default: sweeps)")
    p.add_argument("--best", action="store_true", help="print the top trials and the command that trains the best")
    p.add_argument("--plot", action="store_true", help="write history.png and importances.png in the study's folder")
    args = p.parse_args(argv)
    try:
        for name in ("trials", "budget", "seeds", "evals", "workers", "prune_after", "grace"):
            if getattr(args, name) <= 0 and not (name == "prune_after" and args.prune_after == 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
        if args.evals > args.budget:
            raise ConfigError(f"--evals ({args.evals}) cannot exceed --budget ({args.budget})")
        if args.best or args.plot:
            return (best(args) if args.best else 0) or (plot(args) if args.plot else 0)
        if args.workers > 1:
            return spawn_workers(args, [a for i, a in enumerate(argv) if not _is_workers(argv, i)])
        where = masked(args.storage) if args.storage else str(Path(args.sweeps_dir) / args.study / "journal.log")
        print(f"[SWEEP] study {args.study} on {where}: {args.trials} trials of {args.env}, {args.budget:,} steps x "
              f"{args.seeds} seed(s); worker pid {os.getpid()}", flush=True)
        sweep = Sweep(args)
        def on_signal(signum, frame):  # between trials; during one, the trainer's handler finishes the episode
            sweep.stop_signal = signum
            sweep.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        sweep.work()
        if sweep.stop_signal is not None:
            return 128 + sweep.stop_signal
    except Robot6Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _is_workers(argv: list[str], i: int) -> bool:
    """Whether ``argv[i]`` is ``--workers``, its value, or ``--workers=N``."""
    return argv[i] == "--workers" or argv[i].startswith("--workers=") or (i > 0 and argv[i - 1] == "--workers")


if __name__ == "__main__":
    sys.exit(main())
