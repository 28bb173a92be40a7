"""The SAC update and the agent's state round trip."""

import copy

import numpy as np
import pytest
import torch

from robot6.learn.agent import NOISE_BLOCK, SAC
from robot6.learn.networks import views_like
from robot6.learn.optim import FusedAdam, make_adam
from robot6.learn.replay import Batch


def make_agent(seed=0):
    torch.manual_seed(seed)
    return SAC(obs_dim=6, act_dim=2, hidden=[32, 32], lr=1e-3, gamma=0.95, tau=0.005, init_alpha=1.0)


def fixed_batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n, 6, generator=g),
        act=torch.rand(n, 2, generator=g) * 2 - 1,
        rew=torch.randn(n, generator=g),
        next_obs=torch.randn(n, 6, generator=g),
        terminated=(torch.rand(n, generator=g) < 0.1).float(),
    )


def snapshot(agent):
    return {k: copy.deepcopy(v) for k, v in agent.state_dict().items() if k not in ("policy_opt", "q_opt", "alpha_opt")}


def test_one_update_changes_every_network_and_alpha():
    agent = make_agent()
    before = snapshot(agent)
    metrics = agent.update(fixed_batch())
    after = snapshot(agent)
    for key in ("policy", "q1", "q2", "q1_target", "q2_target"):
        for name, tensor in before[key].items():
            assert not torch.equal(tensor, after[key][name]), f"{key}.{name} did not change"
    assert not torch.equal(before["log_alpha"], after["log_alpha"])
    assert set(metrics) >= {"critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy"}
    assert all(not v.requires_grad and v.dim() == 0 for v in metrics.values())


def test_target_is_polyak_average():
    agent = make_agent()
    target_before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(fixed_batch())
    for t0, t1, online in zip(target_before, agent.critic_target.parameters(), agent.critic.parameters(), strict=True):
        torch.testing.assert_close(t1, t0 + agent.tau * (online - t0))


def test_a_deep_copy_of_an_agent_updates_on_its_own():
    """The critics and their targets share one stack of layers (one batched pass per update), the actor's
    parameters one flat tensor (one Adam kernel over it); a deep copy gets new storage, which its first update
    joins and flattens again: the copy then trains exactly as the original would, and the original does not
    move."""
    agent = make_agent()
    agent.update(fixed_batch(seed=1))
    clone = copy.deepcopy(agent)
    before = snapshot(agent)
    torch.manual_seed(5)
    m_clone = [clone.update(fixed_batch(seed=i)) for i in (2, 3)]  # the second reads what the first wrote
    after = snapshot(agent)
    for key in ("policy", "q1", "q2", "q1_target", "q2_target"):
        for name, tensor in before[key].items():
            assert torch.equal(tensor, after[key][name]), f"{key}.{name} moved with its copy"
    torch.manual_seed(5)
    m_agent = [agent.update(fixed_batch(seed=i)) for i in (2, 3)]
    for a, b in zip(m_agent, m_clone, strict=True):
        for k in a:
            assert torch.equal(a[k], b[k]), k
    s_agent, s_clone = snapshot(agent), snapshot(clone)
    for key in ("policy", "q1", "q2", "q1_target", "q2_target"):
        for name in s_agent[key]:
            assert torch.equal(s_agent[key][name], s_clone[key][name]), f"{key}.{name}"


def test_critic_loss_falls_on_a_fixed_batch():
    agent = make_agent()
    batch = fixed_batch()
    losses = [agent.update(batch)["critic_loss"].item() for _ in range(100)]
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])


