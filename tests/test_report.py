"""What a run tells its user (robot6/run/report.py): commands written as the process was launched, durations."""

import pytest

from robot6.run.report import command, duration


@pytest.mark.parametrize("argv0, train, evaluate", [
    ("/venv/bin/robot6-train", "robot6-train", "robot6-evaluate"),
    ("/venv/bin/robot6-sweep", "robot6-train", "robot6-evaluate"),  # a sweep's trials suggest the console scripts too
    ("Train_Robot6.py", "python Train_Robot6.py", "python -m robot6.evaluate"),
    ("/src/robot6/train.py", "python -m robot6.train", "python -m robot6.evaluate"),  # python -m robot6.train
    ("", "python -m robot6.train", "python -m robot6.evaluate"),  # embedded: no script name
])
def test_commands_are_written_as_this_process_was_started(monkeypatch, argv0, train, evaluate):
    monkeypatch.setattr("sys.argv", [argv0])
    assert (command("train"), command("evaluate")) == (train, evaluate)


@pytest.mark.parametrize("seconds, text", [(0.042, "0.04 s"), (42.34, "42.3 s"), (200, "3 min 20 s"), (7500, "2 h 05 min")])
def test_durations_read_as_people_write_them(seconds, text):
    assert duration(seconds) == text
