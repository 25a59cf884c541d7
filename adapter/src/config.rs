//! The start-up validation stage: [`Config::from_cli`] turns parsed flags ([`Cli`]) into a
//! checked [`Config`], or one [`ConfigError`] naming the flag and the problem. Everything that can
//! be known before serving is checked here, so a careless flag fails the start, not the first
//! write or reload hours later (a state file in a missing directory, a zero resync period).
//! Files are read later by [`crate::server::start`] (and re-read by [`crate::reload`]); only what
//! the flags promise (a writable state directory) is probed here.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::Cli;

/// A flag whose value cannot work, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {msg}")]
pub struct ConfigError {
    /// The flag at fault (or the pair of flags).
    pub flag: &'static str,
    /// What is wrong with it.
    pub msg: String,
}

fn bad(flag: &'static str, msg: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        msg: msg.into(),
    }
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// `--tls-cert-file` and `--tls-private-key-file`, re-read every resync period.
    Files {
        /// Certificate chain (PEM).
        cert: PathBuf,
        /// Private key (PEM).
        key: PathBuf,
    },
    /// `--self-signed` for `hosts`, optionally written to `cert_dir`.
    SelfSigned {
        /// SANs (DNS names or IP addresses), none empty.
        hosts: Vec<String>,
        /// `--cert-dir`.
        cert_dir: Option<PathBuf>,
    },
}

/// Connection limits and timeouts of the HTTPS port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// TLS handshake, then the first request header, each within this.
    pub header_timeout: Duration,
    /// No request in flight for this long closes a keep-alive connection.
    pub idle_timeout: Duration,
    /// A request, body included, must be answered within this.
    pub request_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_client: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            request_timeout: Duration::from_secs(60),
            max_connections: 2048,
            max_per_client: 256,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Checked start-up configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Serving certificate source.
    pub serving: Serving,
    /// Connection limits.
    pub limits: ConnLimits,
    /// File re-read period (non-zero).
    pub resync: Duration,
    /// How long a ConfigMap watch may fail before /readyz fails.
    pub watch_failure_budget: Duration,
    /// Runtime worker threads (`None`: one per CPU).
    pub worker_threads: Option<NonZeroUsize>,
    /// The flags themselves, every one checked; the fields above are their typed form.
    pub flags: Cli,
}

/// Shortest accepted file re-read period: below it the reload task would spin on the disk.
pub const MIN_RESYNC: Duration = Duration::from_millis(100);

impl Config {
    /// Checks every flag; the first problem found is the error.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let serving = serving(&cli)?;
        if cli.authentication_config_resync < MIN_RESYNC {
            return Err(bad(
                "--authentication-config-resync",
                format!(
                    "{:?} is too short (at least {MIN_RESYNC:?}; files are re-read this often)",
                    cli.authentication_config_resync
                ),
            ));
        }
        let worker_threads = match cli.worker_threads {
            None => None,
            Some(n) => Some(
                NonZeroUsize::new(n)
                    .ok_or_else(|| bad("--worker-threads", "must be at least 1"))?,
            ),
        };
        let limits = limits(&cli)?;
        positive("--watch-failure-budget", cli.watch_failure_budget)?;
        if let Some(p) = &cli.state_file {
            check_state_file(p)?;
        }
        if cli
            .metrics_port
            .is_some_and(|p| p != 0 && p == cli.secure_port)
        {
            return Err(bad(
                "--metrics-port",
                format!("{} is also --secure-port", cli.secure_port),
            ));
        }
        if let Some(p) = cli
            .authorization_always_allow_paths
            .iter()
            .find(|p| !p.starts_with('/'))
        {
            return Err(bad(
                "--authorization-always-allow-paths",
                format!("{p:?} is not an absolute path"),
            ));
        }
        if cli.targets_configmap_key.trim().is_empty() {
            return Err(bad("--targets-configmap-key", "must not be empty"));
        }
        for (flag, v) in [
            (
                "--requestheader-username-headers",
                &cli.requestheader_username_headers,
            ),
            (
                "--requestheader-group-headers",
                &cli.requestheader_group_headers,
            ),
        ] {
            if v.iter().any(|h| h.trim().is_empty()) {
                return Err(bad(flag, "has an empty header name"));
            }
        }
        Ok(Self {
            serving,
            limits,
            resync: cli.authentication_config_resync,
            watch_failure_budget: cli.watch_failure_budget,
            worker_threads,
            flags: cli,
        })
    }
}

fn serving(cli: &Cli) -> Result<Serving, ConfigError> {
    match (
        &cli.tls_cert_file,
        &cli.tls_private_key_file,
        cli.self_signed,
    ) {
        (_, _, true) => {
            if let Some(h) = cli.self_signed_hosts.iter().find(|h| !valid_host(h)) {
                return Err(bad(
                    "--self-signed-hosts",
                    format!("{h:?} is neither a DNS name nor an IP address"),
                ));
            }
            Ok(Serving::SelfSigned {
                hosts: cli.self_signed_hosts.clone(),
                cert_dir: cli.cert_dir.clone(),
            })
        }
        (Some(c), Some(k), false) => {
            if cli.cert_dir.is_some() {
                return Err(bad("--cert-dir", "only applies with --self-signed"));
            }
            Ok(Serving::Files {
                cert: c.clone(),
                key: k.clone(),
            })
        }
        (Some(_), None, _) | (None, Some(_), _) => Err(bad(
            "--tls-cert-file/--tls-private-key-file",
            "must be given together",
        )),
        (None, None, false) => Err(bad(
            "--tls-cert-file",
            "no serving certificate: pass --tls-cert-file and --tls-private-key-file, or --self-signed",
        )),
    }
}