@pytest.mark.parametrize("hidden, policy_delay", [([32, 32], 1), ([16], 1), ([8, 8, 8], 1), ([32, 32], 3)])
def test_closed_form_update_matches_autograd(hidden, policy_delay):
    """update() writes the gradients out; five steps of it must land where update_autograd() does (with a
    policy delay of 3: two critic-only updates, a full one, two critic-only)."""
    torch.manual_seed(0)
    fast = SAC(6, 2, hidden, 1e-3, 0.95, 0.005, 0.5, policy_delay=policy_delay)
    with torch.no_grad():  # push some log-stds past both clamp bounds, so the clamp's gradient mask matters
        fast.actor.log_std.bias.copy_(torch.tensor([3.0, -21.0]))
    ref = copy.deepcopy(fast)
    for i in range(5):
        batch = fixed_batch(seed=i)
        torch.manual_seed(100 + i)  # the same noise for both
        m_fast = fast.update(batch)
        torch.manual_seed(100 + i)
        m_ref = ref.update_autograd(batch)
        assert m_fast.keys() == m_ref.keys()
        for k in m_ref:
            torch.testing.assert_close(m_fast[k], m_ref[k], rtol=1e-4, atol=1e-5, msg=k)
    fast_state, ref_state = fast.state_dict(), ref.state_dict()
    for key in ("policy", "q1", "q2", "q1_target", "q2_target"):
        for name in ref_state[key]:
            torch.testing.assert_close(fast_state[key][name], ref_state[key][name], rtol=1e-4, atol=1e-5, msg=f"{key}.{name}")
    for key in ("policy_opt", "q_opt", "alpha_opt"):
        for idx, st in ref_state[key]["state"].items():
            for name in ("step", "exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(fast_state[key]["state"][idx][name], st[name], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast.log_alpha, ref.log_alpha)


@pytest.mark.parametrize("policy_delay, sizes", [(3, [3, 3, 3]), (3, [2, 4, 1, 5]), (2, [7]), (1, [3, 2])])
def test_update_many_is_the_same_as_updating_one_by_one(policy_delay, sizes):
    """update_many draws the policy's samples of a run of critic-only updates and the full update that ends
    it in one pass; groups of any length, starting anywhere in the pattern, give the same metrics and the same
    parameters and optimizer states bit for bit as update() called on each batch in turn."""
    torch.manual_seed(0)
    one = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 0.5, policy_delay=policy_delay)
    many = copy.deepcopy(one)
    seed = 0
    for size in sizes:
        batches = [fixed_batch(seed=seed + i) for i in range(size)]
        seed += size
        torch.manual_seed(seed)
        m_one = [one.update(b) for b in batches]
        rng_one = torch.get_rng_state()
        torch.manual_seed(seed)
        m_many = [SAC.reduce_metrics([r]) for r in many.update_many(batches)]
        assert torch.equal(torch.get_rng_state(), rng_one)  # the same draws: the run after them is unchanged
        assert [m.keys() for m in m_many] == [m.keys() for m in m_one]
        for a, b in zip(m_one, m_many, strict=True):
            for k in a:
                assert torch.equal(a[k], b[k]), k
    assert many.critic_updates == one.critic_updates == sum(sizes)
    s_one, s_many = one.state_dict(), many.state_dict()
    for key in ("policy", "q1", "q2", "q1_target", "q2_target"):
        for name in s_one[key]:
            assert torch.equal(s_one[key][name], s_many[key][name]), f"{key}.{name}"
    for key in ("policy_opt", "q_opt", "alpha_opt"):
        for idx, st in s_one[key]["state"].items():
            for name in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(s_many[key]["state"][idx][name], st[name]), f"{key}.{idx}.{name}"
    assert torch.equal(one.log_alpha, many.log_alpha)


def test_reduce_metrics_averages_each_metric_over_the_updates_that_have_it():
    """The episode's logged metrics: reduce_metrics of many raw records is the mean of the per-update metrics,
    the actor's over the updates that stepped the actor only (two of six with --policy-delay 3)."""
    torch.manual_seed(0)
    agent = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 0.5, policy_delay=3)
    records = agent.update_many([fixed_batch(seed=i) for i in range(6)])
    per_update = [SAC.reduce_metrics([r]) for r in records]
    total = SAC.reduce_metrics(records)
    assert set(total) == {"critic_loss", "alpha", "q", "actor_loss", "alpha_loss", "entropy"}
    for k, v in total.items():
        values = [m[k] for m in per_update if k in m]
        assert len(values) == (2 if k in ("actor_loss", "alpha_loss", "entropy") else 6), k
        torch.testing.assert_close(v, torch.stack(values).mean(), msg=k)
    assert SAC.reduce_metrics([]) == {}


