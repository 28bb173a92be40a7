"""The deployment runtime and its dry run, the task interface it shares with the envs, and the robustness
report: real exported files (TorchScript, ONNX), real PyBullet episodes."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pybullet
import pytest
from conftest import FAST, run_cli

import robot6.envs  # noqa: F401  (registers the env ids)
from robot6 import deploy, export, robustness
from robot6.deploy import PolicyRuntime, SimRobot, control_loop, dry_run, load_robot
from robot6.envs.interface import matrix_columns
from robot6.evaluate import make_eval_env
from robot6.run.config import Config
from robot6.run.rollouts import evaluate, load_policy

ENVS = [("Robot6Reach-v0", {}), ("Robot6Push-v0", {}), ("Robot6PickAndPlace-v0", {}),
        ("Robot6Reach-v0", {"urdf": "kuka_iiwa/model.urdf"}),
        ("Robot6PickAndPlace-v0", {"urdf": str(Path(__file__).parent / "arms" / "gripper5.urdf")}),
        ("Robot6Reach-v0", {"action_history": 2}), ("Robot6PickAndPlace-v0", {"action_history": 1})]


@pytest.mark.parametrize("env_id, kwargs", ENVS, ids=lambda x: x if isinstance(x, str) else ",".join(map(str, x.values())))
def test_the_interface_builds_the_envs_observation_bit_for_bit(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    interface, u = env.unwrapped.interface, env.unwrapped
    rng = np.random.default_rng(0)
    try:
        obs, _ = env.reset(seed=1)
        for t in range(80):
            built = interface.with_history(interface.native(u.read_fields()))
            if isinstance(obs, dict):
                assert all(np.array_equal(obs[k], built[k]) for k in obs), t
            else:
                assert np.array_equal(obs, built), t
            obs = env.step(rng.uniform(-1, 1, env.action_space.shape))[0] if t != 40 else env.reset()[0]
    finally:
        env.close()


def test_matrix_columns_are_pybullets():
    client = pybullet.connect(pybullet.DIRECT)
    try:
        for q in np.random.default_rng(0).normal(size=(2000, 4)):
            q = tuple(float(x) for x in q / np.linalg.norm(q))
            m = pybullet.getMatrixFromQuaternion(q, physicsClientId=client)
            assert matrix_columns(q) == (m[0], m[3], m[6], m[1], m[4], m[7])
    finally:
        pybullet.disconnect(client)


@pytest.fixture(scope="module")
def pick_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pick_run")
    result = run_cli("--env", "Robot6PickAndPlace-v0", "--episodes", "3", "--eval-every", "0", *FAST, cwd=folder)
    assert result.returncode == 0, result.stderr
    (path,) = (folder / "checkpoints").glob("*/latest.pth")
    return path


def exported(checkpoint: Path, folder: Path, fmt: str) -> Path:
    out = folder / ("policy.pt" if fmt == "torchscript" else "policy.onnx")
    export.export(checkpoint, fmt, out)
    return out


def evaluated_returns(checkpoint: Path, episodes: int, seed: int) -> list[float]:
    actor, meta = load_policy(checkpoint)
    env = make_eval_env(meta["env_id"], None, Config.from_dict(meta["config"]).env_kwargs())
    try:
        return evaluate(actor, env, episodes, seed).returns.tolist()
    finally:
        env.close()


def test_the_dry_run_plays_the_episodes_evaluate_plays(short_run, pick_checkpoint, tmp_path):
    """TorchScript runs the same float operations as the checkpoint's actor: the same episodes, bit for bit."""
    (reach,) = (short_run / "checkpoints").glob("*/latest.pth")
    for checkpoint in (reach, pick_checkpoint):
        runtime = PolicyRuntime(exported(checkpoint, tmp_path, "torchscript"))
        got = dry_run(runtime, 4, seed=3, progress=False)
        assert got["returns"] == evaluated_returns(checkpoint, 4, seed=3)
    # onnxruntime's kernels round differently in the last bits: Reach's continuous return agrees closely.
    onnx = dry_run(PolicyRuntime(exported(reach, tmp_path, "onnx")), 4, seed=3, progress=False)
    assert onnx["returns"] == pytest.approx(evaluated_returns(reach, 4, seed=3), rel=1e-4)


def test_latency_and_noise_change_the_dry_run(short_run, tmp_path):
    (reach,) = (short_run / "checkpoints").glob("*/latest.pth")
    runtime = PolicyRuntime(exported(reach, tmp_path, "torchscript"))
    clean = dry_run(runtime, 2, seed=3, progress=False)["returns"]
    assert dry_run(runtime, 2, seed=3, latency=2, progress=False)["returns"] != clean
    assert dry_run(runtime, 2, seed=3, sensor_noise={"tcp": 0.01}, progress=False)["returns"] != clean
    assert dry_run(runtime, 2, seed=3, action_noise=0.2, progress=False)["returns"] != clean


