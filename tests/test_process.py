"""The process a run trains in: denormals, settings restored after a run, the run-dir lock, signals off the main thread."""

import subprocess
import sys
import threading

import pytest
from conftest import ROOT, cli_env

DENORMALS = """
import torch
from robot6.learn.agent import SAC
from robot6.learn.replay import Batch
from robot6.run.process import denormals_flushed, flush_denormals
torch.set_num_threads(2)
TINY = 1.1754944e-38  # the smallest normal float32

def run(flush):
    flush_denormals(flush)
    torch.manual_seed(0)
    agent = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 1.0)
    # Hidden unit 0 of the actor never fires: its weights get no gradient, so Adam's moments of them only decay.
    lin = agent.actor._linears[0]
    with torch.no_grad():
        lin.weight[0].zero_()
        lin.bias[0] = -1000.0
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(40):
        b = Batch(*(torch.randn(64, *s, generator=g) for s in ((6,), (2,), (), (6,), ())))
        batches.append(Batch(b.obs, b.act.tanh(), b.rew, b.next_obs, b.rew.gt(2).float()))
    agent.update(batches[0])
    # The first moment of that unit's bias starts just above the denormal range; 0.9 per step takes it below.
    state = agent.policy_opt.state[lin.bias]
    state["exp_avg"][0] = 1e-37
    for b in batches[1:]:
        agent.update(b)
    m = state["exp_avg"][0].item()
    weights = [p.detach().clone() for p in (*agent.actor.parameters(), *agent.critic.parameters())]
    return m, weights

m_kept, w_kept = run(False)
assert not denormals_flushed()
assert 0.0 < abs(m_kept) < TINY, f"no denormal appeared: {m_kept}"
m_flushed, w_flushed = run(True)
assert denormals_flushed()
assert m_flushed == 0.0, m_flushed
assert all(torch.equal(a, b) for a, b in zip(w_kept, w_flushed)), "flushing changed the weights"
print("ok")
"""


def test_denormals_appear_in_adam_and_flushing_them_changes_no_weight():
    """Adam's first moment of a never-firing unit decays into the denormal range; flushed, it is 0 instead,
    and every weight comes out bit for bit the same. A fresh process: the mode is process-wide."""
    result = subprocess.run([sys.executable, "-c", DENORMALS], capture_output=True, text=True, timeout=120,
                            cwd=ROOT, env=cli_env())
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


LIBRARY_CALL = """
import json, sys, threading
from robot6.run.config import Config
from robot6.run.process import denormals_flushed
from robot6.run.loop import train

assert not denormals_flushed()
config = Config(episodes=1, hidden=[16], batch_size=16, learning_starts=20, buffer_size=1000,
                checkpoint_dir=sys.argv[1] + "/c", log_dir=sys.argv[1] + "/r")
out = {}
def worker():
    out["result"] = train(config)  # off the main thread: no signal handlers can be installed there
t = threading.Thread(target=worker)
t.start(); t.join()
result = out["result"]
print(json.dumps({"episode": result.episode, "flushed_after": denormals_flushed()}))
train(Config(**{**config.to_dict(), "episodes": 2, "resume": True}))  # the lock was released on close
"""


def test_train_as_a_library_function_restores_settings_and_releases_the_lock(tmp_path):
    result = subprocess.run([sys.executable, "-c", LIBRARY_CALL, str(tmp_path)], capture_output=True, text=True,
                            timeout=180, cwd=ROOT, env=cli_env())
    assert result.returncode == 0, result.stderr[-2000:]
    assert '{"episode": 1, "flushed_after": false}' in result.stdout
    assert "episode 1, global_step 50" in result.stdout


def test_a_run_folder_is_locked_while_trained(tmp_path):
    from robot6.errors import ConfigError
    from robot6.run.process import RunDirLock

    first = RunDirLock(tmp_path)
    with pytest.raises(ConfigError, match=r"is being trained by another process \(pid \d+\)"):
        RunDirLock(tmp_path)
    first.release()
    RunDirLock(tmp_path).release()


def test_stop_request_installs_handlers_on_the_main_thread_only():
    import signal

    from robot6.run.process import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert signal.getsignal(signal.SIGTERM) == stop._handle
    assert signal.getsignal(signal.SIGTERM) == before
    errors = []

    def off_main():
        try:
            with StopRequest() as s:
                s.requested = True
        except Exception as e:  # signal.signal raises ValueError off the main thread
            errors.append(e)

    t = threading.Thread(target=off_main)
    t.start()
    t.join()
    assert errors == [] and signal.getsignal(signal.SIGTERM) == before

