"""Robot6Reach-v0 on any arm's URDF (robot6/envs/urdf.py, robot6.envs.arm.UrdfArm): the arms of pybullet_data and a test arm
load with one action per joint, goals are reachable, bad input is one line and exit 2, the checkpoint knows the
arm (a changed URDF is refused on resume), and the tools work on it."""

import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pybullet
import pytest
from conftest import FAST, ROOT, evaluate_and_export, run_cli
from gymnasium.utils.env_checker import check_env

from robot6 import show
from robot6 import train as train_command
from robot6.envs.tasks.reach import GOAL_MIN_HEIGHT
from robot6.envs.urdf import UrdfError, read_urdf

ARM5 = str(ROOT / "tests" / "arms" / "arm5.urdf")
ARMS = [  # URDF, arm joints, end effector found by default
    pytest.param(ARM5, 5, "tool", id="arm5"),
    pytest.param("kuka_iiwa/model.urdf", 7, "lbr_iiwa_link_7", id="kuka-iiwa"),
    pytest.param("franka_panda/panda.urdf", 7, "panda_hand", id="franka-panda"),
    pytest.param("xarm/xarm6_robot.urdf", 6, "link6", id="xarm6"),
]


def make(urdf, **kwargs):
    return gym.make("Robot6Reach-v0", urdf=urdf, **kwargs)


@pytest.mark.parametrize("urdf, joints, ee_link", ARMS)
def test_an_arm_has_one_action_per_joint_and_passes_the_env_checker(urdf, joints, ee_link):
    env = make(urdf)
    try:
        assert env.action_space.shape == (joints,)
        assert env.observation_space.shape == (2 * joints + 6,)
        arm = env.unwrapped.arm
        assert arm["ee_link"] == ee_link and len(arm["joints"]) == joints
        assert arm["sha256"] == read_urdf(urdf).sha256
        check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=0)
        for _ in range(50):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs) and not terminated
        assert truncated
        spec = env.unwrapped
        np.testing.assert_allclose(reward, spec.compute_reward(obs[spec.achieved_goal_slice], obs[spec.desired_goal_slice], None))
    finally:
        env.close()


@pytest.mark.parametrize("urdf", [ARM5, "kuka_iiwa/model.urdf"])
def test_every_goal_is_reachable(urdf):
    """Each goal is above the ground, and inverse kinematics finds joints within the limits that put the end
    effector on it (1 cm)."""
    env = make(urdf)
    arm = env.unwrapped.robot
    sim = arm.sim
    try:
        for seed in range(10):
            env.reset(seed=seed)
            goal = env.unwrapped.goal
            assert goal[2] >= GOAL_MIN_HEIGHT
            arm.reset_pose(arm.neutral)
            for _ in range(5):  # damped least squares from where the last pass ended
                q = sim.calculateInverseKinematics(arm.id, arm.ee_link, goal.tolist(), maxNumIterations=200,
                                                   lowerLimits=arm.low.tolist(), upperLimits=arm.high.tolist(),
                                                   jointRanges=(arm.high - arm.low).tolist(), restPoses=arm.neutral.tolist())
                movable = [j for j in range(sim.getNumJoints(arm.id)) if sim.getJointInfo(arm.id, j)[2] != pybullet.JOINT_FIXED]
                by_joint = dict(zip(movable, q, strict=True))
                arm.reset_pose([by_joint[j] for j in arm.joints])
            reached = np.array(arm.link_position(arm.ee_link))
            assert np.linalg.norm(reached - goal) < 0.01, (seed, reached, goal)
    finally:
        env.close()


def test_same_seed_same_goals_and_trajectory_whatever_ran_before():
    actions = np.random.default_rng(1).uniform(-1, 1, (40, 5)).astype(np.float32)

    def rollout(env, seed):
        obs = [env.reset(seed=seed)[0]]
        obs += [env.step(a)[0] for a in actions]
        return np.array(obs)

    a, b = make(ARM5), make(ARM5)
    try:
        first = rollout(a, 5)
        rollout(b, 9)
        np.testing.assert_array_equal(first, rollout(b, 5))
        assert not np.array_equal(first[0], rollout(a, 6)[0])  # another seed, another goal
    finally:
        a.close()
        b.close()