def test_policy_delay_steps_the_actor_and_alpha_at_every_nth_update_only():
    """--policy-delay 2: odd updates train the critics alone, even ones everything; the pattern is carried by
    the checkpoint (a clone loaded after three updates does its next full update at the fourth)."""
    agent = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 1.0, policy_delay=2)
    changed = []
    for i in range(3):
        before = snapshot(agent)
        metrics = agent.update(fixed_batch(seed=i))
        after = snapshot(agent)
        changed.append({key: not all(torch.equal(v, after[key][n]) for n, v in before[key].items())
                        for key in ("policy", "q1", "q1_target")})
        changed[-1]["log_alpha"] = not torch.equal(before["log_alpha"], after["log_alpha"])
        assert ("actor_loss" in metrics) == (i == 1)
    assert changed == [
        {"policy": False, "q1": True, "q1_target": True, "log_alpha": False},
        {"policy": True, "q1": True, "q1_target": True, "log_alpha": True},
        {"policy": False, "q1": True, "q1_target": True, "log_alpha": False},
    ]
    clone = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 1.0, policy_delay=2)
    clone.load_state_dict(copy.deepcopy(agent.state_dict()))
    for i in range(3, 6):
        torch.manual_seed(i)
        m1 = agent.update(fixed_batch(seed=i))
        torch.manual_seed(i)
        m2 = clone.update(fixed_batch(seed=i))
        assert m1.keys() == m2.keys() and ("actor_loss" in m1) == (i % 2 == 1)
        for k in m1:
            assert torch.equal(m1[k], m2[k]), k


def test_alpha_moves_towards_target_entropy():
    agent = make_agent()
    batch = fixed_batch()
    alpha0 = agent.log_alpha.exp().item()
    for _ in range(5):
        m = agent.update(batch)
    # Entropy of a fresh policy (about 2 nats for 2 dims) is above the target -2: alpha must fall.
    assert m["entropy"].item() > agent.target_entropy
    assert agent.log_alpha.exp().item() < alpha0


def test_state_dict_round_trip_restores_training_exactly():
    agent = make_agent(0)
    for i in range(3):
        agent.update(fixed_batch(seed=i))
    clone = make_agent(1)  # different initial weights
    clone.load_state_dict(copy.deepcopy(agent.state_dict()))
    torch.manual_seed(42)
    m1 = agent.update(fixed_batch(seed=9))
    torch.manual_seed(42)
    m2 = clone.update(fixed_batch(seed=9))
    for k in m1:
        assert torch.equal(m1[k], m2[k]), k
    for p, q in zip(agent.actor.parameters(), clone.actor.parameters(), strict=True):
        assert torch.equal(p, q)


def test_act_returns_bounded_numpy_action():
    agent = make_agent()
    a = agent.act(torch.randn(6).numpy())
    assert a.shape == (2,) and abs(a).max() <= 1
    assert (agent.act(torch.zeros(6).numpy(), deterministic=True) == agent.act(torch.zeros(6).numpy(), deterministic=True)).all()


