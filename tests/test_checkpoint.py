"""The checkpoint contract: atomic save, validated and safe load, compatibility, resume candidates."""

import json
import os
import pickle
import pickletools
import random
import shutil
import threading
import zipfile

import pytest
import torch
from conftest import ROOT, run_cli

from robot6.errors import CheckpointError
from robot6.learn.agent import SAC
from robot6.run import checkpoint as ckpt
from robot6.run.fileio import BackgroundWriter, atomic_write_bytes
from robot6.run.logger import WALL_CLOCK_COLUMNS, read_csv_rows

SIGNATURE = {"env_id": "Robot6Reach-v0", "obs_dim": 18, "act_dim": 6, "action_low": [-1.0] * 6, "action_high": [1.0] * 6}


def make_state(episode=3, **meta):
    torch.manual_seed(0)
    agent = SAC(18, 6, [16], 1e-3, 0.95, 0.005, 1.0)
    agent.update_count = 0
    return {
        **agent.state_dict(),
        "global_step": episode * 50,
        "episode": episode,
        "best_reward": -1.5,
        "meta": {"format_version": ckpt.FORMAT_VERSION, **SIGNATURE, "config": {"hidden": [16]}, **meta},
    }


def test_round_trip_is_exact(tmp_path):
    state = make_state()
    size = ckpt.save_checkpoint(state, tmp_path / "a.pth", tmp_path / "b.pth")
    assert size == (tmp_path / "a.pth").stat().st_size == (tmp_path / "b.pth").stat().st_size
    loaded = ckpt.load_checkpoint(tmp_path / "a.pth")
    assert set(loaded) == set(state)
    for key in ("policy", "q1", "q2", "q1_target", "q2_target"):
        for name, t in state[key].items():
            assert torch.equal(t, loaded[key][name])
    assert loaded["policy_opt"]["param_groups"] == state["policy_opt"]["param_groups"]
    assert loaded["best_reward"] == -1.5 and loaded["episode"] == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "latest.pth"
    ckpt.save_checkpoint(make_state(episode=1), path)
    before = path.read_bytes()
    (tmp_path / "latest.pth.tmp").mkdir()  # the temp file cannot be created: the write fails for real
    with pytest.raises(OSError):
        ckpt.save_checkpoint(make_state(episode=2), path)
    assert path.read_bytes() == before
    assert ckpt.load_checkpoint(path)["episode"] == 1


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PAYLOAD_RAN",))


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty or truncated"),
        (random.Random(0).randbytes(4096), "unreadable"),  # the same bytes in every process (pytest-xdist)
        ("truncated", "truncated or corrupt"),
        ("list", "not a checkpoint"),
        ("missing", "missing keys"),
    ],
    ids=["empty", "random-bytes", "truncated", "list", "missing"],
)
def test_bad_files_are_reported_with_path_and_reason(tmp_path, content, reason):
    path = tmp_path / "bad.pth"
    if content == "truncated":
        ckpt.save_checkpoint(make_state(), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == "list":
        torch.save([1, 2, 3], path)
    elif content == "missing":
        state = make_state()
        del state["q_opt"], state["log_alpha"]
        torch.save(state, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as e:
        ckpt.load_checkpoint(path)
    assert str(path) in str(e.value)


def test_code_in_a_checkpoint_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"policy": Payload()}, f, protocol=2)  # protocol 2 is what torch.save writes
    torch.save({"policy": Payload()}, tmp_path / "evil_zip.pth")
    for p in (path, tmp_path / "evil_zip.pth"):
        with pytest.raises(CheckpointError, match="refused"):
            ckpt.load_checkpoint(p)
    assert not (tmp_path / "PAYLOAD_RAN").exists()


def test_newer_format_is_refused(tmp_path):
    state = make_state()
    state["meta"]["format_version"] = ckpt.FORMAT_VERSION + 1
    torch.save(state, tmp_path / "new.pth")
    with pytest.raises(CheckpointError, match="newer than this code supports"):
        ckpt.load_checkpoint(tmp_path / "new.pth")


@pytest.mark.parametrize("key, value", [("env_id", "Pendulum-v1"), ("obs_dim", 17), ("act_dim", 7), ("action_high", [2.0] * 6)])
def test_incompatible_checkpoint_names_both_values(key, value):
    meta = {**SIGNATURE, key: value}
    with pytest.raises(CheckpointError) as e:
        ckpt.check_compatible("x.pth", meta, SIGNATURE)
    assert repr(value) in str(e.value) and repr(SIGNATURE[key]) in str(e.value)


def test_resume_candidates_order(tmp_path):
    """The pointer's target, then per run (newest first) latest.pth and every periodic file, episode- and
    step-numbered alike, the most recently written first."""
    old, new = tmp_path / "sac_20260101-000000", tmp_path / "sac_20260102-000000"
    for run in (old, new):
        run.mkdir()
    clock = 1_700_000_000
    for run, files in ((old, ("ckpt_ep_50.pth", "ckpt_ep_100.pth", "best.pth", "latest.pth")),
                       (new, ("ckpt_ep_9.pth", "ckpt_step_400.pth", "ckpt_ep_50.pth", "ckpt_step_2000.pth", "latest.pth"))):
        for f in files:
            (run / f).write_bytes(b"x")
            clock += 10
            os.utime(run / f, (clock, clock))
    names = [str(p.relative_to(tmp_path)) for p in ckpt.find_resume_candidates(tmp_path)]
    assert names == [
        f"{new.name}/latest.pth", f"{new.name}/ckpt_step_2000.pth", f"{new.name}/ckpt_ep_50.pth",
        f"{new.name}/ckpt_step_400.pth", f"{new.name}/ckpt_ep_9.pth",
        f"{old.name}/latest.pth", f"{old.name}/ckpt_ep_100.pth", f"{old.name}/ckpt_ep_50.pth",
    ]
    # The pointer file goes first, even when it names an older run.
    ckpt.write_pointer(tmp_path, old.name, old / "latest.pth", 7, 350, "now")
    assert json.loads((tmp_path / ckpt.POINTER_FILE).read_text())["path"] == f"{old.name}/latest.pth"
    assert ckpt.find_resume_candidates(tmp_path)[0] == old / "latest.pth"
    assert ckpt.find_resume_candidates(tmp_path / "nothing") == []


