"""Replay ring buffer and its incremental persistence."""

import numpy as np
import pytest
import torch

from robot6.learn.replay import FIELDS, ReplayBuffer
from robot6.run.segments import ReplayStore, list_segments


def fill(buf, n, start=0):
    for i in range(start, start + n):
        buf.add(np.full(3, i, np.float32), np.full(2, -i, np.float32), float(i), np.full(3, i + 1, np.float32), i % 7 == 0)


def arrays(buf):
    return [buf.obs, buf.act, buf.rew, buf.next_obs, buf.terminated, buf.to_end]


def test_ring_overwrites_oldest_and_samples_typed_batches():
    buf = ReplayBuffer(10, 3, 2, seed=0)
    fill(buf, 25)
    assert len(buf) == 10 and buf.count == 25 and buf.pos == 5
    assert sorted(buf.rew.tolist()) == list(range(15, 25))
    batch = buf.sample(64)
    assert batch.obs.shape == (64, 3) and batch.act.shape == (64, 2) and batch.rew.shape == (64,)
    assert batch.obs.dtype == torch.float32
    torch.testing.assert_close(batch.next_obs, batch.obs + 1)  # rows stay aligned across fields
    assert set(batch.terminated.tolist()) <= {0.0, 1.0}


def test_sample_many_is_one_draw_cut_into_batches():
    one, many = ReplayBuffer(100, 3, 2, seed=3), ReplayBuffer(100, 3, 2, seed=3)
    fill(one, 40)
    fill(many, 40)
    big = one.sample(3 * 16)
    batches = many.sample_many(16, 3)
    assert len(batches) == 3 and all(b.obs.shape == (16, 3) and b.rew.shape == (16,) for b in batches)
    for field, whole in zip(FIELDS, big, strict=True):
        assert torch.equal(torch.cat([getattr(b, field) for b in batches]), whole)
    assert one.rng.bit_generator.state == many.rng.bit_generator.state  # the same draws, no more


@pytest.mark.parametrize("capacity", [1000, 64])  # without and with wrap-around
def test_store_rebuilds_the_ring_byte_identical(tmp_path, capacity):
    buf = ReplayBuffer(capacity, 3, 2, seed=0)
    store = ReplayStore(tmp_path)
    manifest = None
    for episode in range(8):
        fill(buf, 50, start=buf.count)
        buf.end_episode(buf.count - 50, buf.count)  # episode ends are persisted too (hindsight relabelling)
        manifest = store.save(buf)
        if episode == 5:
            saved = [a.copy() for a in arrays(buf)]
            saved_manifest, saved_count = manifest, buf.count
    assert len(list_segments(tmp_path)) == 8  # one small segment per save
    assert buf.to_end.max() == 50 and (buf.to_end[: len(buf)] > 0).all()
    restored = ReplayBuffer(capacity, 3, 2)
    report = ReplayStore(tmp_path).load(restored, saved_manifest)  # later segments exist and are ignored
    assert report.complete and report.loaded == min(capacity, saved_count)
    assert restored.count == saved_count
    for a, b in zip(saved, arrays(restored), strict=True):
        assert a.tobytes() == b.tobytes()
    restored_last = ReplayBuffer(capacity, 3, 2)
    ReplayStore(tmp_path).load(restored_last, manifest)
    for a, b in zip(arrays(buf), arrays(restored_last), strict=True):
        assert a.tobytes() == b.tobytes()


def test_missing_segment_loads_the_rest_and_starts_a_new_generation(tmp_path):
    buf = ReplayBuffer(1000, 3, 2)
    store = ReplayStore(tmp_path)
    for _ in range(4):
        fill(buf, 50, start=buf.count)
        manifest = store.save(buf)
    assert ReplayStore(tmp_path).covered(manifest) == (200, 200)
    list_segments(tmp_path)[1][3].unlink()
    assert ReplayStore(tmp_path).covered(manifest) == (150, 200)  # what robot6.show reports, by file names
    restored = ReplayBuffer(1000, 3, 2)
    loader = ReplayStore(tmp_path)
    report = loader.load(restored, manifest)
    assert (report.expected, report.loaded, report.missing_segments) == (200, 150, 1)
    assert restored.count == 150
    assert sorted(restored.rew[:150].tolist()) == [*range(50), *range(100, 200)]
    assert loader.generation == 1
    m2 = loader.save(restored)  # the new generation starts with the whole buffer in one segment
    again = ReplayBuffer(1000, 3, 2)
    assert ReplayStore(tmp_path).load(again, m2).complete
    assert again.rew.tobytes() == restored.rew.tobytes()


