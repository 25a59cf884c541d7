//! The native half of the `kis_gym` Python package (`kis_gym._native`): kis-sim's [`SimEnv`] and
//! [`VecEnv`] with NumPy in and out. The Gymnasium classes (`kis_gym.KisEnv`, `kis_gym.KisVecEnv`)
//! are thin Python over these; see ../README.md.
//!
//! Both release the GIL while the simulator runs. Actions are checked against
//! `MultiDiscrete([5, 5, 3])` here (the Rust env clamps out-of-range indices silently; a binding
//! should say so instead).

#![warn(missing_docs, unreachable_pub)]

mod scenario;

use std::sync::Mutex;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use kis_autoscale::obs::{ACTION_DIMS, MASK_LEN};
use kis_sim::env::{Action, Env as _, EnvConfig, SCENARIOS, SimEnv, StepInfo};
use kis_sim::vec_env::VecEnv;

use crate::scenario::Source;

fn config(json: &str) -> PyResult<EnvConfig> {
    scenario::load(Source::Json, json).map_err(PyValueError::new_err)
}

/// The canonical JSON of a scenario given by `source` (`name`, `path` or `json`) and `spec`,
/// validated; raises ValueError naming the problem.
#[pyfunction]
fn scenario_json(source: &str, spec: &str) -> PyResult<String> {
    let src = Source::parse(source).map_err(PyValueError::new_err)?;
    let cfg = scenario::load(src, spec).map_err(PyValueError::new_err)?;
    serde_json::to_string(&cfg).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The named scenarios.
#[pyfunction]
fn scenario_names() -> Vec<&'static str> {
    SCENARIOS.to_vec()
}

fn check_action(a: [i64; 3]) -> PyResult<[usize; 3]> {
    let mut out = [0usize; 3];
    for (k, (&x, &n)) in a.iter().zip(ACTION_DIMS.iter()).enumerate() {
        if x < 0 || x >= n as i64 {
            return Err(PyValueError::new_err(format!(
                "action {a:?} outside MultiDiscrete({ACTION_DIMS:?}): index {k} must be in 0..{n}"
            )));
        }
        out[k] = x as usize;
    }
    Ok(out)
}

/// A step's raw values as a dict (`p95` is None when nothing completed).
fn info_dict<'py>(py: Python<'py>, i: &StepInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "t"), i.t)?;
    d.set_item(intern!(py, "p95"), i.p95)?;
    d.set_item(intern!(py, "arrivals"), i.arrivals)?;
    d.set_item(intern!(py, "cohort"), i.cohort)?;
    d.set_item(intern!(py, "slo_miss"), i.slo_miss)?;
    d.set_item(intern!(py, "gpu_util"), i.gpu_util)?;
    d.set_item(intern!(py, "target"), PyArray1::from_slice(py, &i.target))?;
    d.set_item(
        intern!(py, "replicas"),
        PyArray1::from_slice(py, &i.replicas),
    )?;
    d.set_item(intern!(py, "cost"), i.cost)?;
    Ok(d)
}

/// One environment (kis-sim's `SimEnv`).
#[pyclass(module = "kis_gym._native")]
struct Env {
    env: Mutex<SimEnv>,
    dim: usize,
}

impl Env {
    fn lock(&self) -> std::sync::MutexGuard<'_, SimEnv> {
        // A panic inside the simulator poisons the lock; its state is then unknown, but reading
        // the mask or resetting builds a fresh episode, so carry on with the inner value.
        self.env.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl Env {
    /// An environment with the settings in `config_json` (an `EnvConfig` as JSON).
    #[new]
    fn new(config_json: &str) -> PyResult<Self> {
        let env =
            SimEnv::new(config(config_json)?).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let dim = env.obs_dim();
        Ok(Env {
            env: Mutex::new(env),
            dim,
        })
    }

    /// Observation length.
    #[getter]
    fn obs_dim(&self) -> usize {
        self.dim
    }

    /// Feature names in order.
    #[getter]
    fn obs_names(&self) -> Vec<&'static str> {
        self.lock().obs_set().names().to_vec()
    }

    /// The observation spec a policy records, e.g. `default-v1`.
    #[getter]
    fn obs_spec_id(&self) -> String {
        self.lock().obs_set().spec_id()
    }

