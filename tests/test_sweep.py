"""python -m robot6.sweep: studies on a journal file and on a real PostgreSQL server; several workers, a SIGKILLed
worker whose trial is resumed from its checkpoints, a server restart mid-sweep, --best and --plot."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from conftest import cli_env

from robot6 import train as train_command
from robot6.run.logger import read_csv_rows

# Small networks and a small search space: the tests check the sweep, not what it finds.
PRESETS = """
[default]
hidden = [32, 32]
batch_size = 32
utd = 1
policy_delay = 1
learning_starts = 100

[search.default]
lr = { low = 1e-4, high = 1e-2, log = true }
gamma = [0.9, 0.95, 0.99]
hidden = [[16, 16], [32, 32]]
"""


@pytest.fixture(autouse=True)
def presets(tmp_path: Path) -> Path:
    path = tmp_path / "presets.toml"
    path.write_text(PRESETS)
    return path


# Pendulum-v1 episodes are 200 steps: 3 episodes per run, evaluated at 200 and 600 steps on one episode.
TINY = ["--env", "Pendulum-v1", "--budget", "600", "--evals", "2", "--eval-episodes", "1", "--grace", "4",
        "--presets", "presets.toml"]
PASSWORD = "s3cret-pw"


def sweep(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot6.sweep", *args], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


def start_sweep(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "robot6.sweep", *args], cwd=cwd, env=cli_env(),
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True)


def trials(study: str, cwd: Path, storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
    from robot6.sweep import open_storage

    return optuna.load_study(study_name=study, storage=open_storage(storage, cwd / "sweeps" / study)).trials


def finished(ts) -> list:
    return [t for t in ts if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def run_rows(run_folder: Path) -> list[int]:
    """The episode numbers of a seed's training.csv."""
    (log_dir,) = (run_folder / "runs").iterdir()
    return [int(r["episode"]) for r in read_csv_rows(log_dir / "training.csv")]


