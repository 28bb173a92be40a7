"""Per-env presets (robot6/run/presets.py, robot6/presets.toml): a fresh run starts from its env's preset, flags win."""

import dataclasses

import pytest
from conftest import FAST, run_cli
from robot6_test_envs import ENV_ID

from robot6.errors import ConfigError
from robot6.run import checkpoint as ckpt
from robot6.run.config import Config
from robot6.run.presets import PRESET_FIELDS, apply_preset, load_presets, preset_for


def test_the_default_env_preset_is_configs_defaults():
    """Config's defaults are Robot6Reach-v0's preset: a library user and the CLI start from the same values."""
    name, values = preset_for("Robot6Reach-v0")
    assert name == "Robot6Reach-v0"
    defaults = Config()
    for field in PRESET_FIELDS:
        assert values.get(field, getattr(defaults, field)) == getattr(defaults, field), field


def test_every_table_is_a_valid_config():
    for name in load_presets():
        env_id = {"default": "MountainCarContinuous-v0", "goal_env": ENV_ID}.get(name, name)
        config, line = apply_preset(Config(env_id=env_id), set())
        config.validate()
        assert f"preset [{name}]" in line


@pytest.mark.parametrize("env_id, expected", [
    ("MountainCarContinuous-v0", {"hidden": [256, 256], "gamma": 0.99, "lr": 3e-4, "batch_size": 256, "utd": 1}),
    ("Pendulum-v1", {"hidden": [64, 64], "gamma": 0.95, "utd": 1}),
    ("Robot6Push-v0", {"gamma": 0.95, "eval_every": 10000}),
])
def test_an_env_gets_its_table_over_default_and_flags_win(env_id, expected):
    config, line = apply_preset(Config(env_id=env_id, lr=0.005), {"env_id", "lr"})
    for field, value in expected.items():
        if field != "lr":
            assert getattr(config, field) == value, field
    assert config.lr == 0.005  # given: wins
    table = env_id if env_id != "MountainCarContinuous-v0" else "default"
    assert line.startswith(f"[CONFIG] {env_id}: preset [{table}] (") and line.endswith("given: --lr 0.005")
    from_preset = line.split("(", 1)[1].split(")")[0].split(", ")
    assert not any(item.startswith("lr ") for item in from_preset)  # a given flag is not the preset's


def test_a_goal_env_with_no_table_starts_from_the_goal_env_table_and_says_so():
    """A third-party goal env (Dict observation, no table of its own) learns manipulation settings, not the
    MuJoCo ones of [default]; an env without goals still gets [default]."""
    tables = load_presets()
    config, line = apply_preset(Config(env_id=ENV_ID), set())
    assert line.startswith(f"[CONFIG] {ENV_ID}: preset [goal_env] for a goal env with no table of its own (")
    assert tables["goal_env"] != tables["default"]
    for field in PRESET_FIELDS:
        assert getattr(config, field) == tables["goal_env"].get(field, tables["default"].get(field, getattr(Config(), field))), field
    _, line = apply_preset(Config(env_id="MountainCarContinuous-v0"), set())
    assert "preset [default] (" in line


def test_an_env_that_cannot_be_made_is_one_clear_error():
    with pytest.raises(ConfigError, match="--env NoSuchEnv-v0: cannot make this environment"):
        apply_preset(Config(env_id="NoSuchEnv-v0"), set())


@pytest.mark.parametrize("text, message", [
    ("[Robot6Reach-v0]\nlr = 1e-3\n", "no [default] table"),
    ("[default]\nlr = 1e-3\nepisodes = 5\n", "[default] has settings a preset cannot set: episodes"),
    ("[default]\nlr = [\n", "cannot read the presets"),
    ("[default]\nhidden = 3\nnot_a_field = 1\n", "cannot set: not_a_field"),
])
def test_a_broken_presets_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "presets.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        apply_preset(Config(), set(), path)


def test_a_run_prints_its_preset_and_saves_the_effective_config(tmp_path):
    result = run_cli("--env", "MountainCarContinuous-v0", "--episodes", "1", "--checkpoint-dir", "c", "--log-dir", "r",
                     "--lr", "0.002", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("[CONFIG]"))
    assert "preset [default]" in line and "gamma 0.99" in line and "hidden 256 256" in line and "given: --lr 0.002" in line
    saved = ckpt.load_checkpoint(next((tmp_path / "c").glob("*/latest.pth")))["meta"]["config"]
    assert (saved["gamma"], saved["hidden"], saved["lr"]) == (0.99, [256, 256], 0.002)
    # On resume the checkpoint's settings stay, whatever the preset says now.
    resumed = run_cli("--resume", "--episodes", "2", "--checkpoint-dir", "c", "--log-dir", "r", cwd=tmp_path)
    assert resumed.returncode == 0 and "[CONFIG]" not in resumed.stdout
    assert ckpt.load_checkpoint(next((tmp_path / "c").glob("*/latest.pth")))["meta"]["config"]["lr"] == 0.002


def test_flags_of_the_fast_test_settings_are_kept_over_the_preset(tmp_path):
    result = run_cli("--env", "Pendulum-v1", "--episodes", "1", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    config = ckpt.load_checkpoint(next((tmp_path / "checkpoints").glob("*/latest.pth")))["meta"]["config"]
    assert config["hidden"] == [32, 32] and config["batch_size"] == 32 and config["gamma"] == 0.95
    assert dataclasses.asdict(Config())["gamma"] == 0.9  # Config itself unchanged
