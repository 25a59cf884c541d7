//! Readiness and liveness probes as a kubelet runs them: `httpGet` and `tcpSocket` against the
//! Pod IP, `exec` as a host process (there is no container to exec into; the command sees the
//! container's environment and `POD_IP`), with the spec's delay, period, timeout and thresholds.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

/// What a probe checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `GET path` on port; 200–399 passes.
    Http {
        /// Port on the Pod IP.
        port: u16,
        /// Request path.
        path: String,
    },
    /// A TCP connection to the port.
    Tcp(u16),
    /// A host command; exit 0 passes.
    Exec(Vec<String>),
}

/// A probe with its timing, and its running tally.
#[derive(Debug, Clone)]
pub struct Prober {
    check: Check,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
    next: Option<Instant>,
    successes: u32,
    failures: u32,
}

/// The outcome of a probe run that changed the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed `successThreshold` times in a row.
    Pass,
    /// Failed `failureThreshold` times in a row.
    Fail,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

impl Prober {
    /// Builds a prober from the spec; named ports are looked up in `ports`.
    pub fn new(probe: &Probe, ports: &[(String, u16)]) -> Result<Self, String> {
        let port = |p: &IntOrString| -> Result<u16, String> {
            match p {
                IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("bad port {n}")),
                IntOrString::String(name) => ports
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| *p)
                    .ok_or_else(|| format!("no container port named {name:?}")),
            }
        };
        let check = if let Some(h) = &probe.http_get {
            if h.scheme.as_deref().is_some_and(|s| s != "HTTP") {
                return Err("the process kubelet probes only plain HTTP".into());
            }
            Check::Http {
                port: port(&h.port)?,
                path: h.path.clone().unwrap_or_else(|| "/".into()),
            }
        } else if let Some(t) = &probe.tcp_socket {
            Check::Tcp(port(&t.port)?)
        } else if let Some(e) = &probe.exec {
            Check::Exec(e.command.clone().unwrap_or_default())
        } else {
            return Err("the probe has no handler the process kubelet supports".into());
        };
        Ok(Self {
            check,
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
            next: None,
            successes: 0,
            failures: 0,
        })
    }

    /// Starts over for a container started at `started`.
    pub fn reset(&mut self, started: Instant) {
        self.next = Some(started + self.initial_delay);
        self.successes = 0;
        self.failures = 0;
    }

    /// Runs the probe if it is due; returns a verdict when a threshold is reached.
    pub async fn tick(&mut self, ip: Ipv4Addr, env: &[(String, String)]) -> Option<Verdict> {
        let now = Instant::now();
        if self.next.is_none_or(|t| now < t) {
            return None;
        }
        self.next = Some(now + self.period);
        if run(&self.check, ip, self.timeout, env).await {
            self.failures = 0;
            self.successes += 1;
            (self.successes >= self.success_threshold).then_some(Verdict::Pass)
        } else {
            self.successes = 0;
            self.failures += 1;
            (self.failures >= self.failure_threshold).then_some(Verdict::Fail)
        }
    }
}

/// One probe run: true when it passes within `timeout`.
pub async fn run(check: &Check, ip: Ipv4Addr, timeout: Duration, env: &[(String, String)]) -> bool {
    match check {
        Check::Http { port, path } => {
            let (addr, path) = (SocketAddr::from((ip, *port)), path.clone());
            let status = tokio::task::spawn_blocking(move || http_status(addr, &path, timeout));
            matches!(status.await, Ok(Some(200..=399)))
        }
        Check::Tcp(port) => matches!(
            tokio::time::timeout(timeout, TcpStream::connect((ip, *port))).await,
            Ok(Ok(_))
        ),
        Check::Exec(cmd) => {
            let (cmd, env, ip) = (cmd.clone(), env.to_vec(), ip.to_string());
            tokio::task::spawn_blocking(move || exec(&cmd, &env, &ip, timeout))
                .await
                .unwrap_or(false)
        }
    }
}

/// `GET path` with `Connection: close` (blocking, each step bounded by `timeout`); the status
/// code, or None.
pub fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]).ok()? {
            0 => break,
            k => n += k,
        }
    }
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    let mut parts = line.split_whitespace();
    parts.next()?.starts_with("HTTP/1.").then_some(())?;
    parts.next()?.parse().ok()
}

/// Runs `cmd` on the host with the container's environment and `POD_IP`; true on exit 0 within
/// `timeout` (killed otherwise).
pub fn exec(cmd: &[String], env: &[(String, String)], ip: &str, timeout: Duration) -> bool {
    let Some((program, args)) = cmd.split_first() else {
        return false;
    };
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("POD_IP", ip)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn named_ports_and_defaults() {
        let ports = [("http".to_string(), 8000)];
        let p = Prober::new(
            &probe(json!({"httpGet": {"path": "/v2/health/ready", "port": "http"}})),
            &ports,
        )
        .unwrap();
        assert_eq!(
            p.check,
            Check::Http {
                port: 8000,
                path: "/v2/health/ready".into()
            }
        );
        assert_eq!(p.period, Duration::from_secs(10));
        assert_eq!(p.failure_threshold, 3);
        let e = Prober::new(&probe(json!({"tcpSocket": {"port": "grpc"}})), &ports).unwrap_err();
        assert!(e.contains("grpc"), "{e}");
    }

    #[tokio::test]
    async fn thresholds_decide_the_verdict() {
        // Port 1 on loopback refuses connections: every run fails.
        let mut p = Prober::new(
            &probe(json!({"tcpSocket": {"port": 1}, "periodSeconds": 1, "failureThreshold": 2})),
            &[],
        )
        .unwrap();
        assert_eq!(p.tick(Ipv4Addr::LOCALHOST, &[]).await, None, "not started");
        p.reset(Instant::now());
        assert_eq!(p.tick(Ipv4Addr::LOCALHOST, &[]).await, None);
        p.next = Some(Instant::now());
        assert_eq!(p.tick(Ipv4Addr::LOCALHOST, &[]).await, Some(Verdict::Fail));
    }

    #[test]
    fn exec_sees_pod_ip_and_times_out() {
        let env = [("X".to_string(), "y".to_string())];
        let sh = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        assert!(exec(
            &sh("[ \"$POD_IP\" = 127.9.9.9 ] && [ \"$X\" = y ]"),
            &env,
            "127.9.9.9",
            Duration::from_secs(5)
        ));
        assert!(!exec(
            &sh("exit 3"),
            &env,
            "127.9.9.9",
            Duration::from_secs(5)
        ));
        assert!(!exec(
            &sh("sleep 5"),
            &env,
            "127.9.9.9",
            Duration::from_millis(200)
        ));
    }
}
