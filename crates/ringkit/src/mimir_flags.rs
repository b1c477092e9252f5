//! Mimir's command-line spellings, so an operator can move a Mimir ingester's flag list
//! onto `ringkit node` unchanged.
//!
//! Before clap sees the arguments, [`rewrite`]:
//! - turns Go's single-dash long flags (`-memberlist.join=x`, `-target=ingester`) into
//!   `--` flags, but only for names the command knows (so `-h`, `-V` and negative numbers
//!   are left alone);
//! - gives Go's bool syntax its meaning: a bare `-flag` sets a `true|false` flag to `true`,
//!   and `-switch=true|false` works for on/off switches;
//! - maps Mimir's `-target` values (`ingester`, `distributor`, `all`, `write`, or a comma
//!   list of them) to ringkit's targets;
//! - makes `-ingester.ring.heartbeat-timeout` set both the lifecycler's and the ring
//!   client's timeout, as Mimir's one flag does.
//!
//! Mimir's other names (`-ingester.ring.instance-id`, ...) are clap aliases on the flags.

use std::ffi::OsString;

use anyhow::{Context as _, bail};
use clap::{ArgAction, Command};

/// Mimir flags that set more than one ringkit flag: (Mimir name, extra ringkit name).
const ALSO_SETS: &[(&str, &str)] = &[("ingester.ring.heartbeat-timeout", "ring.heartbeat-timeout")];

/// Rewrites `args` (program name first) from Mimir/Go spellings into the ones `cmd` parses.
pub(crate) fn rewrite(cmd: &Command, args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    if let Some(program) = it.next() {
        out.push(program);
    }
    let mut current = cmd;
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str().map(str::to_owned) else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(it);
            break;
        }
        if !text.starts_with('-') {
            if let Some(sub) = current.find_subcommand(&text) {
                current = sub;
            }
            out.push(arg);
            continue;
        }
        let body = text.strip_prefix("--").unwrap_or(&text[1..]);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let Some(flag) = find_long(current, name) else {
            out.push(arg);
            continue;
        };
        let takes_value = matches!(flag.get_action(), ArgAction::Set | ArgAction::Append);
        let is_bool = takes_value && is_bool_value(flag);
        let value = match value {
            Some(v) => Some(v),
            // Go: a bare bool flag means true, never takes the next word.
            None if is_bool => Some("true".to_owned()),
            None if takes_value => match it.next() {
                Some(v) => Some(
                    v.into_string()
                        .map_err(|v| anyhow::anyhow!("value of -{name} is not UTF-8: {v:?}"))?,
                ),
                None => None, // let clap report the missing value
            },
            None => None,
        };
        match flag.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => match value.as_deref() {
                None => out.push(format!("--{name}").into()),
                Some(v) => {
                    let on = parse_go_bool(v).with_context(|| format!("-{name}={v}"))?;
                    // A switch is off unless given: `=false` (for SetTrue) means leave it out.
                    if on == matches!(flag.get_action(), ArgAction::SetTrue) {
                        out.push(format!("--{name}").into());
                    }
                }
            },
            _ => match value {
                None => out.push(format!("--{name}").into()),
                Some(v) => {
                    let v = if flag.get_id() == "target" {
                        mimir_target(&v)?.to_owned()
                    } else if is_bool {
                        parse_go_bool(&v)
                            .with_context(|| format!("-{name}={v}"))?
                            .to_string()
                    } else {
                        v
                    };
                    for (mimir, extra) in ALSO_SETS {
                        if *mimir == name && find_long(current, extra).is_some() {
                            out.push(format!("--{extra}={v}").into());
                        }
                    }
                    out.push(format!("--{name}={v}").into());
                }
            },
        }
    }
    Ok(out)
}

/// The (sub)command `words` name under `cmd` (`["node"]`, `["ring", "show"]`); words that
/// are not subcommands are skipped.
pub(crate) fn subcommand<'a>(cmd: &'a Command, words: &[String]) -> &'a Command {
    words
        .iter()
        .fold(cmd, |c, w| c.find_subcommand(w).unwrap_or(c))
}

/// The argument of `cmd` whose long name or alias is `name`.
pub(crate) fn find_long<'a>(cmd: &'a Command, name: &str) -> Option<&'a clap::Arg> {
    if name.is_empty() {
        return None;
    }
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name)
            || a.get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&name))
    })
}