def test_corrupt_segment_counts_as_missing(tmp_path):
    buf = ReplayBuffer(100, 3, 2)
    store = ReplayStore(tmp_path)
    fill(buf, 30)
    manifest = store.save(buf)
    list_segments(tmp_path)[0][3].write_bytes(b"\0" * 10)
    report = ReplayStore(tmp_path).load(ReplayBuffer(100, 3, 2), manifest)
    assert report.loaded == 0 and report.missing_segments == 1


def test_discard_after_and_prune(tmp_path):
    buf = ReplayBuffer(100, 3, 2)
    store = ReplayStore(tmp_path)
    manifests = []
    for _ in range(6):
        fill(buf, 40, start=buf.count)
        manifests.append(store.save(buf))
    store.discard_after(200)
    assert max(stop for _, _, stop, _ in list_segments(tmp_path)) == 200
    # Only the checkpoint at count 200 remains: its window is [100, 200), so segments ending by 100 go.
    store.persisted = 200
    deleted = store.prune([manifests[4]])
    assert deleted == 2
    assert [(s, e) for _, s, e, _ in list_segments(tmp_path)] == [(80, 120), (120, 160), (160, 200)]
    assert ReplayStore(tmp_path).load(ReplayBuffer(100, 3, 2), manifests[4]).complete


def test_small_segments_are_merged_and_every_checkpoint_still_loads(tmp_path):
    from robot6.run.segments import MERGE_EVERY

    buf = ReplayBuffer(10_000, 3, 2)
    store = ReplayStore(tmp_path)
    manifests, snapshots = [], {}
    for i in range(MERGE_EVERY * 2 + 5):
        fill(buf, 10, start=buf.count)
        manifests.append(store.save(buf))
        if i in (3, MERGE_EVERY + 1):
            snapshots[i] = buf.rew.copy()
    assert len(list_segments(tmp_path)) == MERGE_EVERY * 2 + 5
    store.prune(manifests)
    assert [(s, e) for _, s, e, _ in list_segments(tmp_path)][:2] == [(0, MERGE_EVERY * 10), (MERGE_EVERY * 10, MERGE_EVERY * 20)]
    assert len(list_segments(tmp_path)) == 2 + 5
    for i, rew in snapshots.items():  # older checkpoints read the prefix of a merged segment
        restored = ReplayBuffer(10_000, 3, 2)
        assert ReplayStore(tmp_path).load(restored, manifests[i]).complete
        assert restored.rew.tobytes() == rew.tobytes()
    restored = ReplayBuffer(10_000, 3, 2)
    assert ReplayStore(tmp_path).load(restored, manifests[-1]).complete
    assert restored.rew.tobytes() == buf.rew.tobytes()


def test_discard_after_cuts_a_segment_straddling_the_checkpoint(tmp_path):
    buf = ReplayBuffer(1000, 3, 2)
    store = ReplayStore(tmp_path)
    fill(buf, 100)
    store.save(buf)  # one segment [0, 100); the checkpoint that landed had count 60
    store.discard_after(60)
    assert [(s, e) for _, s, e, _ in list_segments(tmp_path)] == [(0, 60)]
    restored = ReplayBuffer(1000, 3, 2)
    assert ReplayStore(tmp_path).load(restored, {"generation": 0, "count": 60, "capacity": 1000}).complete
    assert restored.rew[:60].tolist() == list(range(60)) and restored.count == 60


def test_device_mirror_samples_the_same_batches(tmp_path):
    # On a CPU-only machine the "device" is the CPU, but the mirror code path is the same as on a GPU.
    plain, mirrored = ReplayBuffer(64, 3, 2, seed=7), ReplayBuffer(64, 3, 2, seed=7, on_device=True)
    store = ReplayStore(tmp_path)
    for _ in range(5):  # wraps around the 64-slot ring
        for buf in (plain, mirrored):
            fill(buf, 30, start=buf.count)
            recent = buf.transitions(buf.count - 5, buf.count)
            buf.add_batch(*(recent[name] for name in FIELDS))
        manifest = store.save(plain)
        for a, b in zip(plain.sample(32), mirrored.sample(32), strict=True):
            assert torch.equal(a, b)
    restored = ReplayBuffer(64, 3, 2, seed=7, on_device=True)
    ReplayStore(tmp_path).load(restored, manifest)
    restored.rng.bit_generator.state = plain.rng.bit_generator.state
    for a, b in zip(plain.sample(32), restored.sample(32), strict=True):
        assert torch.equal(a, b)
