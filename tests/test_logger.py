"""training.csv and TensorBoard continuity across resumes and forks (real event files)."""

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from robot6.run.logger import CSV_NAME, RunLogger, read_csv_rows


def log_episodes(logger, episodes, value_offset=0.0):
    for ep in episodes:
        step = (ep + 1) * 50
        logger.log_episode({"episode": ep, "global_step": step, "episode_reward": -ep}, {"episode/reward": ep + value_offset}, step)


def scalars(run_dir, tag="episode/reward"):
    acc = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_resume_drops_rows_and_events_past_the_checkpoint(tmp_path):
    logger = RunLogger(tmp_path)
    log_episodes(logger, range(5))  # episodes 0..4; the checkpoint holds only 3 episodes (step 150)
    logger.close()
    logger = RunLogger(tmp_path, start_episode=3, start_step=150)
    log_episodes(logger, range(3, 6), value_offset=100.0)
    logger.close()
    rows = read_csv_rows(tmp_path / CSV_NAME)
    assert [int(r["episode"]) for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [int(r["global_step"]) for r in rows] == [50, 100, 150, 200, 250, 300]
    assert scalars(tmp_path) == [(50, 0.0), (100, 1.0), (150, 2.0), (200, 103.0), (250, 104.0), (300, 105.0)]


def test_a_torn_last_line_is_dropped(tmp_path):
    logger = RunLogger(tmp_path)
    log_episodes(logger, range(2))
    logger.close()
    with open(tmp_path / CSV_NAME, "a") as f:
        f.write("2,150,-2.0,5")  # a kill in the middle of a write
    assert [r["episode"] for r in read_csv_rows(tmp_path / CSV_NAME)] == ["0", "1"]
    logger = RunLogger(tmp_path, start_episode=2, start_step=100)
    log_episodes(logger, [2])
    logger.close()
    assert [r["episode"] for r in read_csv_rows(tmp_path / CSV_NAME)] == ["0", "1", "2"]


def test_fork_copies_history_up_to_the_checkpoint(tmp_path):
    parent, child = tmp_path / "parent", tmp_path / "child"
    logger = RunLogger(parent)
    log_episodes(logger, range(6))
    logger.close()
    logger = RunLogger(child, start_episode=2, start_step=100, history_from=parent)
    log_episodes(logger, [2], value_offset=10.0)
    logger.close()
    assert [r["episode"] for r in read_csv_rows(child / CSV_NAME)] == ["0", "1", "2"]
    assert scalars(child) == [(50, 0.0), (100, 1.0), (150, 12.0)]
    assert len(read_csv_rows(parent / CSV_NAME)) == 6  # the parent's history is untouched
    assert len(scalars(parent)) == 6


def test_elapsed_time_continues(tmp_path):
    logger = RunLogger(tmp_path, state={"elapsed_s": 100.0})
    assert logger.state_dict()["elapsed_s"] >= 100.0
    logger.close()


def test_logs_handed_over_are_on_disk_and_sync_runs_beside_logging(tmp_path):
    """The trainer hands the rows over at an episode end and syncs them in its writer thread (before the
    checkpoint) while the next episode logs on: everything lands, in order, in both files."""
    import threading

    logger = RunLogger(tmp_path)
    log_episodes(logger, range(3))
    logger.hand_over()
    assert [r["episode"] for r in read_csv_rows(tmp_path / CSV_NAME)] == ["0", "1", "2"]  # visible to others
    syncer = threading.Thread(target=lambda: [logger.sync() for _ in range(20)])
    syncer.start()
    log_episodes(logger, range(3, 40))
    syncer.join()
    logger.sync()
    assert scalars(tmp_path)[:3] == [(50, 0.0), (100, 1.0), (150, 2.0)]  # flushed by sync, before close
    logger.close()
    assert [int(r["episode"]) for r in read_csv_rows(tmp_path / CSV_NAME)] == list(range(40))
    assert [s for s, _ in scalars(tmp_path)] == [(ep + 1) * 50 for ep in range(40)]