/// Whether the flag's values are exactly `true` and `false` (clap's bool parser).
fn is_bool_value(arg: &clap::Arg) -> bool {
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|v| v.get_name().to_owned())
        .collect();
    values.len() == 2 && values.iter().any(|v| v == "true") && values.iter().any(|v| v == "false")
}

/// Go's `strconv.ParseBool` spellings.
fn parse_go_bool(v: &str) -> anyhow::Result<bool> {
    Ok(match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
        other => bail!("{other:?} is not a bool (true or false)"),
    })
}

/// ringkit's target for Mimir's `-target` value: one module name or a comma list.
pub(crate) fn mimir_target(value: &str) -> anyhow::Result<&'static str> {
    let (mut ingester, mut distributor) = (false, false);
    for module in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match module {
            "ingester" => ingester = true,
            "distributor" => distributor = true,
            // Mimir's `write` path is the distributor and ingester together.
            "all" | "write" => (ingester, distributor) = (true, true),
            other => bail!(
                "-target={value}: ringkit runs the ingester and distributor modules only, \
                 not {other:?} (use ingester, distributor, all or write)"
            ),
        }
    }
    Ok(match (ingester, distributor) {
        (true, false) => "ingester",
        (false, true) => "distributor",
        (true, true) => "all",
        (false, false) => bail!("-target is empty"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn run(args: &[&str]) -> anyhow::Result<Vec<String>> {
        let args = args.iter().map(OsString::from).collect();
        Ok(rewrite(&crate::Cli::command(), args)?
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect())
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let got = run(&[
            "ringkit",
            "node",
            "-target=ingester",
            "-memberlist.join=dns+gossip-ring:7946",
            "-memberlist.cluster-label",
            "mimir",
            "--ingester.ring.num-tokens=512",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "ringkit",
                "node",
                "--target=ingester",
                "--memberlist.join=dns+gossip-ring:7946",
                "--memberlist.cluster-label=mimir",
                "--ingester.ring.num-tokens=512",
            ]
        );
    }

    #[test]
    fn short_flags_unknown_names_and_negative_numbers_stay_as_written() {
        let got = run(&[
            "ringkit",
            "node",
            "-h",
            "-5",
            "-x.unknown=1",
            "-",
            "--",
            "-target=x",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "ringkit",
                "node",
                "-h",
                "-5",
                "-x.unknown=1",
                "-",
                "--",
                "-target=x"
            ]
        );
    }

    #[test]
    fn go_bool_forms() {
        let got = run(&[
            "ringkit",
            "node",
            "-ingester.ring.zone-awareness-enabled",
            "-memberlist.cluster-label-verification-disabled=true",
            "-multi.mirror-enabled=false",
            "-memberlist.compression-enabled=0",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "ringkit",
                "node",
                "--ingester.ring.zone-awareness-enabled=true",
                "--memberlist.cluster-label-verification-disabled",
                "--memberlist.compression-enabled=false",
            ]
        );
        assert!(run(&["ringkit", "node", "-multi.mirror-enabled=maybe"]).is_err());
    }

    #[test]
    fn heartbeat_timeout_sets_lifecycler_and_ring_client() {
        let got = run(&["ringkit", "node", "-ingester.ring.heartbeat-timeout=10m"]).unwrap();
        assert_eq!(
            got,
            [
                "ringkit",
                "node",
                "--ring.heartbeat-timeout=10m",
                "--ingester.ring.heartbeat-timeout=10m"
            ]
        );
    }

    #[test]
    fn mimir_targets_map_to_ringkit_targets() {
        assert_eq!(mimir_target("ingester").unwrap(), "ingester");
        assert_eq!(mimir_target("distributor").unwrap(), "distributor");
        assert_eq!(mimir_target("ingester,distributor").unwrap(), "all");
        assert_eq!(mimir_target("write").unwrap(), "all");
        assert_eq!(mimir_target("all").unwrap(), "all");
        let err = mimir_target("ingester,querier").unwrap_err().to_string();
        assert!(err.contains("querier"), "{err}");
        assert!(mimir_target("").is_err());
        let got = run(&["ringkit", "node", "-target", "distributor,ingester"]).unwrap();
        assert_eq!(got, ["ringkit", "node", "--target=all"]);
    }

    #[test]
    fn the_mimir_ingester_flag_set_parses_with_mimirs_meaning() {
        use clap::FromArgMatches as _;
        let args = run(&[
            "ringkit",
            "node",
            "-target=ingester",
            "-ingester.ring.instance-id=ingester-zone-a-1",
            "-ingester.ring.instance-availability-zone=zone-a",
            "-ingester.ring.store=memberlist",
            "-ingester.ring.num-tokens=512",
            "-ingester.ring.heartbeat-period=2m",
            "-ingester.ring.heartbeat-timeout=10m",
            "-ingester.ring.replication-factor=3",
            "-ingester.ring.zone-awareness-enabled=true",
            "-ingester.ring.tokens-file-path=/data/tokens",
            "-memberlist.join=dns+gossip-ring.mimir.svc.cluster.local:7946",
            "-memberlist.cluster-label=mimir",
        ])
        .unwrap();
        let matches = crate::Cli::command().try_get_matches_from(args).unwrap();
        let cli = crate::Cli::from_arg_matches(&matches).unwrap();
        let crate::Command::Node(node) = cli.command else {
            panic!("not a node command")
        };
        assert_eq!(node.target, "ingester");
        assert_eq!(node.id.as_deref(), Some("ingester-zone-a-1"));
        assert_eq!(node.zone, "zone-a");
        assert_eq!(node.kv.store, "memberlist");
        assert_eq!(node.num_tokens, 512);
        assert_eq!(node.heartbeat_period, std::time::Duration::from_secs(120));
        assert_eq!(
            node.lifecycler_heartbeat_timeout,
            std::time::Duration::from_secs(600)
        );
        assert_eq!(
            node.ring_heartbeat_timeout,
            std::time::Duration::from_secs(600)
        );
        assert_eq!(node.replication_factor, 3);
        assert!(node.zone_awareness_enabled);
        assert_eq!(
            node.tokens_file_path.as_deref(),
            Some(std::path::Path::new("/data/tokens"))
        );
        assert_eq!(
            node.kv.memberlist.join,
            ["dns+gossip-ring.mimir.svc.cluster.local:7946"]
        );
        assert_eq!(node.kv.memberlist.cluster_label, "mimir");
    }

    /// Every container in deploy/kubernetes runs a command line this parser accepts, with
    /// the zone its labels name.
    #[test]
    fn the_kubernetes_manifests_args_parse() {
        use clap::FromArgMatches as _;
        use yaml_rust2::YamlLoader;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
        let mut containers = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in YamlLoader::load_from_str(&text).unwrap() {
                let pod = &doc["spec"]["template"];
                let zone = pod["metadata"]["labels"]["zone"].as_str().unwrap_or("");
                for c in pod["spec"]["containers"].as_vec().into_iter().flatten() {
                    containers += 1;
                    let mut argv: Vec<OsString> = std::iter::once("ringkit".into())
                        .chain(
                            c["command"]
                                .as_vec()
                                .unwrap()
                                .iter()
                                .skip(1)
                                .map(|a| a.as_str().unwrap().into()),
                        )
                        .collect();
                    argv.extend(c["args"].as_vec().unwrap().iter().map(|a| {
                        a.as_str()
                            .unwrap()
                            .replace("$(POD_IP)", "10.1.2.3")
                            .replace("$(POD_NAME)", "ingester-zone-a-0")
                            .into()
                    }));
                    let args = rewrite(&crate::Cli::command(), argv).unwrap();
                    let matches = crate::Cli::command()
                        .try_get_matches_from(args)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let crate::Command::Node(n) =
                        crate::Cli::from_arg_matches(&matches).unwrap().command
                    else {
                        panic!("not a node command")
                    };
                    assert_eq!(n.zone, zone, "{}", path.display());
                    assert_eq!(n.kv.store, "memberlist");
                    assert!(n.zone_awareness_enabled);
                    assert_eq!(
                        n.kv.memberlist.join,
                        ["dns+gossip-ring.ringkit.svc.cluster.local:7946"]
                    );
                }
            }
        }
        assert_eq!(containers, 4, "3 ingester zones and the distributor");
    }
}