    /// Starts the episode with `seed`: (observation, action mask).
    fn reset<'py>(
        &self,
        py: Python<'py>,
        seed: u64,
    ) -> (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<bool>>) {
        let (obs, mask) = py.detach(|| {
            let mut e = self.lock();
            let obs = e.reset(seed);
            (obs, e.mask())
        });
        (PyArray1::from_vec(py, obs), PyArray1::from_slice(py, &mask))
    }

    /// Applies the categorical action (gpu, cpu, placement): (observation, reward, terminated,
    /// truncated, info). `info` holds the step's raw values, `action_mask` (of the new state, a
    /// fresh array) and `masked` (whether the action was outside the mask of the state it was
    /// taken in): the whole info in one call, so the Python side adds nothing per step.
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &self,
        py: Python<'py>,
        action: [i64; 3],
    ) -> PyResult<(
        Bound<'py, PyArray1<f32>>,
        f64,
        bool,
        bool,
        Bound<'py, PyDict>,
    )> {
        let idx = check_action(action)?;
        let a = Action::from_indices(idx);
        // The GIL is released around the simulation only; everything after is a few small
        // allocations that need it anyway.
        let step = py.detach(|| {
            let mut e = self.lock();
            if e.sim().is_none() {
                return Err("step before reset");
            }
            let before = e.mask();
            let (o1, o2) = (ACTION_DIMS[0], ACTION_DIMS[0] + ACTION_DIMS[1]);
            let masked = !(before[idx[0]] && before[o1 + idx[1]] && before[o2 + idx[2]]);
            Ok((e.step(a), masked))
        });
        let (s, masked) = step.map_err(PyRuntimeError::new_err)?;
        let info = info_dict(py, &s.info)?;
        info.set_item(
            intern!(py, "action_mask"),
            PyArray1::from_slice(py, &s.mask),
        )?;
        info.set_item(intern!(py, "masked"), masked)?;
        Ok((
            PyArray1::from_vec(py, s.obs),
            s.reward,
            s.terminated,
            s.truncated,
            info,
        ))
    }

    /// The action mask of the current state (13 booleans: 5 GPU deltas, 5 CPU deltas, 3 placements).
    fn mask<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        let m = self.lock().mask();
        PyArray1::from_slice(py, &m)
    }

    /// The agent's current targets (GPU, CPU).
    fn target<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        let t = self.lock().target();
        PyArray1::from_slice(py, &t)
    }
}

/// Many environments (kis-sim's `VecEnv`: worker threads, same-step auto-reset).
#[pyclass(module = "kis_gym._native")]
struct VecEnvCore {
    env: Mutex<VecEnv>,
    n: usize,
    dim: usize,
}

#[pymethods]
impl VecEnvCore {
    /// `n` environments with the settings in `config_json`, on at most `threads` worker threads
    /// (None: one per core; 1: the calling thread).
    #[new]
    #[pyo3(signature = (config_json, n, threads=None))]
    fn new(config_json: &str, n: usize, threads: Option<usize>) -> PyResult<Self> {
        if n == 0 {
            return Err(PyValueError::new_err("num_envs must be at least 1"));
        }
        let cfg = config(config_json)?;
        let v = match threads {
            Some(t) => VecEnv::with_threads(cfg, n, t),
            None => VecEnv::new(cfg, n),
        }
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let dim = v.obs_dim();
        Ok(VecEnvCore {
            env: Mutex::new(v),
            n,
            dim,
        })
    }

    /// Observation length per environment.
    #[getter]
    fn obs_dim(&self) -> usize {
        self.dim
    }