@pytest.mark.parametrize("flat", [False, True], ids=["per-parameter", "flat"])
@pytest.mark.parametrize("mixed", [False, True], ids=["shared-hyperparameters", "own-hyperparameters"])
def test_fused_adam_equals_the_optimizers_own_steps(tmp_path, flat, mixed):
    """FusedAdam (one _fused_adam_ call per run of optimizers with the same hyperparameters, the step counts as
    views of one tensor) gives the parameters and the state that optimizer.step() gives, also across a
    state_dict round trip through a file (then reset()), with optimizer.step() called between its own steps,
    and with each optimizer's own lr, betas, eps and weight decay, changed between steps; also when one
    optimizer's parameters are views of one flat tensor stepped as one (as the agent's actor)."""
    torch.manual_seed(0)
    ref = [torch.randn(5, 3, requires_grad=True), torch.randn(3, requires_grad=True), torch.randn((), requires_grad=True)]
    ours = [p.detach().clone().requires_grad_(True) for p in ref]
    flats = [None, None]
    if flat:
        flats[0] = torch.cat([p.detach().reshape(-1) for p in ours[:2]])
        for p, view in zip(ours[:2], views_like(flats[0], ours[:2]), strict=True):
            p.data = view
    if mixed:
        def adams(params):
            return [torch.optim.Adam(params[:2], lr=1e-2, fused=True),
                    torch.optim.Adam(params[2:], lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, fused=True)]
    else:
        def adams(params):
            return [make_adam(params[:2], 1e-2), make_adam(params[2:], 1e-2)]
    ref_opts, our_opts = adams(ref), adams(ours)
    fused = FusedAdam(our_opts, flats=flats)

    def step(k, plain=False):
        grads = [torch.randn(p.shape, generator=torch.Generator().manual_seed(10 * k + i)) for i, p in enumerate(ref)]
        for p, g in zip(ref, grads, strict=True):
            p.grad = g
        for opt in ref_opts:
            opt.step()
        if plain:
            for p, g in zip(ours, grads, strict=True):
                p.grad = g
            for opt in our_opts:
                opt.step()
        else:
            if flat:
                grads = [torch.cat([g.reshape(-1) for g in grads[:2]]), grads[2]]
            with torch.inference_mode():  # as the agent's updates run
                fused.step(grads)

    def check():
        for p, q in zip(ref, ours, strict=True):
            torch.testing.assert_close(q, p, rtol=0, atol=1e-7)
        for ref_opt, our_opt in zip(ref_opts, our_opts, strict=True):
            for p, q in zip(ref_opt.param_groups[0]["params"], our_opt.param_groups[0]["params"], strict=True):
                for key in ("step", "exp_avg", "exp_avg_sq"):
                    torch.testing.assert_close(our_opt.state[q][key], ref_opt.state[p][key], rtol=0, atol=1e-7)

    for k in range(4):
        step(k)
    check()
    step(4, plain=True)
    if mixed:  # a schedule changes one optimizer's learning rate: the next fused step follows it
        for opt in (ref_opts[0], our_opts[0]):
            opt.param_groups[0]["lr"] = 5e-3
    step(5)
    check()
    torch.save([opt.state_dict() for opt in our_opts], tmp_path / "opt.pth")
    for opt, state in zip(our_opts, torch.load(tmp_path / "opt.pth", weights_only=True), strict=True):
        opt.load_state_dict(state)
    fused.reset()
    for k in range(6, 9):
        step(k)
    check()
    assert float(our_opts[0].state[ours[0]]["step"]) == 9.0
    if flat:  # the parameters stayed views of the flat tensor, which the kernel stepped
        assert ours[0].data_ptr() == flats[0].data_ptr() and torch.equal(flats[0][:15], ours[0].detach().reshape(-1))


def test_act_on_a_cpu_is_the_actor_forward_and_follows_updates_and_loads():
    """SAC.act runs the actor in numpy on a CPU (Actor.act_numpy, on views of the parameters): the same
    action as the torch forward to float rounding, its noise the rows of a block drawn from torch's generator,
    and still so after updates (in place) and a load_state_dict."""
    agent, batch = make_agent(), fixed_batch()
    obs = torch.randn(5, 6, generator=torch.Generator().manual_seed(3))

    def check():
        torch.manual_seed(7)
        agent.reset_noise()
        actions = [agent.act(row.numpy()) for row in obs]
        after = torch.randn(1)  # one block drawn for all five actions
        torch.manual_seed(7)
        eps = torch.randn(NOISE_BLOCK, agent.actor.mu.out_features)[: len(obs)]
        assert torch.equal(after, torch.randn(1))
        with torch.no_grad():
            reference = agent.actor.sample_traced(obs, eps)[0]
        assert all(a.dtype == "float32" for a in actions)
        torch.testing.assert_close(torch.from_numpy(np.stack(actions)), reference, rtol=1e-6, atol=1e-6)
        for row in obs:
            with torch.no_grad():
                mean = agent.actor(row.unsqueeze(0), deterministic=True, with_logprob=False)[0][0]
            torch.testing.assert_close(torch.from_numpy(agent.act(row.numpy(), deterministic=True)), mean, rtol=1e-6, atol=1e-6)
        # Actor.act_numpy alone draws as forward does.
        torch.manual_seed(7)
        action = agent.actor.act_numpy(obs[0].numpy())
        torch.manual_seed(7)
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(action), agent.actor(obs[:1], with_logprob=False)[0][0], rtol=1e-6, atol=1e-6)

    check()
    before = agent.act(obs[0].numpy(), deterministic=True)
    for _ in range(3):
        agent.update(batch)
    assert not (agent.act(obs[0].numpy(), deterministic=True) == before).all()
    check()
    agent.load_state_dict(make_agent(seed=1).state_dict())
    check()


