"""Kill -9 torture (slow): random SIGKILLs, many aimed at the middle of a save, then resume to the end."""

import pytest

from bench.torture import torture


@pytest.mark.slow
def test_random_kills_never_corrupt_or_lose_more_than_an_episode(tmp_path):
    args = ["--hidden", "256", "256", "--batch-size", "32", "--learning-starts", "60", "--ckpt-every", "3"]
    report = torture(tmp_path, cycles=6, episodes=40, train_args=args, kill_after=(0.0, 1.0), seed=1, log=lambda _: None)
    assert report.ok, report
    assert report.kills >= 5 and report.kills_during_save >= 1
    assert report.corrupt_files == [] and report.pth_files >= 3
    assert max(report.lost_episodes) <= 1
