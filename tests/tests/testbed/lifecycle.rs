//! Pods through their life on the testbed: scheduling against the emulated GPU, scaling into real
//! Triton processes, restart after a crash, graceful removal.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kis_e2e::emulated::{CPU_MODEL, GPU_MODEL};
use kis_e2e::wait_until;

use crate::common::{
    READY_BOUND, alive, clean_up, container_pid, infer, is_ready, pods, scale, testbed, turn,
    workspace,
};

#[test]
fn scaling_to_three_makes_three_real_tritons_ready() {
    let _turn = turn();
    let tb = testbed();
    let ns = "tb-scale";
    tb.cp.admin.run(&["create", "namespace", ns]).unwrap();
    tb.apply_tritons(workspace(), ns, &[("triton-cpu", 1)])
        .unwrap();
    let t0 = Instant::now();
    scale(tb, ns, "triton-cpu", 3);
    let ready = wait_until("three Ready triton-cpu Pods", READY_BOUND, || {
        tb.check_running().map_err(|e| e.to_string())?;
        let p = pods(tb, ns, "triton-cpu");
        let ready: Vec<_> = p.iter().filter(|p| is_ready(p)).cloned().collect();
        if ready.len() == 3 {
            Ok(ready)
        } else {
            Err(format!("{} Pods, {} Ready", p.len(), ready.len()))
        }
    })
    .unwrap();
    eprintln!("3 Ready after {:.1} s", t0.elapsed().as_secs_f64());
    let ips: BTreeSet<String> = ready
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ips.len(), 3, "Pod IPs must differ: {ips:?}");
    for ip in &ips {
        assert!(ip.starts_with(&tb.pod_ip_prefix()), "{ip}");
        // A real Triton answers on each Pod IP, with the emulated model.
        assert_eq!(
            infer(ip, CPU_MODEL).unwrap(),
            serde_json::json!([1.0, 2.0, 3.0])
        );
    }
    for p in &ready {
        let pid = container_pid(p).expect("containerID names the process");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(String::from_utf8_lossy(&cmdline).contains("tritonserver"));
        assert_eq!(
            p["spec"]["nodeName"], "kis-node-1",
            "bound by the scheduler"
        );
    }
    clean_up(tb, ns, &["triton-cpu"]);
}

#[test]
fn one_gpu_runs_one_gpu_pod_and_the_others_stay_pending() {
    let _turn = turn();
    let tb = testbed();
    let ns = "tb-gpu";
    tb.cp.admin.run(&["create", "namespace", ns]).unwrap();
    tb.apply_tritons(workspace(), ns, &[("triton-gpu", 3)])
        .unwrap();
    let check = || -> Result<(), String> {
        tb.check_running().map_err(|e| e.to_string())?;
        let p = pods(tb, ns, "triton-gpu");
        let ready = p.iter().filter(|p| is_ready(p)).count();
        let pending: Vec<_> = p
            .iter()
            .filter(|p| p["status"]["phase"] == "Pending" && p["spec"]["nodeName"].is_null())
            .collect();
        let unschedulable = pending.iter().all(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "PodScheduled"
                        && c["reason"] == "Unschedulable"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("Insufficient nvidia.com/gpu"))
                })
        });
        if p.len() == 3 && ready == 1 && pending.len() == 2 && unschedulable {
            Ok(())
        } else {
            Err(format!(
                "{} Pods, {ready} Ready, {} Pending (all with the GPU reason: {unschedulable})",
                p.len(),
                pending.len()
            ))
        }
    };
    wait_until("1 GPU Pod Ready and 2 Unschedulable", READY_BOUND, check).unwrap();
    // And it stays that way: the scheduler retries, the GPU is still taken.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        check().unwrap();
    }
    let running = pods(tb, ns, "triton-gpu")
        .into_iter()
        .find(is_ready)
        .unwrap();
    let ip = running["status"]["podIP"].as_str().unwrap().to_string();
    assert_eq!(
        infer(&ip, GPU_MODEL).unwrap(),
        serde_json::json!([1.0, 2.0, 3.0])
    );
    clean_up(tb, ns, &["triton-gpu"]);
}

#[test]
fn a_killed_triton_is_restarted_and_a_deleted_pod_stops_its_process() {
    let _turn = turn();
    let tb = testbed();
    let ns = "tb-kill";
    tb.cp.admin.run(&["create", "namespace", ns]).unwrap();
    tb.apply_tritons(workspace(), ns, &[("triton-cpu", 1)])
        .unwrap();
    let first = wait_until("a Ready triton-cpu Pod", READY_BOUND, || {
        let p = pods(tb, ns, "triton-cpu");
        p.into_iter()
            .find(is_ready)
            .ok_or("not Ready yet".to_string())
    })
    .unwrap();
    let name = first["metadata"]["name"].as_str().unwrap().to_string();
    let pid = container_pid(&first).unwrap();
    assert!(alive(pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let again = wait_until(
        "the Pod to be Ready again with a new process",
        READY_BOUND,
        || {
            let p = tb
                .cp
                .admin
                .json(&["-n", ns, "get", "pod", &name])
                .map_err(|e| e.to_string())?;
            let c = &p["status"]["containerStatuses"][0];
            match container_pid(&p) {
                Some(new) if new != pid && is_ready(&p) && c["restartCount"] == 1 => Ok(p),
                _ => Err(format!("{c}")),
            }
        },
    )
    .unwrap();
    let last = &again["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
    let new_pid = container_pid(&again).unwrap();
    assert!(!alive(pid) && alive(new_pid));
    let ip = again["status"]["podIP"].as_str().unwrap().to_string();
    assert!(infer(&ip, CPU_MODEL).is_ok());

    // Graceful deletion: preStop (2 s), SIGTERM, the process exits, the Pod is removed.
    let t0 = Instant::now();
    tb.cp
        .admin
        .run(&["-n", ns, "delete", "pod", &name, "--wait=false"])
        .unwrap();
    wait_until("the deleted Pod to be removed", READY_BOUND, || {
        let out = tb
            .cp
            .admin
            .output(&["-n", ns, "get", "pod", &name])
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Err("still there".into())
        } else {
            Ok(())
        }
    })
    .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "the preStop hook takes 2 s"
    );
    assert!(!alive(new_pid), "the process outlived its Pod");
    clean_up(tb, ns, &["triton-cpu"]);
}
