//! kis-adapter registered for real with the control plane: the manifests from `deploy/` applied
//! to the apiserver (namespace, RBAC, Services, Deployment, APIService with `caBundle` from the
//! run's PKI), with the APIService pointed at an `ExternalName` Service to `localhost` and the
//! adapter's port, and the adapter itself running as a process on loopback with the serving
//! certificate from the PKI and its ServiceAccount's token. It reads the front-proxy CA from the
//! `kube-system/extension-apiserver-authentication` ConfigMap, as in a cluster.
//!
//! Direct requests to the adapter (publish API, forged headers) go through `curl`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::cluster::ControlPlane;
use crate::kubectl::UserAuth;
use crate::pki::CertKey;
use crate::proc::{Supervised, free_port};
use crate::{Error, wait_until};

/// The adapter's namespace and Service name in deploy/ (the serving cert's SAN is
/// `kis-adapter.kis-system.svc`).
pub const NAMESPACE: &str = "kis-system";
/// The Service (and ServiceAccount) name in deploy/.
pub const SERVICE: &str = "kis-adapter";
/// The APIService name.
pub const APISERVICE: &str = "v1beta1.external.metrics.k8s.io";
/// The metrics path prefix as served through the aggregator.
pub const API_PREFIX: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// Finds the `kis-adapter` binary: `$KIS_ADAPTER_BIN`, else next to the running test binary in
/// the cargo target dir (`cargo test --workspace` builds it). A binary older than the adapter's
/// sources is refused, so a stale build is never tested by mistake.
pub fn locate_binary(workspace: &Path) -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("KIS_ADAPTER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| Error::Io(PathBuf::from("current_exe"), e))?;
    // target/debug/deps/e2e-HASH → target/debug/kis-adapter; target/debug/kis-e2e (the
    // `testbed up` command) → its sibling.
    let dir = exe
        .parent()
        .ok_or_else(|| Error::Missing(format!("no target dir above {}", exe.display())))?;
    let sibling = dir.join("kis-adapter");
    let candidate = if sibling.is_file() {
        sibling
    } else {
        dir.parent().unwrap_or(dir).join("kis-adapter")
    };
    let built = std::fs::metadata(&candidate)
        .and_then(|m| m.modified())
        .map_err(|_| {
            Error::Missing(format!(
                "{} not found: build it with `cargo build -p kis-adapter` (cargo test --workspace does)",
                candidate.display()
            ))
        })?;
    if let Some(newest) = newest_mtime(&workspace.join("adapter/src"))
        && newest > built
    {
        return Err(Error::Missing(format!(
            "{} is older than adapter/src: run `cargo build -p kis-adapter` (cargo test --workspace does)",
            candidate.display()
        )));
    }
    Ok(candidate)
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// Standard base64 (for `caBundle`).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An HTTP answer from curl.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status (0 if the connection failed).
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON (Null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A running, registered kis-adapter.
#[derive(Debug)]
pub struct Adapter {
    /// HTTPS port on 127.0.0.1.
    pub port: u16,
    /// The publish API's bearer token.
    pub token: String,
    /// The CA that signed the serving cert (what `caBundle` holds).
    pub serving_ca: PathBuf,
    /// Its plain-HTTP `/metrics` port on 127.0.0.1 (`--metrics-port`).
    pub metrics_port: u16,
    proc: std::sync::Mutex<Supervised>,
}

impl Adapter {
    /// Applies deploy/ to the control plane, starts the adapter and waits for its `/readyz`.
    /// `workspace` is the repository root (deploy/ and adapter/ live there).
    pub fn start(cp: &ControlPlane, workspace: &Path) -> Result<Self, Error> {
        let deploy = workspace.join("deploy");
        // deploy/ as a cluster would get it. policy/v1 (pdb.yaml) and autoscaling/v2 do not exist
        // in v1.20; the HPAs come from deploy/v1.20/ (applied by the tests that use them).
        for file in ["namespace.yaml", "rbac.yaml"] {
            cp.admin
                .run(&["apply", "-f", &deploy.join(file).display().to_string()])?;
        }
        cp.admin
            .apply(&deployment_for_v1_20(&deploy.join("deployment.yaml"))?)?;
        let adapter = Self::launch(
            cp,
            workspace,
            "kis-adapter",
            &["--authentication-config-resync=2s"],
        )?;
        apply_services(cp, &deploy.join("service.yaml"), adapter.port)?;
        apply_apiservice(cp, &deploy.join("apiservice.yaml"), adapter.port)?;
        Ok(adapter)
    }

    /// Starts one more kis-adapter process named `name` beside the registered one, with the same
    /// serving certificate and ServiceAccount identity and `extra_args` (e.g. another
    /// `--authentication-config-resync`, `--targets-configmap`), and waits for its `/readyz`.
    /// It is not behind the APIService: tests talk to it directly with [`Adapter::request`].
    /// deploy/ must already be applied (start the registered adapter first).
    pub fn start_extra(
        cp: &ControlPlane,
        workspace: &Path,
        name: &str,
        extra_args: &[&str],
    ) -> Result<Self, Error> {
        Self::launch(cp, workspace, &format!("kis-adapter-{name}"), extra_args)
    }

    /// Runs the adapter binary as `name` on a free port with the serving certificate, its
    /// ServiceAccount's token as kubeconfig (as a Pod would), a fresh publish token, a state
    /// file in its own directory and `extra_args`, then waits for `/readyz`.
    fn launch(
        cp: &ControlPlane,
        workspace: &Path,
        name: &str,
        extra_args: &[&str],
    ) -> Result<Self, Error> {
        let bin = locate_binary(workspace)?;
        let (port, metrics_port) = (free_port()?, free_port()?);
        let dir = cp.dir().join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.clone(), e))?;
        let sa_token = cp.service_account_token(NAMESPACE, SERVICE, Duration::from_secs(60))?;
        let kubeconfig = cp.write_kubeconfig(name, &UserAuth::Token(sa_token))?;
        let token = format!("kis-e2e-{:x}", rand_u64());
        let token_file = dir.join("publish-token");
        std::fs::write(&token_file, &token).map_err(|e| Error::Io(token_file.clone(), e))?;
        let serving = &cp.pki.adapter_serving;
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--tls-cert-file={}", serving.cert.display()))
            .arg(format!("--tls-private-key-file={}", serving.key.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--publish-token-file={}", token_file.display()))
            .arg(format!("--state-file={}", dir.join("state.json").display()))
            .arg(format!("--metrics-port={metrics_port}"))
            .args(extra_args)
            .env("RUST_LOG", "info");
        let proc = Supervised::spawn(
            name,
            cmd,
            &cp.dir().join(format!("{name}.log")),
            cp.watchdog(),
        )?;
        let adapter = Self {
            port,
            token,
            serving_ca: cp.pki.serving_ca.pair.cert.clone(),
            metrics_port,
            proc: std::sync::Mutex::new(proc),
        };
        adapter.wait_ready(name)?;
        Ok(adapter)
    }

    /// Waits (bounded, 60 s) until `/readyz` answers 200; a timeout quotes the adapter's log.
    fn wait_ready(&self, name: &str) -> Result<(), Error> {
        wait_until(&format!("{name} /readyz"), Duration::from_secs(60), || {
            self.check_running().map_err(|e| e.to_string())?;
            let r = self
                .request("GET", "/readyz", None, &[], None)
                .map_err(|e| e.to_string())?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.body))
            }
        })
        .map_err(|e| match e {
            Error::Timeout { what, last } => Error::Timeout {
                what,
                last: format!(
                    "{last}
--- {name} log ---
{}",
                    self.log_tail()
                ),
            },
            other => other,
        })
    }

    /// The adapter process's PID (tests stall it to check publishers' fault handling).
    pub fn pid(&self) -> u32 {
        self.proc.lock().unwrap_or_else(|p| p.into_inner()).pid()
    }

    /// Fails with the log's tail if the adapter process has exited.
    pub fn check_running(&self) -> Result<(), Error> {
        self.proc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check_running()
            .map_err(Error::from)
    }

    /// The end of the adapter's log.
    pub fn log_tail(&self) -> String {
        self.proc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log_tail(4000)
    }

    /// Sends one HTTPS request straight to the adapter with curl (trusting the serving CA),
    /// optionally presenting `client` and extra headers.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        client: Option<&CertKey>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply, Error> {
        let url = format!("https://127.0.0.1:{}{path}", self.port);
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "20",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ])
        .arg("--cacert")
        .arg(&self.serving_ca);
        if let Some(c) = client {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        for (k, v) in headers {
            cmd.arg("-H").arg(format!("{k}: {v}"));
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        cmd.arg(&url);
        let out = cmd.output().map_err(|e| Error::Spawn("curl".into(), e))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        let status = code.trim().parse().unwrap_or(0);
        if status == 0 {
            return Err(Error::Command {
                cmd: format!("curl {method} {url}"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(Reply {
            status,
            body: body.to_string(),
        })
    }

    /// Publishes `value` for (namespace, metric, labels) with a TTL through the publish API.
    pub fn publish(
        &self,
        namespace: &str,
        metric: &str,
        labels: &[(&str, &str)],
        value: f64,
        ttl_seconds: u32,
    ) -> Result<Reply, Error> {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
            .collect();
        let body = json!({"labels": labels, "value": value, "ttlSeconds": ttl_seconds}).to_string();
        self.publish_api(
            "PUT",
            &format!("/targets/v1/namespaces/{namespace}/{metric}"),
            &body,
        )
    }

    /// Withdraws the target (namespace, metric, labels).
    pub fn withdraw(
        &self,
        namespace: &str,
        metric: &str,
        labels: &[(&str, &str)],
    ) -> Result<Reply, Error> {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
            .collect();
        self.publish_api(
            "DELETE",
            &format!("/targets/v1/namespaces/{namespace}/{metric}"),
            &json!({ "labels": labels }).to_string(),
        )
    }

    fn publish_api(&self, method: &str, path: &str, body: &str) -> Result<Reply, Error> {
        let auth = format!("Bearer {}", self.token);
        let r = self.request(method, path, None, &[("Authorization", &auth)], Some(body))?;
        if r.status == 200 {
            Ok(r)
        } else {
            Err(Error::Command {
                cmd: format!("{method} {path}"),
                status: r.status.to_string(),
                stderr: r.body,
            })
        }
    }
}

/// deploy/deployment.yaml without its preStop `sleep` action, which is newer than v1.20 (the
/// v1.20 apiserver drops the unknown `sleep` and then refuses the empty preStop). Everything else
/// is applied as written.
fn deployment_for_v1_20(file: &Path) -> Result<String, Error> {
    const PRE_STOP: &str =
        "        lifecycle:\n          preStop:\n            sleep: {seconds: 5}\n";
    let text = std::fs::read_to_string(file).map_err(|e| Error::Io(file.to_path_buf(), e))?;
    if !text.contains(PRE_STOP) {
        return Err(Error::Config(format!(
            "{}: the preStop block this harness removes for v1.20 has changed",
            file.display()
        )));
    }
    Ok(text.replace(PRE_STOP, ""))
}

/// Applies deploy/service.yaml with the APIService's Service replaced by an `ExternalName`
/// Service to `localhost:PORT` (no kube-proxy, and Endpoints may not hold loopback addresses).
fn apply_services(cp: &ControlPlane, file: &Path, port: u16) -> Result<(), Error> {
    let mut objects = cp.admin.json_objects(&[
        "create",
        "--dry-run=client",
        "-f",
        &file.display().to_string(),
    ])?;
    let mut found = false;
    for obj in &mut objects {
        if obj["kind"] == "Service" && obj["metadata"]["name"] == SERVICE {
            obj["spec"] = json!({
                "type": "ExternalName",
                "externalName": "localhost",
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            });
            found = true;
        }
    }
    if !found {
        return Err(Error::Config(format!(
            "{} has no Service named {SERVICE}",
            file.display()
        )));
    }
    let doc = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    cp.admin.apply(&doc.to_string())?;
    Ok(())
}

/// Applies deploy/apiservice.yaml with `caBundle` from the PKI and the adapter's port.
fn apply_apiservice(cp: &ControlPlane, file: &Path, port: u16) -> Result<(), Error> {
    let mut obj = cp.admin.json(&[
        "create",
        "--dry-run=client",
        "-f",
        &file.display().to_string(),
    ])?;
    if obj["kind"] != "APIService" || obj["metadata"]["name"] != APISERVICE {
        return Err(Error::Config(format!(
            "{} is not the APIService {APISERVICE}",
            file.display()
        )));
    }
    let ca = cp.pki.serving_ca.cert_pem()?;
    obj["spec"]["service"]["port"] = json!(port);
    obj["spec"]["caBundle"] = json!(base64(ca.as_bytes()));
    obj["spec"]
        .as_object_mut()
        .map(|s| s.remove("insecureSkipTLSVerify"));
    cp.admin.apply(&obj.to_string())?;
    Ok(())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain:?}");
        }
    }
}
