"""Push and Pick-and-Place on any arm with a gripper (robot6.envs.arm.GripperArm, robot6/envs/card.py): the gripper
read from the URDF (fingers past the arm chain, <mimic> followers, open and closed from the limits), the card
found beside the URDF, by flag or built in, the scripted controllers working through the arm's interface, bad
input as one line and exit 2, the arm and its card in checkpoints, and the tools on such a run."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST, ROOT, evaluate_and_export, run_cli
from gymnasium.utils.env_checker import check_env

from robot6 import evaluate, show
from robot6 import train as train_command
from robot6.envs.card import read_card
from robot6.envs.factory import make_env
from robot6.envs.urdf import UrdfError
from robot6.errors import ConfigError

ARMS = ROOT / "tests" / "arms"
GRIPPER5 = str(ARMS / "gripper5.urdf")
ARM5 = str(ARMS / "arm5.urdf")
PANDA = "franka_panda/panda.urdf"
XARM6 = "xarm/xarm6_with_gripper.urdf"
CUBE_ENVS = ["Robot6Push-v0", "Robot6PickAndPlace-v0"]


def scripted_success(env_id: str, urdf: str, episodes: int) -> int:
    """How many of ``episodes`` seeded episodes the env's scripted controller solves."""
    env = make_env(env_id, urdf=urdf)
    solved = 0
    try:
        for seed in range(episodes):
            env.reset(seed=seed)
            done, info = False, {}
            while not done:
                _, _, terminated, truncated, info = env.step(env.unwrapped.demonstration())
                done = terminated or truncated
            solved += bool(info["is_success"])
    finally:
        env.close()
    return solved


@pytest.mark.parametrize("env_id", CUBE_ENVS)
@pytest.mark.parametrize("urdf", [GRIPPER5, PANDA])
def test_the_cube_tasks_on_a_urdf_arm_pass_the_env_checker(env_id, urdf):
    env = make_env(env_id, urdf=urdf)
    try:
        check_env(env.unwrapped, skip_render_check=True)
        assert env.action_space.shape == ((3,) if env_id == "Robot6Push-v0" else (4,))
        arm = env.unwrapped.arm
        assert arm["urdf"] == urdf and len(arm["action"]) == env.action_space.shape[0]
    finally:
        env.close()


@pytest.mark.parametrize(
    "urdf, push, pick",  # scripted successes of 20 seeded episodes: at least these
    [pytest.param(GRIPPER5, 16, 18, id="test-arm"), pytest.param(PANDA, 14, 18, id="panda"),
     pytest.param(XARM6, 15, 15, id="xarm6-urdf")],
)
def test_the_scripted_controllers_push_and_pick_through_the_arm_interface(urdf, push, pick):
    assert scripted_success("Robot6Push-v0", urdf, 20) >= push
    assert scripted_success("Robot6PickAndPlace-v0", urdf, 20) >= pick


