//! The Pod status the process kubelet writes (phase, conditions, Pod IP, container status), built
//! as JSON from what it knows about the process. Pure, so the rules are unit-tested.

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The container's state as the kubelet last saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: a reason (e.g. `CrashLoopBackOff`, `CreateContainerError`) and a message.
    Waiting(String, String),
    /// Running since (RFC 3339).
    Running(String),
    /// Exited and not to be restarted.
    Terminated(Termination),
}

/// One exit of the container's process.
#[derive(Debug, Clone, PartialEq)]
pub struct Termination {
    /// Exit code (128 + signal for a signal).
    pub exit_code: i32,
    /// `Completed` or `Error`.
    pub reason: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    pub finished_at: String,
}

/// Everything the status is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Pod IP.
    pub pod_ip: String,
    /// Node IP.
    pub host_ip: String,
    /// When the kubelet took the Pod (RFC 3339).
    pub start_time: String,
    /// Container name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// `kis-process://PID` of the running process, if any.
    pub container_id: Option<String>,
    /// The current state.
    pub state: State,
    /// The previous exit, if the container was restarted.
    pub last: Option<Termination>,
    /// Restarts so far.
    pub restart_count: u32,
    /// Readiness (probe passed, or running without a probe).
    pub ready: bool,
    /// The startup probe passed (or there is none).
    pub started: bool,
}

/// The `status` object for `pod` (conditions keep their transition time while unchanged).
pub fn pod_status(pod: &Pod, v: &View, now: &str) -> Value {
    let phase = match &v.state {
        State::Terminated(t) if t.exit_code == 0 => "Succeeded",
        State::Terminated(_) => "Failed",
        State::Running(_) => "Running",
        // A container that ran before and waits for its restart keeps the Pod Running.
        State::Waiting(..) if v.restart_count > 0 => "Running",
        State::Waiting(..) => "Pending",
    };
    let old = pod.status.as_ref().and_then(|s| s.conditions.clone());
    let cond = |type_: &str, ok: bool| {
        let status = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| now.to_string());
        json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since})
    };
    let state = match &v.state {
        State::Waiting(reason, message) => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        State::Running(since) => json!({"running": {"startedAt": since}}),
        State::Terminated(t) => json!({"terminated": termination(t)}),
    };
    let mut container = json!({
        "name": v.name,
        "image": v.image,
        "imageID": "",
        "ready": v.ready,
        "started": matches!(v.state, State::Running(_)) && v.started,
        "restartCount": v.restart_count,
        "state": state,
        "lastState": v.last.as_ref().map_or(json!({}), |t| json!({"terminated": termination(t)})),
    });
    if let Some(id) = &v.container_id {
        container["containerID"] = json!(id);
    }
    json!({
        "phase": phase,
        "conditions": [
            cond("Initialized", true),
            cond("Ready", v.ready),
            cond("ContainersReady", v.ready),
            cond("PodScheduled", true),
        ],
        "hostIP": v.host_ip,
        "podIP": v.pod_ip,
        "podIPs": [{"ip": v.pod_ip}],
        "startTime": v.start_time,
        "containerStatuses": [container],
    })
}

fn termination(t: &Termination) -> Value {
    json!({
        "exitCode": t.exit_code,
        "reason": t.reason,
        "startedAt": t.started_at,
        "finishedAt": t.finished_at,
    })
}

/// The exit code in an exit status as std prints it (`exit status: 3`, `signal: 9 (SIGKILL)`),
/// with 128 + N for a signal, as container runtimes report it.
pub fn exit_code(status: &str) -> i32 {
    let number = |s: &str| {
        s.split(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .and_then(|w| w.parse::<i32>().ok())
    };
    if let Some(rest) = status.strip_prefix("signal: ") {
        number(rest).map_or(137, |n| 128 + n)
    } else {
        status
            .strip_prefix("exit status: ")
            .and_then(number)
            .unwrap_or(1)
    }
}

/// `now` in RFC 3339 with seconds (metav1.Time) or microseconds (metav1.MicroTime).
pub fn rfc3339(t: SystemTime, micros: bool) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if micros {
        format!(
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:06}Z",
            d.subsec_micros()
        )
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// [`rfc3339`] of the current time, in seconds.
pub fn now() -> String {
    rfc3339(SystemTime::now(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn view(state: State, ready: bool, restarts: u32) -> View {
        View {
            pod_ip: "127.5.6.7".into(),
            host_ip: "127.0.0.1".into(),
            start_time: "2026-01-01T00:00:00Z".into(),
            name: "triton".into(),
            image: "tritonserver".into(),
            container_id: Some("kis-process://42".into()),
            state,
            last: None,
            restart_count: restarts,
            ready,
            started: true,
        }
    }

    #[test]
    fn phases_conditions_and_ip() {
        let pod = Pod::default();
        let running = State::Running("2026-01-01T00:00:01Z".into());
        let s = pod_status(&pod, &view(running, true, 0), "2026-01-01T00:00:02Z");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "127.5.6.7");
        assert_eq!(s["conditions"][1]["type"], "Ready");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["containerStatuses"][0]["containerID"], "kis-process://42");
        let wait = State::Waiting("CrashLoopBackOff".into(), "back-off".into());
        assert_eq!(
            pod_status(&pod, &view(wait.clone(), false, 1), "x")["phase"],
            "Running"
        );
        assert_eq!(
            pod_status(&pod, &view(wait, false, 0), "x")["phase"],
            "Pending"
        );
        let t = Termination {
            exit_code: 2,
            reason: "Error".into(),
            started_at: "a".into(),
            finished_at: "b".into(),
        };
        assert_eq!(
            pod_status(&pod, &view(State::Terminated(t), false, 0), "x")["phase"],
            "Failed"
        );
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let first = pod_status(
            &Pod::default(),
            &view(State::Running("2026-01-01T00:00:00Z".into()), false, 0),
            "2026-01-01T00:00:00Z",
        );
        let pod: Pod = serde_json::from_value(json!({"status": first})).unwrap();
        let again = pod_status(
            &pod,
            &view(State::Running("2026-01-01T00:00:00Z".into()), false, 0),
            "2026-01-01T00:09:00Z",
        );
        assert_eq!(again, first);
        let ready = pod_status(
            &pod,
            &view(State::Running("2026-01-01T00:00:00Z".into()), true, 0),
            "2026-01-01T00:09:00Z",
        );
        assert_eq!(
            ready["conditions"][1]["lastTransitionTime"],
            "2026-01-01T00:09:00Z"
        );
    }

    #[test]
    fn exit_codes_and_times() {
        assert_eq!(exit_code("exit status: 3"), 3);
        assert_eq!(exit_code("signal: 9 (SIGKILL)"), 137);
        assert_eq!(exit_code("signal: 15 (SIGTERM) (core dumped)"), 143);
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(rfc3339(t, false), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(t, true), "2023-11-14T22:13:20.123456Z");
        assert_eq!(rfc3339(UNIX_EPOCH, false), "1970-01-01T00:00:00Z");
    }
}
