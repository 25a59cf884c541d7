"""The Gymnasium binding against the Rust environment it wraps.

The expected values come from kis-sim itself: the ``reference`` example of this crate
(examples/reference.rs) runs ``SimEnv`` / ``VecEnv`` for the same scenario, seeds and actions and
prints what it saw; nothing here is a recorded number. Run by scripts/test.sh with the venv that
scripts/setup.d/70-gym.sh builds (the wheel installed in it):
``~/.cache/kis/gym-v1/venv/bin/python -m pytest agent/gym/tests``.
"""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import kis_gym
from kis_gym import KisEnv, KisVecEnv

ROOT = pathlib.Path(__file__).resolve().parents[3]
# (scenario, observation set): both named scenarios, both observation sets, and the default with
# domain randomisation (each episode's cluster and workload drawn from its seed).
CASES = [("default", None), ("kis-s-testbed", "paper"), ("default+randomize", None)]


def make_env(name: str, obs: str | None) -> KisEnv:
    if name == "default+randomize":
        return gym.make(kis_gym.ENV_ID, scenario={**kis_gym.scenario("default"), "randomize": {}},
                        obs=obs).unwrapped
    return gym.make(kis_gym.ENV_ID, scenario=name, obs=obs).unwrapped


def rust_reference(payload: dict) -> dict:
    """What kis-sim's own env does for ``payload`` (see examples/reference.rs)."""
    cmd = ["cargo", "run", "-q", "--locked", "-p", "kis-gym", "--example", "reference"]
    r = subprocess.run(
        cmd, cwd=ROOT, input=json.dumps(payload), capture_output=True, text=True, timeout=1800
    )
    assert r.returncode == 0, f"reference example failed:\n{r.stderr}"
    return json.loads(r.stdout)


def random_actions(n: int, seed: int, envs: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, 3) if envs is None else (n, envs, 3)
    return rng.integers(0, kis_gym.ACTION_DIMS, size=shape)


def assert_info_equal(py: dict, rust: dict) -> None:
    for k in ("t", "arrivals", "cohort", "slo_miss", "gpu_util", "cost"):
        assert py[k] == rust[k], k
    assert py["p95"] == rust["p95"]  # None when nothing completed, on both sides
    assert list(py["target"]) == rust["target"]
    assert list(py["replicas"]) == rust["replicas"]


@pytest.mark.parametrize(("name", "obs"), CASES)
def test_env_steps_resets_and_seeds_like_the_rust_env(name, obs):
    env = make_env(name, obs)
    actions = random_actions(25, seed=7)
    ref = rust_reference(
        {"scenario": env.config, "mode": "single", "seeds": [11], "actions": actions.tolist()}
    )
    events = iter(ref["events"])

    def expect_reset(obs_, info):
        r = next(events)["reset"]
        assert info["seed"] == r["seed"]
        np.testing.assert_array_equal(obs_, np.array(r["obs"], dtype=np.float32))
        np.testing.assert_array_equal(info["action_mask"], r["mask"])

    expect_reset(*env.reset(seed=11))
    resets, rewards = 0, set()
    for a in actions:
        o, reward, term, trunc, info = env.step(a)
        s = next(events)["step"]
        assert o.dtype == np.float32 and o.shape == env.observation_space.shape
        np.testing.assert_array_equal(o, np.array(s["obs"], dtype=np.float32))
        assert reward == s["reward"]
        assert (term, trunc) == (s["terminated"], s["truncated"])
        np.testing.assert_array_equal(info["action_mask"], s["mask"])
        assert_info_equal(info, s["info"])
        rewards.add(reward)
        if term or trunc:
            expect_reset(*env.reset())  # no seed: the previous one + 1, as the reference does
            resets += 1
    assert next(events, None) is None
    assert resets >= 2, "25 steps should cross at least two episode ends"
    assert len(rewards) > 3, "rewards should vary along the episodes"