@pytest.mark.slow
@pytest.mark.parametrize("policy_delay", [1, 2])
def test_compiled_update_on_cpu_equals_the_eager_update(policy_delay):
    """--compile on a CPU (torch.compile of the default update): the first update of each kind is eager (it
    creates the optimizer state), the next ones compiled; the same noise, the same parameters to float
    rounding. With a policy delay of 2, critic-only and full updates alternate: two compiled functions."""
    from torch._dynamo.utils import counters

    eager = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 1.0, policy_delay=policy_delay)
    compiled = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 1.0, compile=True, policy_delay=policy_delay)
    compiled.load_state_dict(copy.deepcopy(eager.state_dict()))
    counters.clear()
    for i in range(4):
        torch.manual_seed(100 + i)
        m1 = eager.update(fixed_batch(seed=i))
        rng_after_eager = torch.get_rng_state()
        torch.manual_seed(100 + i)
        m2 = compiled.update(fixed_batch(seed=i))
        assert torch.equal(torch.get_rng_state(), rng_after_eager), "the compiled update drew other noise"
        for k in m1:
            torch.testing.assert_close(m2[k], m1[k], rtol=1e-5, atol=1e-5, msg=f"update {i}: {k}")
    assert counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
    for p, q in zip([*eager.actor.parameters(), *eager.critic.parameters()],
                    [*compiled.actor.parameters(), *compiled.critic.parameters()], strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_update_runs_on_cuda():
    torch.manual_seed(0)
    agent = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 1.0, device="cuda")
    batch = Batch(*(t.cuda() for t in fixed_batch()))
    assert agent.update(batch)["critic_loss"].device.type == "cuda"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("policy_delay", [1, 2])
def test_cuda_graph_update_equals_the_eager_update(policy_delay):
    """--compile on CUDA: warm-up updates, a captured one, then replays; each equals the eager update on the
    same batches and noise (what exact resume relies on: a resumed run warms up again), and each step's
    metrics stay readable after later replays. With a policy delay of 2, one graph per kind of update. The fourth
    batch is smaller: a capture must follow a warm-up at its own batch size (the agent's constants for it)."""
    results = []
    for compile in (False, True):
        torch.manual_seed(0)
        agent = SAC(6, 2, [32, 32], 1e-3, 0.95, 0.005, 1.0, device="cuda", compile=compile, policy_delay=policy_delay)
        torch.manual_seed(1)
        history = [agent.update(Batch(*(t.cuda() for t in fixed_batch(n=32 if i == 3 else 64, seed=i)))) for i in range(12)]
        results.append((agent, history))
    (eager, eager_history), (graphed, graphed_history) = results
    assert graphed._graph is not None and len(graphed._graph.graphs) == min(policy_delay, 2), "no graph was captured"
    for step, (m1, m2) in enumerate(zip(eager_history, graphed_history, strict=True)):
        for k in m1:
            assert torch.equal(m1[k], m2[k]), f"update {step}: {k}"
    for p, q in zip([*eager.actor.parameters(), *eager.critic.parameters()],
                    [*graphed.actor.parameters(), *graphed.critic.parameters()], strict=True):
        assert torch.equal(p, q)


def test_act_noise_blocks_follow_the_generator_and_reset_discards_them():
    """The trainer resets the noise at each episode start: an episode's actions then depend on torch's
    generator state only (what a checkpoint holds), not on rows an earlier episode left."""
    agent = make_agent()
    obs = np.zeros(6, dtype=np.float32)
    torch.manual_seed(1)
    agent.reset_noise()
    first = [agent.act(obs) for _ in range(NOISE_BLOCK + 3)]  # a second block after NOISE_BLOCK actions
    assert len({a.tobytes() for a in first}) == len(first)
    torch.manual_seed(1)
    agent.reset_noise()
    assert all((agent.act(obs) == a).all() for a in first)
    torch.manual_seed(1)
    leftover = agent.act(obs)  # a row left from the block before: the generator is not drawn from...
    assert not (leftover == first[0]).all()
    agent.reset_noise()  # ...unless the rows are discarded
    assert (agent.act(obs) == first[0]).all()


def test_describe_says_where_the_networks_train_and_which_update_runs():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert make_agent().describe() == "cpu (2 threads): the plain update"
        compiled = SAC(6, 2, [8], 1e-3, 0.95, 0.005, 1.0, compile=True)  # compiles lazily: nothing built yet
        assert compiled.describe() == "cpu (2 threads): the update through torch.compile"
    finally:
        torch.set_num_threads(threads)
