//! The live mode's settings, checked: pools, the scenario's capacity (the observation's
//! normalisation), the rule per pool, the policy, the timings. Every bad flag or file is one line
//! naming it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use kis_autoscale::obs::{Capacity, ObsSet};
use kis_autoscale::{Autoscaler, Pool};
use kis_sim::ScalerSpec;
use kis_sim::env::EnvConfig;

use super::apiserver::DeploymentRef;
use super::args::LiveArgs;
use super::safety::{Bounds, Mode};
use crate::eval::policy::{FilePolicy, Policy, builtin};

/// One configured pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// GPU or CPU.
    pub pool: Pool,
    /// Its Deployment.
    pub deployment: DeploymentRef,
    /// Prometheus label matchers of its series (without braces).
    pub selector: String,
    /// What may be published.
    pub bounds: Bounds,
}

/// Everything `live` runs with.
pub struct LiveConfig {
    /// The flags.
    pub args: LiveArgs,
    /// Pools by index (0 GPU, 1 CPU); None = not managed.
    pub pools: [Option<PoolConfig>; 2],
    /// The scenario's capacity.
    pub capacity: Capacity,
    /// The observation set the policy reads (the scenario's without a policy).
    pub obs: ObsSet,
    /// The policy's name and instance.
    pub policy: Option<Box<dyn Policy>>,
    /// A policy file's frozen normaliser (the training range).
    pub norm: Option<kis_policy::ObsNorm>,
    /// The rule's spec per pool.
    pub rule: [Option<kis_autoscale::AutoscalerSpec>; 2],
    /// Seconds.
    pub period: f64,
    /// Seconds.
    pub ttl: f64,
    /// Seconds.
    pub rate_window: f64,
    /// Seconds.
    pub timeout: f64,
    /// The mode.
    pub mode: Mode,
}

/// Reads a scenario: a name of [`EnvConfig::named`] or an EnvConfig file (JSON, TOML by extension).
pub fn load_scenario(s: &str) -> Result<EnvConfig> {
    let path = Path::new(s);
    let cfg = if !path.exists() && !s.contains('.') && !s.contains('/') {
        EnvConfig::named(s).map_err(|e| anyhow!("--scenario {s}: {e}"))?
    } else {
        crate::files::read_toml_or_json(path, "--scenario")?
    };
    cfg.validate().map_err(|e| anyhow!("--scenario {s}: {e}"))?;
    Ok(cfg)
}

fn pool_index(name: &str, flag: &str) -> Result<usize> {
    match name {
        "gpu" => Ok(0),
        "cpu" => Ok(1),
        _ => bail!("{flag}: pool {name:?} must be gpu or cpu"),
    }
}

fn parse_pool(s: &str) -> Result<(usize, DeploymentRef)> {
    let (pool, dep) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--pool {s}: expected gpu=NAMESPACE/DEPLOYMENT"))?;
    let i = pool_index(pool.trim(), &format!("--pool {s}"))?;
    let (ns, name) = dep
        .trim()
        .split_once('/')
        .filter(|(n, d)| !n.is_empty() && !d.is_empty() && !d.contains('/'))
        .ok_or_else(|| anyhow!("--pool {s}: expected gpu=NAMESPACE/DEPLOYMENT"))?;
    Ok((
        i,
        DeploymentRef {
            namespace: ns.into(),
            name: name.into(),
        },
    ))
}

impl LiveConfig {
    /// Checks the flags and loads the scenario and the policy (nothing is contacted yet).
    pub fn from_args(args: LiveArgs) -> Result<Self> {
        let scenario = load_scenario(&args.scenario)?;
        let capacity = scenario.capacity(&scenario.sim);
        let mut pools: [Option<PoolConfig>; 2] = [None, None];
        for s in &args.pools {
            let (i, deployment) = parse_pool(s)?;
            if pools[i].is_some() {
                bail!("--pool {s}: pool given twice");
            }
            let min = if args.scale_to_zero {
                [&scenario.sim.pools.gpu, &scenario.sim.pools.cpu][i].min_replicas
            } else {
                capacity.min_replicas[i]
            };
            pools[i] = Some(PoolConfig {
                pool: [Pool::Gpu, Pool::Cpu][i],
                selector: format!(
                    "namespace=\"{}\",app=\"{}\"",
                    deployment.namespace, deployment.name
                ),
                deployment,
                bounds: Bounds {
                    min,
                    max: capacity.upper(i),
                    scale_to_zero: args.scale_to_zero,
                },
            });
        }
        for s in &args.pool_selectors {
            let (pool, sel) = s
                .split_once('=')
                .ok_or_else(|| anyhow!("--pool-selector {s}: expected POOL=MATCHERS"))?;
            let i = pool_index(pool.trim(), &format!("--pool-selector {s}"))?;
            let p = pools[i].as_mut().ok_or_else(|| {
                anyhow!("--pool-selector {s}: no --pool {pool}=NAMESPACE/DEPLOYMENT given")
            })?;
            p.selector = sel
                .trim()
                .trim_start_matches('{')
                .trim_end_matches('}')
                .into();
        }
        let mut rule = [None, None];
        for (i, r) in rule.iter_mut().enumerate() {
            if pools[i].is_none() {
                continue;
            }
            let pc = [&scenario.sim.pools.gpu, &scenario.sim.pools.cpu][i];
            match crate::scenario::parse_autoscaler(&args.rule, pc, scenario.sim.slo)
                .with_context(|| format!("--rule {}", args.rule))?
            {
                Some(ScalerSpec::Rule(spec)) => {
                    // Built once here to report a bad spec as a flag error.
                    spec.build()
                        .map_err(|e| anyhow!("--rule {}: {e}", args.rule))?;
                    *r = Some(spec);
                }
                _ => bail!(
                    "--rule {}: the live mode needs a rule that reads live metrics (hpa-queue, hpa-p95, keda, knative, forecast, hpa-cpu, fixed:N or a JSON spec)",
                    args.rule
                ),
            }
        }
        let (policy, norm) = load_policy(args.policy.as_deref())?;
        let obs = policy.as_ref().map_or(scenario.obs, |p| p.obs_set());
        let period = args.period.unwrap_or(scenario.step_seconds);
        let ttl = args.ttl.unwrap_or(3.0 * period);
        if ttl < 2.0 * period {
            bail!(
                "--ttl {ttl} s must be at least two periods ({period} s each), or targets expire between publishes"
            );
        }
        if ttl.ceil() > 86400.0 {
            bail!("--ttl {ttl} s: the adapter accepts at most 86400 s");
        }
        let rate_window = args.rate_window.unwrap_or(4.0 * args.scrape_interval);
        if rate_window < 2.0 * args.scrape_interval {
            bail!("--rate-window {rate_window} s must cover at least two scrape intervals");
        }
        let timeout = args
            .request_timeout
            .unwrap_or((period / 3.0).clamp(1.0, 10.0));
        Ok(LiveConfig {
            mode: args.mode,
            pools,
            capacity,
            obs,
            policy,
            norm,
            rule,
            period,
            ttl,
            rate_window,
            timeout,
            args,
        })
    }