def test_vec_env_steps_and_auto_resets_like_the_rust_vec_env():
    n, steps = 3, 25
    venv = KisVecEnv("default", n, threads=2)
    actions = random_actions(steps, seed=3, envs=n)
    obs, info = venv.reset(seed=5)
    np.testing.assert_array_equal(info["seed"], [5, 6, 7])
    ref = rust_reference(
        {
            "scenario": kis_gym.scenario("default"),
            "mode": "vec",
            "seeds": [5, 6, 7],
            "threads": 2,
            "actions": actions.tolist(),
        }
    )
    d = venv.single_observation_space.shape[0]
    np.testing.assert_array_equal(obs, np.array(ref["reset"]["obs"], np.float32).reshape(n, d))
    np.testing.assert_array_equal(info["action_mask"], np.array(ref["reset"]["mask"]).reshape(n, 13))
    seeds = np.array([5, 6, 7], dtype=np.uint64)
    ended = 0
    for a, r in zip(actions, ref["steps"]):
        obs, reward, term, trunc, info = venv.step(a)
        assert obs.shape == (n, d) and obs in venv.observation_space
        np.testing.assert_array_equal(obs, np.array(r["obs"], np.float32).reshape(n, d))
        np.testing.assert_array_equal(reward, np.array(r["reward"], np.float32))
        np.testing.assert_array_equal(term, r["terminated"])
        np.testing.assert_array_equal(trunc, r["truncated"])
        np.testing.assert_array_equal(info["action_mask"], np.array(r["mask"]).reshape(n, 13))
        np.testing.assert_array_equal(venv.action_masks(), info["action_mask"])
        done = term | trunc
        np.testing.assert_array_equal(info["_final_obs"], done)
        final = np.array(r["final_obs"], np.float32).reshape(n, d)
        np.testing.assert_array_equal(info["final_obs"][done], final[done])
        for i, ri in enumerate(r["infos"]):
            for k in ("t", "arrivals", "cohort", "slo_miss", "gpu_util", "cost"):
                assert info[k][i] == ri[k], k
            assert (math.isnan(info["p95"][i]) and ri["p95"] is None) or info["p95"][i] == ri["p95"]
            assert list(info["target"][i]) == ri["target"]
            assert list(info["replicas"][i]) == ri["replicas"]
        seeds[done] += np.uint64(n)
        np.testing.assert_array_equal(venv.episode_seeds, seeds)
        ended += int(done.sum())
    assert ended >= n, "every environment should have auto-reset at least once"
    venv.close()


@pytest.mark.parametrize(("name", "obs"), CASES)
def test_gymnasium_env_checker_passes(name, obs):
    # Made through the registry so the env has a spec and the checker's determinism checks run.
    env = make_env(name, obs)
    assert isinstance(env, KisEnv) and env.spec is not None
    with warnings.catch_warnings():
        # The checker reports soft problems as warnings: treat them as failures.
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_masks_match_what_the_action_does():
    """A delta the mask allows moves the target by exactly that delta; a masked one is clamped and
    reported as ``info["masked"]``, in a scenario where some deltas are masked from the start."""
    masked_seen = 0
    for name in ("kis-s-testbed", "default"):
        env = KisEnv(name)
        _, info0 = env.reset(seed=2)
        mask, target = info0["action_mask"], info0["target"]
        np.testing.assert_array_equal(env.action_masks(), mask)
        assert mask[2] and mask[7] and mask[10:].all(), "holding and placements are always allowed"
        for pool in (0, 1):
            for k in range(5):
                a = [2, 2, 1]
                a[pool] = k
                env.reset(seed=2)
                _, _, _, _, info = env.step(a)
                moved = int(info["target"][pool]) == int(target[pool]) + k - 2
                assert moved == bool(mask[pool * 5 + k]), (name, pool, k, mask, info["target"])
                assert info["masked"] == (not mask[pool * 5 + k])
                masked_seen += info["masked"]
                np.testing.assert_array_equal(env.action_masks(), info["action_mask"])
    assert masked_seen > 0, "the testbed (1 GPU, 3 GPU pods) must mask GPU scale-ups"


