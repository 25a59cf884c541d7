"""``KisEnv``: one kis-sim environment as a ``gymnasium.Env``, and how scenarios are given.

A scenario is a named one (``scenario_names()``), a path to a JSON or TOML file holding an
``EnvConfig`` (as kis-sim reads it: TOML for ``.toml``, JSON otherwise), or a dict of the same
fields. ``scenario(name)`` returns a named scenario as a dict to edit.

Seeds: ``reset(seed=s)`` starts the Rust env's episode ``s`` (the same observations and rewards as
kis-sim's ``SimEnv::reset(s)`` for the same actions). ``reset()`` without a seed continues with the
previous episode's seed + 1 (kis-sim's ``VecEnv`` rule for one environment); before any seeded
reset it draws the seed from ``np_random``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from kis_gym import _native

# Seeds drawn from np_random stay below 2**63 so they survive any signed 64-bit round trip.
_SEED_LIMIT = 2**63


def scenario_names() -> list[str]:
    """The named scenarios kis-sim knows."""
    return list(_native.scenario_names())


def _config_json(scenario: Any, obs: str | None = None) -> str:
    """The validated ``EnvConfig`` JSON of ``scenario``, with the observation set ``obs`` if given."""
    if isinstance(scenario, dict):
        text = _native.scenario_json("json", json.dumps(scenario))
    elif isinstance(scenario, os.PathLike):
        text = _native.scenario_json("path", os.fspath(scenario))
    elif isinstance(scenario, str):
        if scenario in _native.scenario_names():
            text = _native.scenario_json("name", scenario)
        elif os.path.isfile(scenario) or scenario.endswith((".json", ".toml")):
            text = _native.scenario_json("path", scenario)
        else:
            raise ValueError(
                f"scenario {scenario!r} is neither a named scenario "
                f"({', '.join(scenario_names())}) nor a file"
            )
    else:
        raise TypeError(
            f"scenario must be a name, a path or a dict, not {type(scenario).__name__}"
        )
    if obs is None:
        return text
    cfg = json.loads(text)
    cfg["obs"] = obs
    return _native.scenario_json("json", json.dumps(cfg))


def scenario(spec: Any = "default") -> dict:
    """The scenario ``spec`` (a name, a path or a dict) as a validated dict with every field."""
    return json.loads(_config_json(spec))


def _action_array(action: Any) -> list[int]:
    # The common case first (a sampled or policy action): a flat integer array of 3.
    if type(action) is np.ndarray and action.shape == (3,) and action.dtype.kind in "iu":
        return action.tolist()
    a = np.asarray(action).reshape(-1)
    if a.shape != (3,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"action must be 3 integers (MultiDiscrete([5, 5, 3])), got {action!r}"
        )
    return [int(x) for x in a]


def masked(mask: np.ndarray, action: list[int] | np.ndarray) -> bool:
    """Whether ``action`` (3 indices) is disallowed by the 13-long ``mask`` of the state it is taken
    in: its GPU or CPU delta would be clamped (placements are always allowed)."""
    g, c, p = (int(x) for x in action)
    return not (mask[g] and mask[5 + c] and mask[10 + p])


class KisEnv(gym.Env):
    """One simulated cluster: ``MultiDiscrete([5, 5, 3])`` actions (GPU target delta −2..2, CPU
    target delta −2..2, placement prefer-GPU / balanced / prefer-CPU), observations in [0, 1]
    (``obs_names``), a bounded reward, ``truncated`` when the workload ends.

    ``info`` after ``reset`` has ``action_mask``, ``seed`` and ``target`` (the agent's starting
    targets, GPU and CPU); after ``step`` the step's raw values
    (``t``, ``p95``, ``arrivals``, ``cohort``, ``slo_miss``, ``gpu_util``, ``target``,
    ``replicas``, ``cost``), ``action_mask`` of the new state and ``masked``: whether the action
    just taken was outside the previous mask (its delta was clamped). ``action_masks()`` returns
    the current mask, as sb3-contrib's MaskablePPO asks for it.
    """

    metadata = {"render_modes": []}

    def __init__(
        self, scenario: Any = "default", *, obs: str | None = None, render_mode: str | None = None
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"KisEnv has no render modes, got render_mode={render_mode!r}")
        text = _config_json(scenario, obs)
        self._env = _native.Env(text)
        self.config: dict = json.loads(text)
        self.obs_names: tuple[str, ...] = tuple(self._env.obs_names)
        self.obs_spec_id: str = self._env.obs_spec_id
        dim = self._env.obs_dim
        self.observation_space = spaces.Box(0.0, 1.0, (dim,), np.float32)
        self.action_space = spaces.MultiDiscrete(np.array(_native.ACTION_DIMS, dtype=np.int64))
        self.render_mode = None
        self._seed: int | None = None
        self._started = False
        self._done = True

    @property
    def episode_seed(self) -> int | None:
        """The seed of the current episode (None before the first reset)."""
        return self._seed

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            raise ValueError(f"KisEnv.reset takes no options, got {sorted(options)}")
        if seed is not None:
            s = int(seed)
        elif self._seed is not None:
            s = self._seed + 1
        else:
            s = int(self.np_random.integers(0, _SEED_LIMIT))
        obs, mask = self._env.reset(s)
        self._seed, self._started, self._done = s, True, False
        return obs, {"action_mask": mask, "seed": s, "target": self._env.target()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("KisEnv.step: the episode has ended (or never started); call reset()")
        # The native step builds the whole info (``action_mask``, a fresh array, and ``masked``
        # included), so nothing is added or copied here per step.
        obs, reward, terminated, truncated, info = self._env.step(_action_array(action))
        self._done = terminated or truncated
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """The 13 allowed-action flags of the current state (5 GPU deltas, 5 CPU deltas, 3
        placements), the layout MaskablePPO expects for ``MultiDiscrete([5, 5, 3])``."""
        if not self._started:
            raise RuntimeError("KisEnv.action_masks before reset()")
        return self._env.mask()