def test_the_runtime_refuses_bad_readings_in_one_line(pick_checkpoint, tmp_path):
    runtime = PolicyRuntime(exported(pick_checkpoint, tmp_path, "onnx"))
    env = gym.make("Robot6PickAndPlace-v0")
    env.reset(seed=0)
    good = {k: v for k, v in env.unwrapped.read_fields().items() if k != "finger_command"}
    env.close()
    assert set(runtime.fields) == set(good)
    runtime.reset(good)
    command = runtime.step(good)
    assert set(command) == {"tcp_target", "tcp_displacement", "gripper", "finger_target"}
    assert np.allclose(command["tcp_target"] - command["tcp_displacement"], good["tcp"], atol=1e-6)
    cases = [
        ({k: v for k, v in good.items() if k != "goal"}, "missing goal"),
        ({**good, "torque": np.zeros(6)}, "unexpected torque"),
        ({**good, "tcp": np.zeros(2)}, "observation field tcp: 2 value(s), this policy reads 3 (m)"),
        ({**good, "object_quaternion": [0, 0, 0, np.nan]}, "object_quaternion: not finite"),
        ({**good, "goal": "up"}, "observation field goal: not numbers"),
    ]
    for fields, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
            runtime.step(fields)
        assert "\n" not in str(e.value)


def test_commands_are_clamped_to_the_recorded_limits(short_run, pick_checkpoint, tmp_path):
    (reach,) = (short_run / "checkpoints").glob("*/latest.pth")
    runtime = PolicyRuntime(exported(reach, tmp_path, "torchscript"))
    spec = runtime.metadata["interface"]
    env = gym.make("Robot6Reach-v0")
    env.reset(seed=0)
    runtime.reset(env.unwrapped.read_fields())
    env.close()
    for sign in (1.0, -1.0):
        for _ in range(200):
            targets = runtime.command(np.full(6, 5.0 * sign))["joint_targets"]
        assert np.allclose(targets, spec["upper"] if sign > 0 else spec["lower"])
    pick = PolicyRuntime(exported(pick_checkpoint, tmp_path, "onnx"))
    low, high = pick.metadata["interface"]["tcp_bounds"]
    for a in ([9, 9, 9, 9], [-9, -9, -9, -9]):
        cmd = pick.command(np.array(a, dtype=np.float32))
        assert np.all(cmd["tcp_target"] >= np.array(low) - 1e-12) and np.all(cmd["tcp_target"] <= np.array(high) + 1e-12)
        assert 0.0 <= cmd["gripper"][0] <= 1.0


class SimArm(SimRobot):
    """A user's adapter as docs/REAL_ROBOT.md writes one, here around the simulator: counts what it is sent."""

    def __init__(self, metadata):
        super().__init__(metadata)
        self.sent, self.stopped = 0, 0
        self.reset(0)

    def send(self, command):
        self.sent += 1
        super().send(command)

    def stop(self):
        self.stopped += 1


def test_a_robot_adapter_class_runs_the_control_loop(short_run, tmp_path, monkeypatch):
    (reach,) = (short_run / "checkpoints").glob("*/latest.pth")
    runtime = PolicyRuntime(exported(reach, tmp_path, "torchscript"))
    (tmp_path / "my_arm.py").write_text("from test_deploy import SimArm as MyArm\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    robot = load_robot("my_arm:MyArm", runtime)
    control_loop(runtime, robot, 7)
    assert robot.sent == 7 and robot.stopped == 1
    robot.close()
    sys.modules.pop("my_arm", None)


def test_the_deploy_command(short_run, tmp_path, capsys):
    (reach,) = (short_run / "checkpoints").glob("*/latest.pth")
    policy = exported(reach, tmp_path, "onnx")
    assert deploy.main([str(policy), "--dry-run", "--episodes", "2", "--latency", "1", "--sensor-noise", "1"]) == 0
    out = capsys.readouterr().out
    assert "latency 1 step(s), sensor noise x1" in out and "success rate" in out and "ms per step" in out
    for argv, message in [([str(tmp_path / "none.onnx"), "--dry-run"], "no such file"),
                          ([str(policy)], "give --dry-run"),
                          ([str(policy), "--dry-run", "--latency", "-1"], "must be >= 0"),
                          ([str(policy), "--robot", "nomodule"], "write MODULE:CLASS")]:
        assert deploy.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    (tmp_path / "bad.onnx").write_text("not a model")
    assert deploy.main([str(tmp_path / "bad.onnx"), "--dry-run"]) == 2
    assert "not a readable ONNX file" in capsys.readouterr().err


def test_the_robustness_report(short_run, tmp_path, capsys):
    (reach,) = (short_run / "checkpoints").glob("*/latest.pth")
    out = tmp_path / "report"
    assert robustness.main([str(reach), "--episodes", "2", "--out", str(out)]) == 0
    report = json.loads(Path(f"{out}.json").read_text())
    names = [r["shift"] for r in report["shifts"]]
    # Reach has no object and no gripper: no mass or friction shifts.
    assert names == ["nominal", "joint damping x0.5", "joint damping x2", "motor force x0.7", "latency 1 step",
                     "latency 2 steps", "sensor noise x1", "sensor noise x2", "action noise 0.1", "all at once"]
    assert report["shifts"][-1]["factors"]["latency"] == 2 and report["shifts"][0]["factors"] == {}
    assert "| nominal |" in Path(f"{out}.md").read_text() and "Worst single shifts" in capsys.readouterr().out
    assert Path(f"{out}.png").read_bytes()[:4] == b"\x89PNG"
    # The same goals under every shift: the first episode's goal of each shifted env is the nominal one.
    goals = set()
    for _, factors in robustness.suite_for(gym.make("Robot6Reach-v0").unwrapped.RANDOMIZABLE):
        env = gym.make("Robot6Reach-v0", randomize={k: [v, v] for k, v in factors.items()})
        goals.add(tuple(env.reset(seed=5)[0][-3:].tolist()))
        env.close()
    assert len(goals) == 1
    assert robustness.main([str(reach), "--episodes", "0"]) == 2