/// A SAN rcgen and TLS clients accept: an IP address, or a DNS name of `[A-Za-z0-9-.*]` labels.
fn valid_host(h: &str) -> bool {
    if h.parse::<IpAddr>().is_ok() {
        return true;
    }
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
        })
}

fn positive(flag: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(bad(flag, "must be greater than 0"));
    }
    Ok(())
}

fn limits(cli: &Cli) -> Result<ConnLimits, ConfigError> {
    positive("--request-header-timeout", cli.request_header_timeout)?;
    positive("--idle-timeout", cli.idle_timeout)?;
    positive("--request-timeout", cli.request_timeout)?;
    if cli.max_connections == 0 {
        return Err(bad("--max-connections", "must be at least 1"));
    }
    if cli.max_connections_per_client == 0 {
        return Err(bad("--max-connections-per-client", "must be at least 1"));
    }
    if cli.max_connections_per_client > cli.max_connections {
        return Err(bad(
            "--max-connections-per-client",
            format!(
                "{} is more than --max-connections {}",
                cli.max_connections_per_client, cli.max_connections
            ),
        ));
    }
    Ok(ConnLimits {
        header_timeout: cli.request_header_timeout,
        idle_timeout: cli.idle_timeout,
        request_timeout: cli.request_timeout,
        max_connections: cli.max_connections,
        max_per_client: cli.max_connections_per_client,
        shutdown_grace: cli.shutdown_grace,
    })
}

/// The state file is written as `PATH.tmp` then renamed: its directory must exist and take a
/// new file now, not at the first publish.
fn check_state_file(p: &Path) -> Result<(), ConfigError> {
    const FLAG: &str = "--state-file";
    if p.is_dir() {
        return Err(bad(FLAG, format!("{} is a directory", p.display())));
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad(
            FLAG,
            format!("directory {} does not exist", dir.display()),
        ));
    }
    let probe = p.with_extension("probe");
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| bad(FLAG, format!("cannot write in {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn check(args: &[&str]) -> Result<Config, ConfigError> {
        let mut a = vec!["kis-adapter"];
        a.extend(args);
        Config::from_cli(Cli::try_parse_from(a).unwrap())
    }

    #[test]
    fn good_flags_pass() {
        let c = check(&["--self-signed", "--worker-threads=2"]).unwrap();
        assert_eq!(c.worker_threads.map(|n| n.get()), Some(2));
        assert_eq!(c.limits, ConnLimits::default());
        assert!(matches!(c.serving, Serving::SelfSigned { .. }));
    }

    #[test]
    fn each_bad_flag_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/state.json");
        let missing = format!("--state-file={}", missing.display());
        let is_dir = format!("--state-file={}", dir.path().display());
        for (args, flag) in [
            (
                vec!["--self-signed", "--authentication-config-resync=0"],
                "--authentication-config-resync",
            ),
            (
                vec!["--self-signed", "--worker-threads=0"],
                "--worker-threads",
            ),
            (
                vec!["--self-signed", "--self-signed-hosts="],
                "--self-signed-hosts",
            ),
            (
                vec!["--self-signed", "--self-signed-hosts=a,,b"],
                "--self-signed-hosts",
            ),
            (vec!["--self-signed", missing.as_str()], "--state-file"),
            (vec!["--self-signed", is_dir.as_str()], "--state-file"),
            (
                vec!["--self-signed", "--request-header-timeout=0"],
                "--request-header-timeout",
            ),
            (vec!["--self-signed", "--idle-timeout=0s"], "--idle-timeout"),
            (
                vec!["--self-signed", "--request-timeout=0"],
                "--request-timeout",
            ),
            (
                vec!["--self-signed", "--max-connections=0"],
                "--max-connections",
            ),
            (
                vec![
                    "--self-signed",
                    "--max-connections=4",
                    "--max-connections-per-client=8",
                ],
                "--max-connections-per-client",
            ),
            (
                vec!["--self-signed", "--watch-failure-budget=0"],
                "--watch-failure-budget",
            ),
            (
                vec!["--self-signed", "--metrics-port=6443"],
                "--metrics-port",
            ),
            (
                vec![
                    "--self-signed",
                    "--authorization-always-allow-paths=healthz",
                ],
                "--authorization-always-allow-paths",
            ),
            (
                vec!["--tls-cert-file=a"],
                "--tls-cert-file/--tls-private-key-file",
            ),
            (vec![], "--tls-cert-file"),
            (
                vec![
                    "--tls-cert-file=a",
                    "--tls-private-key-file=b",
                    "--cert-dir=/tmp",
                ],
                "--cert-dir",
            ),
        ] {
            let e = check(&args).expect_err(&format!("{args:?} should be refused"));
            assert_eq!(e.flag, flag, "{args:?}: {e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn state_file_in_an_existing_directory_is_probed_and_left_clean() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        check(&["--self-signed", &format!("--state-file={}", p.display())]).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
