//! How the process kubelet turns a Pod's container into a host process: only `tritonserver`
//! containers are run, as the cached real Triton (the launcher from `scripts/setup.d/20-triton.sh`)
//! bound to the Pod's own loopback address. Pure functions, so the rules are unit-tested.
//!
//! Rules (documented in tests/README.md):
//! - exactly one container, no init containers;
//! - `command[0]` is `tritonserver` (any directory), or `command` is empty and the image name
//!   contains `tritonserver`; the rest of `command` and then `args` are Triton's flags;
//! - the Pod names its model(s) with `--load-model=NAME`; the kubelet forces
//!   `--model-control-mode=explicit`, so only those load;
//! - `--model-repository`/`--model-store` (paths inside an image, which does not exist here) and
//!   the listen addresses are replaced: the node's repository is added and every listener binds
//!   the Pod IP; ports stay as the Pod says (Triton's defaults 8000/8001/8002);
//! - literal `env` values are passed on; `valueFrom` is not supported (ignored).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

/// Flags the kubelet owns: dropped from the Pod's arguments (with their values).
const OWNED_FLAGS: [&str; 6] = [
    "--http-address",
    "--grpc-address",
    "--metrics-address",
    "--model-repository",
    "--model-store",
    "--model-control-mode",
];

/// A container ready to be started.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Container name.
    pub name: String,
    /// Its image (reported back in the status; never pulled).
    pub image: String,
    /// The program to run (the Triton launcher).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
    /// Named container ports (name, port).
    pub ports: Vec<(String, u16)>,
}

/// Plans the Pod's container, or says (as the status message) why this kubelet cannot run it.
pub fn plan(
    pod: &Pod,
    ip: Ipv4Addr,
    launcher: &Path,
    repository: Option<&Path>,
) -> Result<Plan, String> {
    let spec = pod.spec.as_ref().ok_or("the Pod has no spec")?;
    if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err("the process kubelet does not run init containers".into());
    }
    let [c] = spec.containers.as_slice() else {
        return Err(format!(
            "the process kubelet runs Pods of exactly one container (this one has {})",
            spec.containers.len()
        ));
    };
    let image = c.image.clone().unwrap_or_default();
    let words = triton_words(c, &image)?;
    let mut args = strip_owned(&words);
    if !args.iter().any(|a| a.starts_with("--load-model")) {
        return Err(
            "the process kubelet needs --load-model=MODEL in the container's arguments (it runs Triton with explicit model control)"
                .into(),
        );
    }
    if let Some(repo) = repository {
        args.push(format!("--model-repository={}", repo.display()));
    }
    args.push("--model-control-mode=explicit".into());
    for flag in ["--http-address", "--grpc-address", "--metrics-address"] {
        args.push(format!("{flag}={ip}"));
    }
    let env = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.as_ref().map(|v| (e.name.clone(), v.clone())))
        .collect();
    let ports = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
        .collect();
    Ok(Plan {
        name: c.name.clone(),
        image,
        program: launcher.to_path_buf(),
        args,
        env,
        ports,
    })
}

/// `command` (after `tritonserver`) followed by `args`, or why the container is not Triton.
fn triton_words(c: &Container, image: &str) -> Result<Vec<String>, String> {
    let command = c.command.clone().unwrap_or_default();
    let rest = match command.split_first() {
        Some((first, rest)) if Path::new(first).file_name() == Some("tritonserver".as_ref()) => {
            rest.to_vec()
        }
        None if image.contains("tritonserver") => Vec::new(),
        _ => {
            return Err(format!(
                "the process kubelet runs only tritonserver containers (command {command:?}, image {image:?})"
            ));
        }
    };
    Ok(rest
        .into_iter()
        .chain(c.args.clone().unwrap_or_default())
        .collect())
}

/// The arguments without the flags in [`OWNED_FLAGS`] (`--flag=value` or `--flag value`).
fn strip_owned(words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for w in words {
        if skip_value {
            skip_value = false;
            continue;
        }
        let flag = w.split('=').next().unwrap_or_default();
        if OWNED_FLAGS.contains(&flag) {
            skip_value = !w.contains('=');
            continue;
        }
        out.push(w.clone());
    }
    out
}

/// The models a Pod's Triton loads (`--load-model=NAME` or `--load-model NAME` in its command
/// and arguments), in order.
pub fn loaded_models(pod: &Pod) -> Vec<String> {
    let Some(c) = pod.spec.as_ref().and_then(|s| s.containers.first()) else {
        return Vec::new();
    };
    let words: Vec<String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect();
    let mut out = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if let Some(m) = w.strip_prefix("--load-model=") {
            out.push(m.to_string());
        } else if w == "--load-model"
            && let Some(m) = it.next()
        {
            out.push(m.clone());
        }
    }
    out
}

/// The Triton HTTP port the arguments ask for (Triton's default 8000).
pub fn http_port(args: &[String]) -> u16 {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--http-port=") {
            return v.parse().unwrap_or(8000);
        }
        if a == "--http-port" {
            return it.next().and_then(|v| v.parse().ok()).unwrap_or(8000);
        }
    }
    8000
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(container: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [container]}
        }))
        .unwrap()
    }

    #[test]
    fn triton_container_binds_the_pod_ip_and_loads_only_its_model() {
        let p = pod(json!({
            "name": "triton", "image": "nvcr.io/nvidia/tritonserver:24.10-py3",
            "command": ["/opt/tritonserver/bin/tritonserver"],
            "args": ["--model-repository=/models", "--model-control-mode", "poll",
                     "--load-model=emulated", "--http-port=8000", "--http-address=0.0.0.0"],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"name": "http", "containerPort": 8000}, {"containerPort": 8001}]
        }));
        let ip = Ipv4Addr::new(127, 1, 2, 3);
        let plan = plan(&p, ip, Path::new("/l"), Some(Path::new("/repo"))).unwrap();
        assert_eq!(
            plan.args,
            [
                "--load-model=emulated",
                "--http-port=8000",
                "--model-repository=/repo",
                "--model-control-mode=explicit",
                "--http-address=127.1.2.3",
                "--grpc-address=127.1.2.3",
                "--metrics-address=127.1.2.3",
            ]
        );
        assert_eq!(plan.env, [("A".to_string(), "1".to_string())]);
        assert_eq!(plan.ports, [("http".to_string(), 8000)]);
        assert_eq!(http_port(&plan.args), 8000);
        assert_eq!(loaded_models(&p), ["emulated"]);
    }

    #[test]
    fn image_entrypoint_is_accepted_and_other_programs_refused() {
        let p = pod(json!({"name": "t", "image": "tritonserver:x", "args": ["--load-model=a"]}));
        assert!(plan(&p, Ipv4Addr::LOCALHOST, Path::new("/l"), None).is_ok());
        let p = pod(json!({"name": "t", "image": "nginx", "command": ["nginx"]}));
        let e = plan(&p, Ipv4Addr::LOCALHOST, Path::new("/l"), None).unwrap_err();
        assert!(e.contains("only tritonserver"), "{e}");
        let p = pod(json!({"name": "t", "image": "tritonserver", "args": ["--log-verbose=1"]}));
        let e = plan(&p, Ipv4Addr::LOCALHOST, Path::new("/l"), None).unwrap_err();
        assert!(e.contains("--load-model"), "{e}");
    }

    #[test]
    fn http_port_reads_both_flag_forms() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(http_port(&s(&["--http-port", "9000"])), 9000);
        assert_eq!(http_port(&s(&["--http-port=9100"])), 9100);
        assert_eq!(http_port(&s(&[])), 8000);
    }
}