def test_two_workers_on_the_journal_then_best_and_plot(tmp_path, capsys):
    result = sweep("j", *TINY, "--trials", "3", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    ts = trials("j", tmp_path)
    assert len(finished(ts)) == 3
    numbers = [t.number for t in finished(ts)]
    for n in numbers:  # one run per seed, trained once: episodes 0, 1, 2
        assert run_rows(tmp_path / "sweeps" / "j" / f"trial_{n}" / "seed_0") == [0, 1, 2]
    best = sweep("j", "--best", "--presets", "presets.toml", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    command = next(line.strip() for line in best.stdout.splitlines() if line.strip().startswith("python -m robot6.train"))
    preset = tmp_path / "sweeps" / "j" / "best_preset.toml"
    assert preset.is_file()
    # The printed command and the preset file train the best trial's parameters.
    winner = sorted(finished(ts), key=lambda t: (-t.value, t.number))[0]
    args = command.split()[3:]
    parsed = vars(train_command.build_parser().parse_args(args))
    assert str(parsed["gamma"]) == winner.params["gamma"] and parsed["lr"] == pytest.approx(winner.params["lr"])
    assert " ".join(map(str, parsed["hidden"])) == winner.params["hidden"]
    assert len({t.value for t in finished(ts)}) > 1  # the trials learnt differently
    os.chdir(tmp_path)
    code = train_command.main(["--env", "Pendulum-v1", "--presets", str(preset), "--episodes", "1"])
    out = capsys.readouterr().out
    assert code == 0 and f"lr {winner.params['lr']}" in out and f"gamma {winner.params['gamma']}" in out
    plot = sweep("j", "--plot", cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "sweeps" / "j" / "history.png").stat().st_size > 0


def kill_and_resume(tmp_path: Path, storage_args: list[str], study: str, storage: str | None = None,
                    sig: int = signal.SIGKILL) -> None:
    """Stop a worker mid-trial with ``sig``; a second worker takes the trial over (after the grace period for
    SIGKILL; at once after SIGTERM, which saves and queues the trial again) and resumes its run from its
    checkpoint: the study completes, the CSV goes on without a gap or a duplicate."""
    args = [study, "--env", "Robot6Reach-v0", "--budget", "1000", "--evals", "2", "--eval-episodes", "2", "--grace", "4",
            "--trials", "2", "--presets", "presets.toml", *storage_args]
    first = start_sweep(*args, cwd=tmp_path, log=tmp_path / "first.log")
    latest = tmp_path / "sweeps" / study / "trial_0" / "seed_0" / "checkpoints" / "latest_checkpoint.json"
    deadline = time.monotonic() + 120
    import json

    while time.monotonic() < deadline:
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        try:
            if json.loads(latest.read_text())["episode"] >= 4:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    first.send_signal(sig)
    assert first.wait(timeout=60) == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig)
    second = sweep(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert "retries trial 0: resuming its runs from their checkpoints" in second.stdout
    ts = trials(study, tmp_path, storage)
    assert len(finished(ts)) == 2
    assert sum(t.state == optuna.trial.TrialState.FAIL for t in ts) == 1  # the killed one, retried once
    assert run_rows(tmp_path / "sweeps" / study / "trial_0" / "seed_0") == list(range(20))  # 1000 steps, no gap
    (retry,) = [t for t in ts if t.user_attrs.get("sweep:root") == 0 and t.number != 0]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert not (tmp_path / "sweeps" / study / f"trial_{retry.number}").exists()  # it trained in trial 0's folder


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_stopped_worker_s_trial_is_resumed_on_the_journal(tmp_path, sig):
    kill_and_resume(tmp_path, [], "jk", sig=sig)


@pytest.mark.parametrize("args, message", [
    (["--storage", "sqlite:///s.db"], "SQLite locks up with parallel workers"),
    (["--budget", "0"], "--budget must be a positive integer"),
    (["--evals", "10", "--budget", "5"], "--evals (10) cannot exceed --budget (5)"),
    (["--storage", "postgresql+psycopg://u:hidden-pw@127.0.0.1:1/db"], "cannot open it"),
    (["--best"], "no study s in sweeps/s/journal.log"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
    from robot6 import sweep as sweep_module

    monkeypatch.chdir(tmp_path)
    assert sweep_module.main(["s", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "hidden-pw" not in err, err


def test_a_worker_with_other_settings_cannot_join_a_study(tmp_path):
    first = sweep("s", *TINY, "--trials", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    other = sweep("s", *TINY, "--trials", "1", "--seeds", "2", cwd=tmp_path)
    assert other.returncode == 2 and "--seeds 1 (not 2)" in other.stderr, other.stderr


# A real PostgreSQL server: Debian's postgresql package (.ci/run installs it), started as an unprivileged user.
def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A throwaway PostgreSQL server on a free 127.0.0.1 port with a password; yields (url, pg_ctl command)."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (apt-get install -y postgresql)")
        pytest.skip("needs PostgreSQL: apt-get install -y postgresql")
    base = Path(tempfile.mkdtemp(prefix="robot6_pg_"))  # outside pytest's folders, which only root may enter
    data = base / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        os.chmod(base, 0o777)
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD)
    os.chmod(pwfile, 0o644)
    done = subprocess.run([*as_user, initdb, "-D", str(data), "-U", "sweeper", "--pwfile", str(pwfile), "--auth",
                           "scram-sha-256"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=50"
    ctl = [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w"]
    subprocess.run([*ctl, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://sweeper:{PASSWORD}@127.0.0.1:{port}/postgres", ctl
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_three_workers_share_one_postgresql_study(postgres, tmp_path):
    url, _ = postgres
    result = sweep("pg3", *TINY, "--trials", "4", "--workers", "3", "--storage", url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    ts = trials("pg3", tmp_path, url)
    assert len(finished(ts)) == 4
    folders = {p.name for p in (tmp_path / "sweeps" / "pg3").glob("trial_*")}
    assert folders == {f"trial_{t.number}" for t in finished(ts)}  # a trial asked for beyond 4 trains nothing
    for t in finished(ts):  # no two workers ran the same trial: each run trained once
        assert run_rows(tmp_path / "sweeps" / "pg3" / f"trial_{t.number}" / "seed_0") == [0, 1, 2]
    assert PASSWORD not in result.stdout + result.stderr and "***" in result.stdout
    for f in (tmp_path / "sweeps").rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f
    best = sweep("pg3", "--best", "--storage", url, "--presets", "presets.toml", cwd=tmp_path)
    assert best.returncode == 0 and "python -m robot6.train --env Pendulum-v1" in best.stdout, best.stderr


def test_a_killed_worker_s_trial_is_resumed_on_postgresql(postgres, tmp_path):
    kill_and_resume(tmp_path, ["--storage", postgres[0]], "pgk", postgres[0])


def test_the_sweep_survives_a_postgresql_restart(postgres, tmp_path):
    url, ctl = postgres
    proc = start_sweep("pgr", *TINY, "--trials", "4", "--storage", url, cwd=tmp_path, log=tmp_path / "w.log")
    deadline = time.monotonic() + 60
    while not list((tmp_path / "sweeps" / "pgr").glob("trial_1")) and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run([*ctl, "-m", "fast", "restart"], check=True, capture_output=True)
    assert proc.wait(timeout=240) == 0, (tmp_path / "w.log").read_text()[-3000:]
    assert len(finished(trials("pgr", tmp_path, url))) == 4


def test_sigterm_to_the_workers_group_saves_every_trial_once(tmp_path):
    """A signal to the whole process group (``timeout``, Ctrl+C) reaches each worker once, through the parent:
    each finishes its episode, saves and queues its trial again (a second signal would quit without that)."""
    proc = subprocess.Popen([sys.executable, "-m", "robot6.sweep", "g", "--env", "Robot6Reach-v0", "--budget", "100000",
                             "--trials", "4", "--workers", "2", "--presets", "presets.toml"], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list((tmp_path / "sweeps" / "g").glob("trial_*/seed_0/checkpoints/*/latest.pth"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-2000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "Second signal" not in out and out.count("queued again") == 2
    waiting = [t for t in trials("g", tmp_path) if t.state == optuna.trial.TrialState.WAITING]
    assert sorted(t.user_attrs["sweep:root"] for t in waiting) == [0, 1]


@pytest.mark.parametrize("pruner, state", [("median", optuna.trial.TrialState.PRUNED),
                                           ("none", optuna.trial.TrialState.COMPLETE)])
def test_the_median_pruner_stops_a_trial_below_the_finished_ones(tmp_path, pruner, state):
    """A finished trial at 100% success at every evaluation step; a new trial at 300 steps is below it, so the
    median pruner (past half the budget, after one finished trial) stops it there; --pruner none lets it run."""
    from robot6.sweep import open_storage

    study = optuna.create_study(study_name="p", storage=open_storage(None, tmp_path / "sweeps" / "p"), direction="maximize")
    hidden = optuna.distributions.CategoricalDistribution(["16 16", "32 32"])
    study.add_trial(optuna.create_trial(value=1.0, params={"hidden": "32 32"}, distributions={"hidden": hidden},
                                        intermediate_values={300: 1.0, 600: 1.0}))
    (tmp_path / "one.toml").write_text(PRESETS.split("[search.default]")[0] + '[search.default]\nhidden = [[16, 16], [32, 32]]\n')
    result = sweep("p", "--env", "Robot6Reach-v0", "--budget", "600", "--evals", "2", "--eval-episodes", "2",
                   "--trials", "2", "--prune-after", "1", "--pruner", pruner, "--presets", "one.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (new,) = [t for t in trials("p", tmp_path) if t.number == 1]
    assert new.state == state and (("pruned at seed 0, step 300" in result.stdout) == (pruner == "median"))