def test_evaluate_runs_the_scripted_controller_on_an_arm_and_records_it(tmp_path, capsys):
    video = tmp_path / "pick.gif"
    assert evaluate.main(["--scripted", "Robot6PickAndPlace-v0", "--urdf", GRIPPER5, "--episodes", "5",
                          "--video", str(video), "--video-episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert f"scripted controller: Robot6PickAndPlace-v0 on {GRIPPER5}" in out and "success rate  100%" in out
    assert video.stat().st_size > 0
    for argv, message in [(["--scripted", "Robot6Reach-v0"], "has no scripted controller"),
                          ([], "give a checkpoint, or --scripted ENV"),
                          (["--scripted", "Robot6Push-v0", "--card", "c.toml"], "--card describes the gripper")]:
        assert evaluate.main(argv) == 2
        assert message in capsys.readouterr().err


def test_the_gripper_is_read_from_the_urdf_mimic_followers_included():
    env = make_env("Robot6PickAndPlace-v0", urdf=GRIPPER5)
    try:
        robot = env.unwrapped.robot
        names = [env.unwrapped._sim.getJointInfo(robot.id, j)[1].decode() for j in robot.finger_joints]
        assert names == ["left_finger_joint", "right_finger_joint"]  # the movable joints past the arm chain
        assert robot._follows == [None, (0, 1.0, 0.0)]  # the right finger is the left one's <mimic>
        # The card says nothing about open: it is measured (the fingers are farther apart at 0 rad).
        assert (robot.open_command, robot.closed_command) == (0.0, 0.6)
        assert robot.max_width == pytest.approx(0.08, abs=1e-6) and robot.min_width < 0.01
        env.reset(seed=0)
        opened = robot.finger_width()
        for _ in range(10):
            env.step(np.array([0, 0, 0, 1.0], dtype=np.float32))  # close on nothing
        q = [s[0] for s in env.unwrapped._sim.getJointStates(robot.id, robot.finger_joints)]
        assert q[0] == pytest.approx(q[1], abs=0.02) and q[0] > 0.5  # the follower moved with its leader
        assert robot.finger_width() < 0.01 < 0.07 < opened
    finally:
        env.close()


def test_the_card_is_found_beside_the_urdf_by_flag_or_built_in(tmp_path):
    env = make_env("Robot6Push-v0", urdf=GRIPPER5)
    assert env.unwrapped.arm["card"] == str(ARMS / "gripper5.card.toml")
    env.close()
    env = make_env("Robot6Push-v0", urdf=PANDA)
    assert env.unwrapped.arm["card"] == "built-in panda.card.toml" and env.unwrapped.arm["tcp_link"] == "panda_grasptarget"
    env.close()
    shutil.copy(GRIPPER5, tmp_path / "arm.urdf")  # no card beside it
    card = tmp_path / "elsewhere.toml"
    card.write_text('tcp_link = "hand"\ntcp_depth = 0.085\nhome = [0.0, 0.5, 1.6, 1.0, -3.14]\n')
    with pytest.raises(ConfigError, match="no card for this arm"):
        make_env("Robot6Push-v0", urdf=str(tmp_path / "arm.urdf"))
    env = make_env("Robot6Push-v0", urdf=str(tmp_path / "arm.urdf"), card=str(card))
    assert env.unwrapped.arm["card"] == str(card) and env.unwrapped.arm["tcp_depth"] == 0.085
    env.close()


def test_a_card_is_checked_field_by_field(tmp_path):
    path = tmp_path / "c.toml"
    for text, message in [
        ("tcp_depth = 0.1\n", "tcp_link must name the link"),
        ('tcp_link = "hand"\ntcp_depth = "deep"\n', "tcp_depth must be a number (m), got 'deep'"),
        ('tcp_link = "hand"\napproach = "w"\n', "approach must be one of"),
        ('tcp_link = "hand"\nfinger_links = ["a"]\n', "finger_links must name 2 links"),
        ('tcp_link = "hand"\nopen = "wide"\n', 'open must be "lower" or "upper"'),
        ('tcp_link = "hand"\ngrip = 3\n', "unknown field(s) grip"),
        ('tcp_link = "hand"\ngrip_force = -1\n', "grip_force must be positive"),
        ("tcp_link = [", "not TOML"),
    ]:
        path.write_text(text)
        with pytest.raises(UrdfError) as e:
            read_card(path)
        assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return name


BAD_INPUT = [  # files in the run folder, flags, the one line expected
    pytest.param({"arm5.urdf": Path(ARM5).read_text(), "arm5.card.toml": 'tcp_link = "tool"\n'},
                 ["--env", "Robot6Push-v0", "--urdf", "arm5.urdf"], "no gripper: no movable joint past the arm chain",
                 id="no-gripper"),
    pytest.param({"c.toml": 'tcp_link = "palm"\n'}, ["--env", "Robot6Push-v0", "--urdf", GRIPPER5, "--card", "c.toml"],
                 "tcp_link: ", id="card-names-a-missing-link"),
    pytest.param({"c.toml": 'tcp_link = "hand"\nfingers = ["thumb_joint"]\n'},
                 ["--env", "Robot6PickAndPlace-v0", "--urdf", GRIPPER5, "--card", "c.toml"], "has no joint thumb_joint",
                 id="card-names-a-missing-joint"),
    pytest.param({"c.toml": 'tcp_link = "hand"\ntcp_depth = "0.1"\n'},
                 ["--env", "Robot6Push-v0", "--urdf", GRIPPER5, "--card", "c.toml"], "tcp_depth must be a number",
                 id="card-field-of-the-wrong-type"),
    pytest.param({"g.urdf": Path(GRIPPER5).read_text().replace('upper="0.6"', 'upper="0.1"'),  # closes 7 mm a side
                  "g.card.toml": (ARMS / "gripper5.card.toml").read_text()},
                 ["--env", "Robot6PickAndPlace-v0", "--urdf", "g.urdf"], "close to 66 mm; the cube is 40 mm wide",
                 id="fingers-cannot-close-to-the-cube"),
    pytest.param({"c.toml": 'tcp_link = "hand"\ntcp_depth = 0.6\n'},
                 ["--env", "Robot6Push-v0", "--urdf", GRIPPER5, "--card", "c.toml"], "cannot reach, pointing down",
                 id="region-out-of-reach"),
    pytest.param({}, ["--env", "Robot6Push-v0", "--card", "c.toml"], "--card describes the gripper of --urdf",
                 id="card-without-urdf"),
    pytest.param({}, ["--env", "Robot6Push-v0", "--urdf", GRIPPER5, "--ee-link", "hand"], "--ee-link and --workspace are",
                 id="ee-link-on-push"),
]


@pytest.mark.parametrize("files, flags, message", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2_before_anything_is_written(tmp_path, monkeypatch, capsys, files, flags, message):
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        write(tmp_path, name, text)
    code = train_command.main([*flags, "--episodes", "1", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "runs").exists()


def test_a_changed_card_is_refused_on_resume_unless_accepted(tmp_path):
    for name in ("gripper5.urdf", "gripper5.card.toml"):
        shutil.copy(ARMS / name, tmp_path / name)
    first = run_cli("--env", "Robot6Push-v0", "--urdf", "gripper5.urdf", "--episodes", "2", *FAST, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    card = tmp_path / "gripper5.card.toml"
    card.write_text(card.read_text().replace("tcp_depth = 0.085", "tcp_depth = 0.08"))
    refused = run_cli("--resume", "--episodes", "4", cwd=tmp_path)
    assert refused.returncode == 2 and "card" in refused.stderr and "--accept-urdf-change" in refused.stderr, refused.stderr
    accepted = run_cli("--resume", "--episodes", "4", "--urdf", "gripper5.urdf", "--accept-urdf-change", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert "episode 2," in accepted.stdout


@pytest.fixture(scope="module")
def pick_run(tmp_path_factory) -> Path:
    """The newest checkpoint of a finished 3-episode Pick run on the test arm, with demonstrations."""
    folder = tmp_path_factory.mktemp("gripper_run")
    result = run_cli("--env", "Robot6PickAndPlace-v0", "--urdf", GRIPPER5, "--demos", "2", "--episodes", "3", *FAST,
                     cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "[DEMOS] 2 episodes of the scripted controller" in result.stdout
    (run,) = (folder / "checkpoints").glob("sac_*")
    return run / "latest.pth"


def test_the_tools_know_the_gripper_arm(pick_run, tmp_path, capsys):
    assert show.main([str(pick_run)]) == 0
    shown = capsys.readouterr().out
    assert f"arm gripper5 from {GRIPPER5}" in shown and "TCP hand + 0.085 m along z" in shown
    assert "action[3]: gripper: -1 open (0) to +1 closed (0.6)" in shown
    info = evaluate_and_export(pick_run, tmp_path, capsys)
    assert info["act_dim"] == 4 and info["arm"]["fingers"] == ["left_finger_joint", "right_finger_joint"]
    assert info["arm"]["action"][0].startswith("TCP x displacement") and info["arm"]["card_sha256"]
