//! `kis-e2e testbed up|status|down` as a person runs it: nothing is left after `down`.

use std::process::Command;

use kis_e2e::testbed::State;

use crate::common::{READY_BOUND, alive, container_pid, is_ready, kis_e2e, turn};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(kis_e2e()).args(args).output().unwrap()
}

#[test]
fn up_status_down_leaves_nothing_behind() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("tb");
    let d = d.to_str().unwrap();
    let out = run(&[
        "testbed",
        "up",
        "--dir",
        d,
        "--no-adapter",
        "--timeout",
        "240",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("kubeconfig") && stdout.contains("kis-node-1"),
        "{stdout}"
    );
    let state: State =
        serde_json::from_str(&std::fs::read_to_string(format!("{d}/state.json")).unwrap()).unwrap();
    assert!(state.processes.len() >= 5, "{:?}", state.processes);

    // A second `up` in the same directory is refused while the first runs.
    let again = run(&["testbed", "up", "--dir", d, "--no-adapter"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));

    let st = run(&["testbed", "status", "--dir", d]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success(), "{text}");
    assert!(
        text.contains("/readyz: ok") && text.contains("kis-node-1"),
        "{text}"
    );

    // One Triton, so that `down` has a Pod process to stop too.
    let kubectl = kis_e2e::cluster::KubeBinaries::locate().unwrap().kubectl;
    let k = kis_e2e::kubectl::Kubectl::new(&kubectl, &state.kubeconfig);
    // deploy/serving/ as the testbed applies it (the file the summary names).
    assert!(
        stdout.contains(state.manifests.to_str().unwrap()),
        "{stdout}"
    );
    k.run(&["apply", "-f", state.manifests.to_str().unwrap()])
        .unwrap();
    let pod = kis_e2e::wait_until("a Ready triton-cpu Pod", READY_BOUND, || {
        let l = k
            .json(&["-n", "kis-serving", "get", "pods", "-l", "app=triton-cpu"])
            .map_err(|e| e.to_string())?;
        l["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| is_ready(p))
            .cloned()
            .ok_or("not Ready yet".to_string())
    })
    .unwrap();
    let triton = container_pid(&pod).unwrap();
    assert!(alive(triton));

    let down = run(&["testbed", "down", "--dir", d]);
    assert!(
        down.status.success(),
        "{}{}",
        String::from_utf8_lossy(&down.stdout),
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!alive(state.pid), "the serve process is still there");
    for (name, pid) in &state.processes {
        assert!(!alive(*pid), "{name} (pid {pid}) survived down");
    }
    assert!(!alive(triton), "a Triton survived down");
    assert!(
        !std::path::Path::new(d).exists(),
        "the state directory is still there"
    );
    assert!(!state.run_dir.exists(), "the run directory is still there");
    let st = run(&["testbed", "status", "--dir", d]);
    assert_eq!(st.status.code(), Some(3), "status after down");
}