def test_the_panda_fingers_are_held_and_the_continuous_joint_works_in_plus_minus_pi():
    env = make("franka_panda/panda.urdf")
    try:
        robot = env.unwrapped.robot
        assert [robot.sim.getJointInfo(robot.id, j)[1].decode() for j in robot.held] == ["panda_finger_joint1", "panda_finger_joint2"]
        env.reset(seed=0)
        for _ in range(50):
            env.step(env.action_space.sample())
        fingers = [s[0] for s in robot.sim.getJointStates(robot.id, robot.held)]
        np.testing.assert_allclose(fingers, 0.02, atol=2e-3)  # the middle of 0-0.04 m
    finally:
        env.close()
    arm = make(ARM5).unwrapped
    try:
        assert arm.arm["joint_types"][-1] == "continuous"
        assert arm.arm["lower"][-1] == pytest.approx(-np.pi) and arm.arm["upper"][-1] == pytest.approx(np.pi)
        assert arm.arm["lower"][:4] == [-2.9, -1.8, -2.4, -1.9]  # the URDF's limits
    finally:
        arm.close()


def test_workspace_keeps_goals_inside_the_box_and_an_unreachable_box_is_refused():
    box = [0.1, -0.3, 0.3, 0.5, 0.3, 0.7]
    env = make(ARM5, workspace=box)
    try:
        for seed in range(10):
            obs, _ = env.reset(seed=seed)
            goal = env.unwrapped.goal
            assert np.all(goal >= box[:3]) and np.all(goal <= box[3:])
            assert env.observation_space.contains(obs)
    finally:
        env.close()
    with pytest.raises(UrdfError, match="no goal found"):
        make(ARM5, workspace=[3, 3, 3, 4, 4, 4])


def test_the_default_arm_is_the_xarm6_and_its_description_is_in_the_env():
    env = gym.make("Robot6Reach-v0")
    try:
        arm = env.unwrapped.arm
        assert arm["urdf"] == "xarm/xarm6_robot.urdf" and arm["ee_link"] == "link6" and arm["name"] == "xarm6"
        assert arm["joints"] == [f"joint{i}" for i in range(1, 7)] and arm["control_hz"] == 24
    finally:
        env.close()


def test_the_hash_covers_the_meshes_and_package_paths_are_found(tmp_path):
    panda = read_urdf("franka_panda/panda.urdf")
    assert panda.meshes and all(m.is_file() for m in panda.meshes)  # package://meshes/... beside the URDF
    mesh = tmp_path / "link.obj"
    shutil.copy(read_urdf("kuka_iiwa/model.urdf").meshes[0], mesh)
    urdf = tmp_path / "one.urdf"
    urdf.write_text(chain_urdf(2, mesh="link.obj"))
    before = read_urdf(str(urdf)).sha256
    with open(mesh, "ab") as f:
        f.write(b"\n# edited\n")
    assert read_urdf(str(urdf)).sha256 != before


def chain_urdf(joints: int, kind: str = "revolute", mesh: str | None = None) -> str:
    """A chain of ``joints`` joints of type ``kind`` between small boxes (or ``mesh``), 10 cm apart."""
    geometry = f'<mesh filename="{mesh}"/>' if mesh else '<box size="0.04 0.04 0.1"/>'
    links = "".join(
        f'<link name="l{i}"><inertial><mass value="0.5"/><inertia ixx="1e-3" ixy="0" ixz="0" iyy="1e-3" iyz="0" izz="1e-3"/>'
        f'</inertial><collision><origin xyz="0 0 0.05"/><geometry>{geometry}</geometry></collision></link>'
        for i in range(joints + 1)
    )
    limit = '<limit lower="-1.5" upper="1.5" effort="20" velocity="2"/>'
    chain = "".join(
        f'<joint name="j{i}" type="{kind}"><parent link="l{i}"/><child link="l{i + 1}"/><origin xyz="0 0 0.1"/>'
        f'<axis xyz="0 1 0"/>{limit}</joint>'
        for i in range(joints)
    )
    return f'<?xml version="1.0"?><robot name="chain{joints}">{links}{chain}</robot>'