def test_background_writer_runs_jobs_in_order_and_reports_their_errors(tmp_path):
    writer = BackgroundWriter()
    release, done = threading.Event(), []

    def slow_job():
        release.wait(10)
        atomic_write_bytes(tmp_path / "a.bin", b"first")
        done.append("a")

    writer.submit(slow_job)  # returns while the job waits
    assert done == []
    with pytest.raises(RuntimeError, match="wait"):
        writer.submit(lambda: None)  # one job in flight at most
    release.set()
    assert writer.wait() is None and done == ["a"]
    assert (tmp_path / "a.bin").read_bytes() == b"first"

    def failing_job():
        raise OSError(28, "No space left on device")

    writer.submit(failing_job)
    error = writer.wait()
    assert isinstance(error, OSError) and error.errno == 28
    assert writer.close() is None


def test_rng_states_round_trip_through_a_checkpoint_file(tmp_path):
    """Every generator a run draws from comes back from a weights_only checkpoint and draws the same numbers;
    the Python generator's state is saved as one tensor, and a tuple of ints (which format version 1 allows) still loads."""
    import numpy as np

    from robot6.envs.factory import make_env
    from robot6.learn.replay import ReplayBuffer
    from robot6.run.checkpoint import capture_rng, restore_rng

    env, replay = make_env("Robot6Reach-v0"), ReplayBuffer(100, 18, 6, seed=1)
    try:
        env.reset(seed=5)
        random.seed(7), np.random.seed(8), torch.manual_seed(9)

        def draws():
            return (random.random(), float(np.random.rand()), float(torch.rand(1)), float(env.unwrapped.np_random.random()),
                    float(env.action_space.sample()[0]), float(replay.rng.random()))

        state = capture_rng(env, replay.rng, torch.device("cpu"))
        assert isinstance(state["python"][1], torch.Tensor) and state["python"][1].shape == (625,)
        torch.save({"rng": state}, tmp_path / "rng.pth")
        expected = draws()
        loaded = torch.load(tmp_path / "rng.pth", weights_only=True)["rng"]
        restore_rng(loaded, env, replay.rng, torch.device("cpu"))
        assert draws() == expected
        old = {**loaded, "python": (3, tuple(loaded["python"][1].tolist()), None)}  # the same state as a tuple of ints
        restore_rng(old, env, replay.rng, torch.device("cpu"))
        assert draws() == expected
    finally:
        env.close()


OLD_RUN = ROOT / "tests" / "data" / "checkpoint_v1"  # written by the code of commit c8af132 (format version 1)


def pickled_globals(data: bytes) -> set[str]:
    """Every ``module name`` a pickle asks the unpickler to import (GLOBAL and STACK_GLOBAL opcodes)."""
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "GLOBAL":
            found.add(arg)
        elif op.name == "STACK_GLOBAL":
            found.add(" ".join(strings[-2:]))
    return found


def test_a_checkpoint_names_no_module_of_the_project():
    """The format holds tensors and plain data only: the pickles inside the files import nothing but torch's
    tensor rebuilding and ``collections.OrderedDict``, so moving or renaming the project's modules cannot
    break loading."""
    files = sorted(OLD_RUN.glob("checkpoints/*/*.pth")) + sorted(OLD_RUN.glob("checkpoints/*/replay/*.pt"))
    assert len(files) == 4
    for path in files:
        with zipfile.ZipFile(path) as archive:
            (pkl,) = [n for n in archive.namelist() if n.endswith("data.pkl")]
            names = pickled_globals(archive.read(pkl))
        modules = {name.split()[0] for name in names}
        assert "torch._utils" in modules and modules <= {"torch", "torch._utils", "collections"}, (path.name, names)


def test_a_run_of_the_earlier_code_resumes_as_it_did_then(tmp_path):
    """A run written by an earlier version of the code (2 episodes of Robot6Reach-v0, with evaluations) resumed
    to 4 episodes gives the rows that version gave (wall-clock columns aside)."""
    shutil.copytree(OLD_RUN, tmp_path, dirs_exist_ok=True)
    result = run_cli("--resume", "--episodes", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[RESUME] Loaded" in result.stdout and "100 transitions restored" in result.stdout
    (log_dir,) = (tmp_path / "runs").iterdir()
    for name in ("training.csv", "eval.csv"):
        got, want = read_csv_rows(log_dir / name), read_csv_rows(OLD_RUN / "expected" / name)
        assert len(got) == len(want) == 4
        drop = set(WALL_CLOCK_COLUMNS)
        assert [{k: v for k, v in r.items() if k not in drop} for r in got] == \
               [{k: v for k, v in r.items() if k not in drop} for r in want], name