    /// Starts environment `i` with `seeds[i]`: (observations `[n, d]`, masks `[n, 13]`).
    fn reset<'py>(
        &self,
        py: Python<'py>,
        seeds: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let seeds = seeds.as_slice()?.to_vec();
        if seeds.len() != self.n {
            return Err(PyValueError::new_err(format!(
                "{} seeds for {} environments",
                seeds.len(),
                self.n
            )));
        }
        py.detach(|| self.lock().reset(&seeds));
        let v = self.lock();
        Ok((
            self.rows(py, v.obs(), self.dim)?,
            self.rows(py, v.mask(), MASK_LEN)?,
        ))
    }

    /// Steps every environment with `actions` (`[n, 3]` categorical indices), auto-resetting
    /// finished ones: (obs `[n, d]`, reward, terminated, truncated, infos). `infos` is the
    /// Gymnasium vector info, complete: the step's raw values (`t`, `p95` (NaN when nothing
    /// completed), `arrivals`, `cohort`, `slo_miss`, `gpu_util`, `target`, `replicas`, `cost`),
    /// `action_mask` (`[n, 13]`, of the current states) and `final_obs` (`[n, d]`), each with its
    /// `_k`: `all_rows` (an all-true `[n]` array the caller keeps, shared by those keys) for all
    /// but `_final_obs`, which is `terminated | truncated`.
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &self,
        py: Python<'py>,
        actions: PyReadonlyArray2<'py, i64>,
        all_rows: Bound<'py, PyAny>,
    ) -> PyResult<(
        Bound<'py, PyAny>,
        Bound<'py, PyArray1<f32>>,
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyDict>,
    )> {
        let a = actions.as_array();
        if a.shape() != [self.n, 3] {
            return Err(PyValueError::new_err(format!(
                "actions of shape {:?}, expected [{}, 3]",
                a.shape(),
                self.n
            )));
        }
        let mut idx = Vec::with_capacity(self.n);
        for row in a.rows() {
            idx.push(check_action([row[0], row[1], row[2]])?);
        }
        py.detach(|| self.lock().step(&idx));
        let v = self.lock();
        let d = PyDict::new(py);
        infos_into(py, v.infos(), &d)?;
        d.set_item(
            intern!(py, "action_mask"),
            self.rows(py, v.mask(), MASK_LEN)?,
        )?;
        for k in [
            intern!(py, "_t"),
            intern!(py, "_p95"),
            intern!(py, "_arrivals"),
            intern!(py, "_cohort"),
            intern!(py, "_slo_miss"),
            intern!(py, "_gpu_util"),
            intern!(py, "_target"),
            intern!(py, "_replicas"),
            intern!(py, "_cost"),
            intern!(py, "_action_mask"),
        ] {
            d.set_item(k, &all_rows)?;
        }
        let done: Vec<bool> = (0..self.n).map(|i| v.done(i)).collect();
        d.set_item(
            intern!(py, "final_obs"),
            self.rows(py, v.final_obs(), self.dim)?,
        )?;
        d.set_item(intern!(py, "_final_obs"), PyArray1::from_vec(py, done))?;
        Ok((
            self.rows(py, v.obs(), self.dim)?,
            PyArray1::from_slice(py, v.reward()),
            PyArray1::from_slice(py, v.terminated()),
            PyArray1::from_slice(py, v.truncated()),
            d,
        ))
    }

    /// The action masks of the current states, `[n, 13]`.
    fn mask<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.lock();
        self.rows(py, v.mask(), MASK_LEN)
    }
}

impl VecEnvCore {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecEnv> {
        // A worker panic poisons the lock and leaves the VecEnv failing every call (its own rule).
        self.env.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A flat buffer as a new `[n, width]` array.
    fn rows<'py, T: numpy::Element + Copy>(
        &self,
        py: Python<'py>,
        flat: &[T],
        width: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyArray1::from_slice(py, flat)
            .reshape([self.n, width])?
            .into_any())
    }
}

/// The step infos of every environment as arrays in `d`.
fn infos_into<'py>(py: Python<'py>, infos: &[StepInfo], d: &Bound<'py, PyDict>) -> PyResult<()> {
    let col = |f: &dyn Fn(&StepInfo) -> f64| -> Vec<f64> { infos.iter().map(f).collect() };
    d.set_item(intern!(py, "t"), PyArray1::from_vec(py, col(&|i| i.t)))?;
    d.set_item(
        intern!(py, "p95"),
        PyArray1::from_vec(py, col(&|i| i.p95.unwrap_or(f64::NAN))),
    )?;
    d.set_item(
        intern!(py, "slo_miss"),
        PyArray1::from_vec(py, col(&|i| i.slo_miss)),
    )?;
    d.set_item(
        intern!(py, "gpu_util"),
        PyArray1::from_vec(py, col(&|i| i.gpu_util)),
    )?;
    d.set_item(
        intern!(py, "cost"),
        PyArray1::from_vec(py, col(&|i| i.cost)),
    )?;
    let ints = |f: &dyn Fn(&StepInfo) -> u64| -> Vec<u64> { infos.iter().map(f).collect() };
    d.set_item(
        intern!(py, "arrivals"),
        PyArray1::from_vec(py, ints(&|i| i.arrivals)),
    )?;
    d.set_item(
        intern!(py, "cohort"),
        PyArray1::from_vec(py, ints(&|i| i.cohort)),
    )?;
    let n = infos.len();
    let pairs =
        |f: &dyn Fn(&StepInfo) -> [u32; 2]| -> Vec<u32> { infos.iter().flat_map(f).collect() };
    d.set_item(
        intern!(py, "target"),
        PyArray1::from_vec(py, pairs(&|i| i.target)).reshape([n, 2])?,
    )?;
    d.set_item(
        intern!(py, "replicas"),
        PyArray1::from_vec(py, pairs(&|i| i.replicas)).reshape([n, 2])?,
    )?;
    Ok(())
}

/// `kis_gym._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Env>()?;
    m.add_class::<VecEnvCore>()?;
    m.add_function(wrap_pyfunction!(scenario_json, m)?)?;
    m.add_function(wrap_pyfunction!(scenario_names, m)?)?;
    m.add("MASK_LEN", MASK_LEN)?;
    m.add("ACTION_DIMS", PyList::new(m.py(), ACTION_DIMS)?)?;
    Ok(())
}