BAD_INPUT = [  # files to write, flags, what the one line says
    pytest.param({}, ["--urdf", "nowhere/arm.urdf"], "no such file", id="missing-file"),
    pytest.param({"a.urdf": "this is not xml"}, ["--urdf", "a.urdf"], "not a URDF (not XML", id="not-xml"),
    pytest.param({"a.urdf": "<sdf version='1.6'/>"}, ["--urdf", "a.urdf"], "not a URDF (its root element is <sdf>", id="not-a-robot"),
    pytest.param({"a.urdf": chain_urdf(3, kind="fixed")}, ["--urdf", "a.urdf"], "no movable joint", id="no-movable-joint"),
    pytest.param({"a.urdf": chain_urdf(1)}, ["--urdf", "a.urdf"], "1 movable joint(s) from the base", id="one-joint"),
    pytest.param({"a.urdf": chain_urdf(8)}, ["--urdf", "a.urdf"], "8 movable joint(s) from the base", id="eight-joints"),
    pytest.param({"a.urdf": chain_urdf(3)}, ["--urdf", "a.urdf", "--ee-link", "gripper"], "--ee-link gripper: a.urdf has no such link",
                 id="unknown-ee-link"),
    pytest.param({"a.urdf": chain_urdf(3, mesh="meshes/gone.stl")}, ["--urdf", "a.urdf"], "mesh 'meshes/gone.stl' not found",
                 id="missing-mesh"),
    pytest.param({}, ["--urdf", ARM5, "--workspace", "0.5", "0", "0.3", "0.1", "0.2", "0.6"], "each min < max", id="empty-workspace"),
    pytest.param({}, ["--urdf", ARM5, "--workspace", "3", "3", "3", "4", "4", "4"], "no goal found", id="unreachable-workspace"),
    pytest.param({}, ["--ee-link", "tool"], "need --urdf PATH", id="ee-link-without-urdf"),
    pytest.param({}, ["--env", "Pendulum-v1", "--urdf", ARM5], "--urdf works with --env Robot6Reach-v0, Robot6Push-v0",
                 id="urdf-on-another-env"),
    pytest.param({}, ["--urdf", ARM5, "--accept-urdf-change"], "--accept-urdf-change needs --resume", id="accept-without-resume"),
]


@pytest.mark.parametrize("files, flags, message", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2_before_anything_is_written(tmp_path, monkeypatch, capsys, files, flags, message):
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    code = train_command.main([*flags, "--episodes", "1", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "runs").exists()


def test_a_changed_urdf_is_refused_on_resume_with_both_hashes_unless_accepted(tmp_path):
    urdf = tmp_path / "arm.urdf"
    shutil.copy(ARM5, urdf)
    first = run_cli("--urdf", "arm.urdf", "--episodes", "2", *FAST, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    old = read_urdf(str(urdf)).sha256
    urdf.write_text(urdf.read_text().replace('effort="40"', 'effort="45"'))
    new = read_urdf(str(urdf)).sha256
    refused = run_cli("--resume", "--episodes", "4", cwd=tmp_path)
    lines = [line for line in refused.stderr.splitlines() if not line.startswith("pybullet build time")]  # PyBullet's banner
    assert refused.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), refused.stderr
    assert old[:16] in refused.stderr and new[:16] in refused.stderr and "--accept-urdf-change" in refused.stderr
    accepted = run_cli("--resume", "--episodes", "4", "--urdf", "arm.urdf", "--accept-urdf-change", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert "The arm's URDF changed" in accepted.stdout and "episode 2," in accepted.stdout


@pytest.fixture(scope="module")
def arm_run(tmp_path_factory) -> Path:
    """The newest checkpoint of a finished 3-episode run on the test arm."""
    folder = tmp_path_factory.mktemp("arm_run")
    result = run_cli("--urdf", ARM5, "--episodes", "3", *FAST, cwd=folder)
    assert result.returncode == 0, result.stderr
    (run,) = (folder / "checkpoints").glob("sac_*")
    return run / "latest.pth"


def test_the_tools_know_the_arm(arm_run, tmp_path, capsys):
    assert show.main([str(arm_run)]) == 0
    assert f"arm arm5 from {ARM5}" in capsys.readouterr().out
    info = evaluate_and_export(arm_run, tmp_path, capsys)
    assert info["act_dim"] == 5 and info["arm"]["joints"] == ["base_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll"]
    assert info["arm"]["action_scale"] == [0.05] * 5 and info["arm"]["ee_link"] == "tool"
