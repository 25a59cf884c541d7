"""``KisVecEnv``: kis-sim's ``VecEnv`` (a persistent pool of worker threads, flat buffers) as a
``gymnasium.vector.VectorEnv``.

Auto-reset is same-step (``AutoresetMode.SAME_STEP``): an environment whose episode ended in a
step is reset inside that step; the returned observation is its new episode's first, and
``infos["final_obs"]`` (rows where ``infos["_final_obs"]``) holds the ended episode's last
observation, for bootstrapping a truncation. The step's raw values (``t``, ``p95`` (NaN when nothing
completed), ``arrivals``, ``cohort``, ``slo_miss``, ``gpu_util``, ``target``, ``replicas``, ``cost``)
are those of the step just taken, also for environments that were reset; ``action_mask`` is of the
current states. Each key ``k`` comes with ``_k`` (which rows hold it), as Gymnasium's vector infos do;
the ``_k`` of keys every row holds are one shared read-only all-true array (no copy per step).
Everything else a step returns is a fresh array, the caller's to keep or change.

Seeds: ``reset(seed=s)`` gives environment ``i`` seed ``s + i`` (a list gives one seed each); an
environment whose episode with seed ``x`` ends continues with ``x + num_envs`` (kis-sim's rule), and
``reset()`` without a seed continues every environment's seed + ``num_envs``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from kis_gym import _native
from kis_gym.env import _SEED_LIMIT, _config_json

class KisVecEnv(VectorEnv):
    """``num_envs`` environments of one scenario (a name, a path or a dict, as for ``KisEnv``),
    stepped by Rust worker threads (``threads``: at most that many; None: one per core, 1: the
    calling thread). ``action_masks()`` returns the ``[num_envs, 13]`` masks."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        scenario: Any = "default",
        num_envs: int = 1,
        *,
        obs: str | None = None,
        threads: int | None = None,
    ) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self._core = _native.VecEnvCore(_config_json(scenario, obs), self.num_envs, threads)
        dim = self._core.obs_dim
        self.single_observation_space = spaces.Box(0.0, 1.0, (dim,), np.float32)
        self.single_action_space = spaces.MultiDiscrete(np.array(_native.ACTION_DIMS, dtype=np.int64))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self._seeds: np.ndarray | None = None
        self._shape = (self.num_envs, 3)
        # The `_k` flags of every per-step info key: all rows, one read-only array shared by the
        # keys and the steps (no copy per step; it cannot be changed by mistake).
        self._all = np.ones(self.num_envs, dtype=np.bool_)
        self._all.setflags(write=False)

    @property
    def episode_seeds(self) -> np.ndarray | None:
        """The seed of each environment's current episode (None before the first reset)."""
        return None if self._seeds is None else self._seeds.copy()

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError(f"KisVecEnv.reset takes no options, got {sorted(options)}")
        n = self.num_envs
        if isinstance(seed, (list, tuple, np.ndarray)):
            seeds = np.asarray(seed, dtype=np.uint64)
            if seeds.shape != (n,):
                raise ValueError(f"{len(seeds)} seeds for {n} environments")
            super().reset(seed=int(seeds[0]))
        else:
            super().reset(seed=seed)
            if seed is not None:
                seeds = np.uint64(int(seed)) + np.arange(n, dtype=np.uint64)
            elif self._seeds is not None:
                seeds = self._seeds + np.uint64(n)
            else:
                base = int(self.np_random.integers(0, _SEED_LIMIT))
                seeds = np.uint64(base) + np.arange(n, dtype=np.uint64)
        obs, mask = self._live().reset(seeds)
        self._seeds = seeds.copy()
        info = {"action_mask": mask, "_action_mask": self._all,
                "seed": seeds.copy(), "_seed": self._all}
        return obs, info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._seeds is None:
            raise RuntimeError("KisVecEnv.step before reset()")
        a = actions
        # The common case (a policy's or the space's int64 array of the right shape) goes
        # straight to the native step; anything else is checked and converted first.
        if type(a) is not np.ndarray or a.dtype != np.int64 or a.shape != self._shape:
            a = np.asarray(actions)
            if not np.issubdtype(a.dtype, np.integer) or a.shape != self._shape:
                raise ValueError(
                    f"actions must be integers of shape ({self.num_envs}, 3), got {a.dtype} {a.shape}"
                )
            a = a.astype(np.int64)
        obs, reward, terminated, truncated, infos = self._live().step(a, self._all)
        done = infos["_final_obs"]
        if done.any():
            self._seeds[done] += np.uint64(self.num_envs)
        return obs, reward, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """The allowed-action flags of the current states, ``[num_envs, 13]``."""
        if self._seeds is None:
            raise RuntimeError("KisVecEnv.action_masks before reset()")
        return self._live().mask()

    def close_extras(self, **kwargs: Any) -> None:
        """Stops the Rust worker threads (they are joined when the core is dropped)."""
        self._core = None

    def _live(self) -> _native.VecEnvCore:
        if self._core is None:
            raise RuntimeError("KisVecEnv is closed")
        return self._core
