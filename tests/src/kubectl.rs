//! A thin wrapper over Debian's `kubectl` (1.20.2, from the cache) bound to one kubeconfig: the
//! tests drive the control plane with the same client a person would use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::Error;

/// `kubectl --kubeconfig FILE`, with a per-request timeout so no call can hang a test.
#[derive(Debug, Clone)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

/// Per-request bound passed to every kubectl call.
const REQUEST_TIMEOUT: &str = "--request-timeout=30s";

impl Kubectl {
    /// A client for `kubeconfig` using the kubectl binary `bin`.
    pub fn new(bin: &Path, kubeconfig: &Path) -> Self {
        Self {
            bin: bin.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// The kubeconfig this client uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg(REQUEST_TIMEOUT)
            .args(args)
            // No cache directory shared between runs or users.
            .env("KUBECACHEDIR", self.kubeconfig.with_extension("cache"));
        cmd
    }

    /// Runs kubectl and returns its raw output, whatever the exit status.
    pub fn output(&self, args: &[&str]) -> Result<Output, Error> {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Spawn(format!("kubectl {}", args.join(" ")), e))
    }

    /// Runs kubectl and returns stdout; a non-zero exit is an error carrying stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, Error> {
        let out = self.output(args)?;
        check(&format!("kubectl {}", args.join(" ")), out)
    }

    /// Runs kubectl with `stdin` fed to it (e.g. `apply -f -`).
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Result<String, Error> {
        let name = format!("kubectl {}", args.join(" "));
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Spawn(name.clone(), e))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .map_err(|e| Error::Spawn(name.clone(), e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Spawn(name.clone(), e))?;
        check(&name, out)
    }

    /// `kubectl apply -f -` with the given manifest text (YAML or JSON, several documents).
    pub fn apply(&self, manifest: &str) -> Result<String, Error> {
        self.run_stdin(&["apply", "-f", "-"], manifest)
    }

    /// Runs kubectl with `-o json` appended and parses the output.
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value, Error> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.run(&all)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Parse(format!("kubectl {}", args.join(" ")), e.to_string()))
    }

    /// Runs kubectl with `-o json` appended and returns every object it printed, with `List`s
    /// flattened (kubectl prints one document per object for several inputs).
    pub fn json_objects(&self, args: &[&str]) -> Result<Vec<serde_json::Value>, Error> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.run(&all)?;
        let mut out = Vec::new();
        for doc in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
            let mut doc = doc
                .map_err(|e| Error::Parse(format!("kubectl {}", args.join(" ")), e.to_string()))?;
            if doc["kind"] == "List"
                && let Some(items) = doc["items"].as_array_mut()
            {
                out.append(items);
            } else {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// `kubectl get --raw PATH` parsed as JSON.
    pub fn raw_json(&self, path: &str) -> Result<serde_json::Value, Error> {
        let text = self.run(&["get", "--raw", path])?;
        serde_json::from_str(&text).map_err(|e| Error::Parse(format!("GET {path}"), e.to_string()))
    }
}

fn check(cmd: &str, out: Output) -> Result<String, Error> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            cmd: cmd.to_string(),
            status: out.status.to_string(),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        })
    }
}

/// Writes a kubeconfig for `server` trusting `ca`, authenticating with a client cert+key or a
/// bearer token.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &UserAuth,
) -> Result<(), Error> {
    let user_block = match user {
        UserAuth::Cert { cert, key } => format!(
            "    client-certificate: {}\n    client-key: {}\n",
            cert.display(),
            key.display()
        ),
        UserAuth::Token(token) => format!("    token: {token}\n"),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kis-e2e\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: user\n  user:\n{user_block}contexts:\n- name: kis-e2e\n  context:\n    cluster: kis-e2e\n    user: user\ncurrent-context: kis-e2e\n",
        ca = ca.display()
    );
    std::fs::write(path, text).map_err(|e| Error::Io(path.to_path_buf(), e))
}

/// How a kubeconfig user authenticates.
#[derive(Debug, Clone)]
pub enum UserAuth {
    /// A client certificate and key (files).
    Cert {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },
    /// A bearer token (a service account's).
    Token(String),
}
