//! deploy/agent/deployment.yaml starts `kis-agent live` with flags this binary accepts: the manifest
//! and the CLI are written in two places, so a renamed or newly required flag fails here, not in a
//! cluster's CrashLoopBackOff.

use clap::Parser;
use kis_agent::cli::{Cli, Command};

/// The agent container's `args:` list, read line by line (the manifest writes one `- arg` a line).
fn container_args(yaml: &str) -> Vec<String> {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "args:").skip(1);
    let mut args = Vec::new();
    for line in lines.by_ref() {
        match line.trim().strip_prefix("- ") {
            Some(arg) => args.push(arg.trim_matches('"').to_string()),
            None => break,
        }
    }
    args
}

#[test]
fn the_deployed_agent_flags_parse() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/agent/deployment.yaml"
    );
    let yaml = std::fs::read_to_string(path).unwrap();
    let args = container_args(&yaml);
    assert_eq!(args.first().map(String::as_str), Some("live"), "{args:?}");
    assert!(args.iter().any(|a| a == "--mode=shadow"), "{args:?}");
    let argv = std::iter::once("kis-agent".to_string()).chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Live(_),
        }) => {}
        Ok(other) => panic!("parsed as another command: {other:?}"),
        Err(e) => panic!("deploy/agent/deployment.yaml args {args:?}: {e}"),
    }
    // The same parse refuses a flag this binary does not have, so the check above can fail.
    let mut bad = vec!["kis-agent".to_string()];
    bad.extend(args.iter().cloned());
    bad.push("--no-such-flag".into());
    assert!(Cli::try_parse_from(bad).is_err());
}