    /// Builds the rule of pool `i` afresh (a running autoscaler keeps its own history).
    pub fn build_rule(&self, i: usize) -> Option<Box<dyn Autoscaler>> {
        self.rule[i].as_ref().and_then(|s| s.build().ok())
    }
}

/// A loaded policy and, for a policy file, its frozen normaliser.
pub type LoadedPolicy = (Option<Box<dyn Policy>>, Option<kis_policy::ObsNorm>);

/// The policy of `--policy` (checked against this build's observation specs and action space)
/// and, for a policy file, its frozen normaliser.
pub fn load_policy(spec: Option<&str>) -> Result<LoadedPolicy> {
    let Some(spec) = spec else {
        return Ok((None, None));
    };
    let setup = builtin(spec).with_context(|| format!("--policy {spec}"))?;
    let norm = if spec.ends_with(".kpol") || Path::new(spec).is_file() {
        let p: Arc<kis_policy::Policy> = FilePolicy::load(Path::new(spec))?;
        Some(p.norm().clone())
    } else {
        None
    };
    Ok((Some((setup.make.0)()), norm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_parse_and_refuse_bad_input() {
        let (i, d) = parse_pool("cpu=kis-serving/triton-cpu").unwrap();
        assert_eq!(
            (i, d.namespace.as_str(), d.name.as_str()),
            (1, "kis-serving", "triton-cpu")
        );
        for bad in ["cpu", "tpu=a/b", "gpu=a", "gpu=/b", "gpu=a/b/c"] {
            let e = parse_pool(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    fn tiny_policy(name: &str, set: ObsSet, dims: &[usize]) -> kis_policy::Policy {
        let net = kis_policy::NetConfig::default();
        let dim = set.dim();
        let n = net.num_params(dim, dims.iter().sum());
        let header = kis_policy::Header {
            format: kis_policy::POLICY_FORMAT.into(),
            obs_spec: kis_policy::ObsSpec::new(name, 1, set.names()),
            action_dims: dims.to_vec(),
            net,
            provenance: kis_policy::Provenance {
                commit: String::new(),
                scenario: "unit".into(),
                seed: 0,
                steps: 0,
                wall_seconds: 0.0,
                command: "test".into(),
            },
        };
        kis_policy::Policy::new(header, kis_policy::ObsNorm::new(dim, 5.0), vec![0.0; n]).unwrap()
    }

    #[test]
    fn policies_of_another_spec_or_action_space_are_refused() {
        let dir = std::env::temp_dir().join(format!("kis-live-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let save = |name: &str, p: kis_policy::Policy| {
            let path = dir.join(name);
            p.save(&path).unwrap();
            path.display().to_string()
        };
        let ok = save(
            "ok.kpol",
            tiny_policy("default-v1", ObsSet::Default, &[5, 5, 3]),
        );
        let (p, norm) = load_policy(Some(&ok)).unwrap();
        assert_eq!(p.unwrap().obs_set(), ObsSet::Default);
        assert_eq!(norm.unwrap().dim(), ObsSet::Default.dim());
        for (file, p, want) in [
            (
                "v0.kpol",
                tiny_policy("default-v0", ObsSet::Default, &[5, 5, 3]),
                "observation spec",
            ),
            (
                "dims.kpol",
                tiny_policy("paper-v1", ObsSet::Paper, &[3, 3, 3]),
                "MultiDiscrete",
            ),
        ] {
            let path = save(file, p);
            let e = format!("{:#}", load_policy(Some(&path)).err().unwrap());
            assert!(e.contains(file) && e.contains(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // The shipped policy loads.
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/default.kpol");
        assert!(load_policy(Some(shipped)).unwrap().1.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scenarios_by_name_or_file() {
        assert!(load_scenario("default").is_ok());
        let e = load_scenario("nope").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = load_scenario("/no/such.json").unwrap_err();
        assert!(format!("{e:#}").contains("/no/such.json"));
    }
}
