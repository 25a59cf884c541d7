//! Supervised child processes: each runs in its own process group with its output in a log file,
//! is stopped by PID (TERM, then KILL) on drop, and is registered with a [`Watchdog`] that kills
//! the group if the test binary dies first (a panic with `panic = abort`, SIGKILL, or a static
//! fixture that is never dropped).

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::Error;

/// The watchdog's script: it collects process-group ids from stdin, one a line, and kills them
/// all when stdin reaches EOF, which happens when the parent (the test binary) exits in any way.
/// `clear` forgets the list (the parent stopped them itself). Signals sent to the test's terminal
/// group are ignored so that Ctrl-C still ends with a clean-up.
const WATCHDOG_SH: &str = r#"trap '' INT TERM HUP
pgs=""
while IFS= read -r line; do
  case "$line" in
    clear) pgs="" ;;
    *) pgs="$pgs $line" ;;
  esac
done
for p in $pgs; do kill -s KILL -- "-$p" 2>/dev/null; done
if [ -n "$1" ]; then rm -rf -- "$1"; fi
"#;

/// A `sh` process that outlives nothing: it kills the registered process groups (and removes a
/// directory) as soon as the process that spawned it is gone.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
}

impl Watchdog {
    /// Starts the watchdog; `remove_dir` is deleted after the kill (None keeps everything).
    pub fn start(remove_dir: Option<&Path>) -> Result<Self, Error> {
        let dir = remove_dir
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SH)
            .arg("kis-e2e-watchdog")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Spawn("sh (watchdog)".into(), e))?;
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            stdin: Mutex::new(stdin),
        })
    }

    fn send(&self, line: &str) {
        let mut guard = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stdin) = guard.as_mut() {
            // A write error means the watchdog is gone; nothing better can be done then.
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
    }

    /// Registers a process group to kill if the test binary dies.
    pub fn watch(&self, pgid: u32) {
        self.send(&pgid.to_string());
    }

    /// Tells the watchdog the groups were stopped already, then lets it exit.
    pub fn disarm(&mut self) {
        self.send("clear");
        self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.child.wait();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing stdin makes it kill whatever is still registered.
        self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.child.wait();
    }
}

/// A long-running child process in its own process group, output appended to `log`.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Supervised {
    /// Spawns `cmd` in a new process group (stdin closed, stdout+stderr to `log`) and registers
    /// the group with `watchdog`.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        watchdog: &Watchdog,
    ) -> Result<Self, Error> {
        let out = File::create(log).map_err(|e| Error::Io(log.to_path_buf(), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::Io(log.to_path_buf(), e))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Spawn(name.to_string(), e))?;
        watchdog.watch(child.id());
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process id (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file holding its stdout and stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `max` bytes of the log, for error messages.
    pub fn log_tail(&self, max: usize) -> String {
        log_tail(&self.log, max)
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log_tail: self.log_tail(3000),
            }),
            Err(e) => Err(Error::Spawn(self.name.clone(), e)),
        }
    }

    /// Sends SIGTERM to the group, waits up to `grace`, then SIGKILLs it; always reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let Some(pgid) = Pid::from_raw(self.child.id() as i32) else {
            return;
        };
        let _ = kill_process_group(pgid, Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                // The leader is gone; make sure no helper it forked lingers in the group.
                let _ = kill_process_group(pgid, Signal::KILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = kill_process_group(pgid, Signal::KILL);
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// The last `max` bytes of a text file (lossy UTF-8), or a note that it could not be read.
pub fn log_tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A free TCP port on 127.0.0.1, found by binding port 0 and releasing it.
pub fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Io(PathBuf::from("127.0.0.1:0"), e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Io(PathBuf::from("127.0.0.1:0"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    }

    #[test]
    fn stop_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let wd = Watchdog::start(None).unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let mut cmd = Command::new("sh");
        // The grandchild ignores nothing special; it must die with the group, not be orphaned.
        cmd.arg("-c")
            .arg(format!("sleep 300 & echo $! > {}; wait", pidfile.display()));
        let mut p = Supervised::spawn("sleeper", cmd, &dir.path().join("log"), &wd).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            assert!(Instant::now() < deadline, "grandchild never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(grandchild));
        p.check_running().unwrap();
        p.stop(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) {
            assert!(
                Instant::now() < deadline,
                "grandchild {grandchild} survived stop()"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn watchdog_kills_groups_when_its_parent_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let doomed = dir.path().join("doomed");
        std::fs::create_dir(&doomed).unwrap();
        let wd = Watchdog::start(Some(&doomed)).unwrap();
        // Spawned outside Supervised so that nothing but the watchdog can stop it.
        let mut sleeper = Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        wd.watch(sleeper.id());
        // Dropping the watchdog closes its stdin exactly as the parent's death would.
        drop(wd);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = sleeper.try_wait().unwrap() {
                assert!(!status.success(), "sleep should have been killed");
                break;
            }
            assert!(Instant::now() < deadline, "watchdog did not kill the group");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!doomed.exists(), "watchdog did not remove the directory");
    }

    #[test]
    fn exited_process_reports_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let wd = Watchdog::start(None).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo bad flag --frobnicate >&2; exit 3");
        let mut p = Supervised::spawn("failing", cmd, &dir.path().join("log"), &wd).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            if let Err(e) = p.check_running() {
                break e;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        };
        let msg = err.to_string();
        assert!(msg.contains("failing"), "{msg}");
        assert!(msg.contains("--frobnicate"), "{msg}");
    }
}