def test_scenario_as_dict_file_or_name(tmp_path):
    cfg = kis_gym.scenario("default")
    cfg["step_seconds"] = 60.0
    by_dict = KisEnv(cfg)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(cfg))
    by_file = KisEnv(str(path))
    by_pathlike = KisEnv(path)
    for e in (by_dict, by_file, by_pathlike):
        assert e.config["step_seconds"] == 60.0
        assert e.reset(seed=4)[0].tolist() == by_dict.reset(seed=4)[0].tolist()
        _, _, _, _, info = e.step([2, 2, 1])
        assert info["t"] == 60.0
    toml = tmp_path / "s.toml"
    toml.write_text(
        """step_seconds = 45.0
obs = "paper"

[sim.workload.shape]
pattern = "ramp"

[sim.pools.gpu]
replicas = 1
profile = { device = "gpu", batches = [{ size = 1, latency = { dist = "constant", value = 0.05 } }] }

[sim.pools.cpu]
replicas = 1
profile = { device = "cpu", batches = [{ size = 1, latency = { dist = "exponential", mean = 0.1 } }] }
"""
    )
    e = KisEnv(toml)
    assert e.obs_spec_id == "paper-v1" and e.observation_space.shape == (10,)
    assert e.config["sim"]["workload"]["shape"]["pattern"] == "ramp"
    e.reset(seed=1)
    _, _, _, _, info = e.step([2, 2, 1])
    assert info["t"] == 45.0


def test_bad_input_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="neither a named scenario"):
        KisEnv("no-such-scenario")
    with pytest.raises(ValueError, match="step_seconds"):
        KisEnv({**kis_gym.scenario("default"), "step_seconds": -1})
    with pytest.raises(ValueError, match="stepseconds"):
        KisEnv({**kis_gym.scenario("default"), "stepseconds": 30})
    bad = tmp_path / "bad.toml"
    bad.write_text("step_seconds = [")
    with pytest.raises(ValueError, match="bad.toml"):
        KisEnv(bad)
    with pytest.raises(ValueError, match="cannot read scenario"):
        KisEnv(str(tmp_path / "missing.json"))
    env = KisEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step([2, 2, 1])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside MultiDiscrete"):
        env.step([5, 2, 1])
    with pytest.raises(ValueError, match="3 integers"):
        env.step([2, 2])
    venv = KisVecEnv("default", 2, threads=1)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((3, 3), dtype=np.int64))


def test_make_vec_builds_the_rust_vec_env():
    v = gym.make_vec(kis_gym.ENV_ID, 4, vectorization_mode="vector_entry_point", threads=1)
    assert isinstance(v, KisVecEnv) and v.num_envs == 4
    obs, info = v.reset(seed=1)
    assert obs.shape == (4, 18) and obs in v.observation_space
    np.testing.assert_array_equal(info["seed"], [1, 2, 3, 4])
    np.testing.assert_array_equal(v.action_masks(), info["action_mask"])
    v.close()
    with pytest.raises(RuntimeError, match="closed"):
        v.step(np.full((4, 3), 2))


def test_an_ended_episode_must_be_reset():
    env = KisEnv("default")
    env.reset(seed=9)
    done, steps = False, 0
    while not done:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        done, steps = term or trunc, steps + 1
        assert steps < 1000
    with pytest.raises(RuntimeError, match="reset"):
        env.step([2, 2, 1])
    assert isinstance(env, gym.Env)


def test_returned_arrays_are_the_callers_and_row_flags_read_only():
    """What a step returns is fresh (kept observations and masks are never overwritten by a later
    step, changing them does not reach the env); the vector infos' ``_k`` row flags are one
    shared read-only all-true array."""
    env = KisEnv("default")
    obs0, info0 = env.reset(seed=1)
    kept_obs = obs0.copy()
    info0["action_mask"][:] = False  # the caller's array: the env's mask is unaffected
    assert env.action_masks().any()
    obs1, _, _, _, info1 = env.step(np.array([4, 4, 1]))
    info1["action_mask"][:] = False
    assert env.action_masks().any()
    np.testing.assert_array_equal(obs0, kept_obs)
    assert obs1 is not obs0 and info1["action_mask"] is not info0["action_mask"]

    venv = KisVecEnv("default", 3, threads=1)
    obs, info = venv.reset(seed=0)
    kept = obs.copy()
    obs2, reward, _, _, infos = venv.step(np.tile(np.array([4, 4, 1]), (3, 1)))
    np.testing.assert_array_equal(obs, kept)
    for k in ("t", "p95", "action_mask", "target", "cost"):
        flags = infos["_" + k]
        assert flags.all() and flags.shape == (3,) and not flags.flags.writeable, k
    with pytest.raises(ValueError):
        infos["_t"][0] = False
    assert not infos["_final_obs"].any(), "no episode ends in its first step"
    venv.close()
