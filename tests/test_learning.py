"""Options that trade exactness for speed still learn (slow): Pendulum-v1 swings up within 6,000 steps."""

import pytest
from conftest import run_cli

from robot6.run.logger import read_csv_rows

# Settings of its own (the defaults are tuned for Robot6Reach-v0): the test stays about the options.
PENDULUM = ["--env", "Pendulum-v1", "--total-steps", "6000", "--hidden", "64", "64", "--batch-size", "128", "--utd", "1", "--policy-delay", "1",
            "--learning-starts", "1000", "--gamma", "0.95", "--tau", "0.005"]


@pytest.mark.slow
@pytest.mark.parametrize("options", [("--updates-every", "8"), ("--utd", "2"), ("--compile",), ("--policy-delay", "2")], ids=lambda o: " ".join(o))
def test_option_still_learns_pendulum(tmp_path, options):
    result = run_cli(*PENDULUM, *options, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (log_dir,) = (tmp_path / "runs").iterdir()
    rewards = [float(r["episode_reward"]) for r in read_csv_rows(log_dir / "training.csv")]
    assert len(rewards) == 30
    # A random policy scores about -1200 per episode; a swung-up pendulum better than -400 on average.
    assert sum(rewards[:5]) / 5 < -800
    assert sum(rewards[-5:]) / 5 > -400, rewards
