"""Gymnasium binding of the kis-sim autoscaling environment.

``KisEnv`` is a ``gymnasium.Env`` and ``KisVecEnv`` a ``gymnasium.vector.VectorEnv`` over the Rust
simulator (kis-sim's ``SimEnv`` / ``VecEnv``), with ``MultiDiscrete([5, 5, 3])`` actions and the
action mask in ``info["action_mask"]`` and ``action_masks()``. Also registered with Gymnasium as
``ENV_ID``: ``gymnasium.make(ENV_ID, scenario=...)``, ``gymnasium.make_vec(ENV_ID, num_envs,
vectorization_mode="vector_entry_point")``. See agent/gym/README.md.
"""

import gymnasium

from kis_gym._native import ACTION_DIMS, MASK_LEN
from kis_gym.env import KisEnv, masked, scenario, scenario_names
from kis_gym.vector import KisVecEnv

ENV_ID = "kis_gym/KisEnv-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="kis_gym.env:KisEnv",
        vector_entry_point="kis_gym.vector:KisVecEnv",
        nondeterministic=False,
    )

__all__ = [
    "ACTION_DIMS",
    "ENV_ID",
    "MASK_LEN",
    "KisEnv",
    "KisVecEnv",
    "masked",
    "scenario",
    "scenario_names",
]
