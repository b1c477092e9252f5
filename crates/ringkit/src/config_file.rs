//! `--config.file=PATH`: flags from a YAML file, so a deployment can keep its settings in
//! one reviewed file (Mimir's `-config.file`), with command-line flags overriding it.
//!
//! The file maps flag names to values; nested mappings join their keys with `.`, so these
//! two files are the same:
//!
//! ```yaml
//! kv.store: memberlist
//! memberlist.join: [10.0.0.1:7946, 10.0.0.2:7946]
//! ```
//!
//! ```yaml
//! kv:
//!   store: memberlist
//! memberlist:
//!   join:
//!     - 10.0.0.1:7946
//!     - 10.0.0.2:7946
//! ```
//!
//! A list becomes one flag per item; `null` is skipped. Unknown keys are refused by the
//! flag parser like unknown flags, naming the key. A single-value flag given on the command
//! line overrides the file; list flags (`memberlist.join`, `etcd.endpoints`) given in both
//! places are combined.
//!
//! Mimir's own YAML layout is read too, so an existing Mimir config works for the parts
//! ringkit runs: `target`, `ingester.ring` (with its `kvstore`), `memberlist`
//! (`join_members`, ...), `server`, `distributor` and `blocks_storage` (backend, bucket,
//! `tsdb`). snake_case keys become the dashed flag names and Mimir's non-mechanical paths
//! are mapped ([`mimir_flag_name`]). Sections ringkit has no flag under (`limits`, ...)
//! and snake_case keys ringkit
//! does not implement are skipped with a warning on stderr instead of refused.

use std::ffi::OsString;

use anyhow::{Context as _, bail};
use clap::Command;
use yaml_rust2::{Yaml, YamlLoader};

const FLAG: &str = "config.file";

/// Replaces `--config.file PATH` / `--config.file=PATH` in `args` with the flags the file
/// holds, placed right after the subcommand words so later command-line flags win; keys
/// are checked against the flags of `cmd`'s subcommand that `args` names.
pub(crate) fn expand(cmd: &Command, args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let mut path = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let text = a.to_string_lossy();
        let name = text.trim_start_matches('-');
        if text.starts_with('-') && name == FLAG {
            path = Some(it.next().context("--config.file needs a path")?);
        } else if text.starts_with('-')
            && let Some(p) = name.strip_prefix("config.file=")
        {
            path = Some(OsString::from(p));
        } else {
            rest.push(a);
        }
    }
    let Some(path) = path else { return Ok(rest) };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading --config.file {}", path.to_string_lossy()))?;
    let flags = flags_from_yaml(&text)
        .with_context(|| format!("in --config.file {}", path.to_string_lossy()))?;
    // After the program name and the subcommand words (`node`, `ring show`, ...).
    let at = rest
        .iter()
        .skip(1)
        .position(|a| a.to_string_lossy().starts_with('-'))
        .map_or(rest.len(), |i| i + 1);
    let words: Vec<String> = rest[1..at]
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let sub = crate::mimir_flags::subcommand(cmd, &words);
    let (flags, skipped) = mimir_layout(sub, flags);
    for warning in skipped {
        eprintln!(
            "ringkit: warning: --config.file {}: {warning}",
            path.to_string_lossy()
        );
    }
    rest.splice(at..at, flags.into_iter().map(OsString::from));
    Ok(rest)
}

/// The `--name=value` flags a YAML document describes.
pub(crate) fn flags_from_yaml(text: &str) -> anyhow::Result<Vec<String>> {
    let docs = YamlLoader::load_from_str(text).context("invalid YAML")?;
    let mut out = Vec::new();
    match docs.first() {
        None | Some(Yaml::Null) => {}
        Some(Yaml::Hash(_)) => walk(&docs[0], "", &mut out)?,
        Some(_) => bail!("the file must be a mapping of flag names to values"),
    }
    Ok(out)
}

/// Mimir YAML paths whose flag name is not the mechanical snake_case → dashes one.
const MIMIR_RENAMES: &[(&str, &str)] = &[
    ("memberlist.join_members", "memberlist.join"),
    ("memberlist.node_name", "memberlist.nodename"),
    (
        "memberlist.pull_push_interval",
        "memberlist.pullpush-interval",
    ),
    (
        "memberlist.abort_if_cluster_join_fails",
        "memberlist.abort-if-join-fails",
    ),
    ("server.log_level", "log.level"),
    ("server.log_format", "log.format"),
    ("server.http_path_prefix", "server.path-prefix"),
];

/// Mimir YAML path prefixes and the flag prefix they stand for (first match wins).
const MIMIR_PREFIXES: &[(&str, &str)] = &[
    ("ingester.ring.kvstore.etcd.", "etcd."),
    ("ingester.ring.kvstore.multi.", "multi."),
    ("ingester.ring.kvstore.", "ingester.ring."),
    ("distributor.ring.kvstore.", "distributor.ring."),
];

/// Mimir sections whose keys ringkit does not implement are skipped, not refused.
const MIMIR_ONLY: &[&str] = &["ingester.ring.", "distributor.ring."];

/// The flag name for a dotted YAML path: Mimir's renames, then snake_case to dashes
/// (ringkit's own dashed names pass through unchanged).
pub(crate) fn mimir_flag_name(path: &str) -> String {
    if let Some((_, flag)) = MIMIR_RENAMES.iter().find(|(p, _)| *p == path) {
        return (*flag).to_owned();
    }
    let path = MIMIR_PREFIXES
        .iter()
        .find_map(|(from, to)| path.strip_prefix(from).map(|rest| format!("{to}{rest}")))
        .unwrap_or_else(|| path.to_owned());
    path.replace('_', "-")
}

/// Maps the file's `--path=value` flags to `cmd`'s flag names; drops (returning a warning
/// for each) top-level sections with no flag of `cmd` under them and snake_case keys `cmd`
/// does not know. Other unknown keys stay, for clap to refuse.
fn mimir_layout(cmd: &Command, flags: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut kept = Vec::with_capacity(flags.len());
    let mut warnings: Vec<String> = Vec::new();
    for flag in flags {
        let body = flag.trim_start_matches('-');
        let (path, value) = body.split_once('=').unwrap_or((body, ""));
        let name = mimir_flag_name(path);
        if crate::mimir_flags::find_long(cmd, &name).is_some() {
            kept.push(format!("--{name}={value}"));
            continue;
        }
        let section = path.split('.').next().unwrap_or(path);
        let section_known = cmd.get_arguments().any(|a| {
            a.get_long().is_some_and(|l| {
                l == section || l.starts_with(&format!("{}.", section.replace('_', "-")))
            }) || a.get_all_aliases().is_some_and(|al| {
                al.iter()
                    .any(|l| l.starts_with(&format!("{}.", section.replace('_', "-"))))
            })
        });
        if !section_known {
            let w = format!("ignoring section {section:?} (ringkit has no settings there)");
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        } else if path.contains('_') || MIMIR_ONLY.iter().any(|p| path.starts_with(p)) {
            warnings.push(format!("ignoring {path:?} (not a ringkit setting)"));
        } else {
            kept.push(flag);
        }
    }
    (kept, warnings)
}

fn walk(node: &Yaml, prefix: &str, out: &mut Vec<String>) -> anyhow::Result<()> {
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                let key = scalar(k).with_context(|| format!("key under {prefix:?}"))?;
                let name = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                walk(v, &name, out)?;
            }
        }
        Yaml::Array(items) => {
            for item in items {
                out.push(format!(
                    "--{prefix}={}",
                    scalar(item).context(prefix.to_owned())?
                ));
            }
        }
        Yaml::Null => {}
        other => out.push(format!(
            "--{prefix}={}",
            scalar(other).context(prefix.to_owned())?
        )),
    }
    Ok(())
}

fn scalar(y: &Yaml) -> anyhow::Result<String> {
    Ok(match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        // Kept as written (e.g. `0.5`), not re-formatted.
        Yaml::Real(r) => r.clone(),
        other => bail!("expected a single value, found {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn nested_and_flat_keys_give_the_same_flags() {
        let flat = "kv.store: memberlist\nmemberlist.join: [a:1, b:2]\ningester.num-tokens: 512\n";
        let nested = "kv:\n  store: memberlist\nmemberlist:\n  join:\n    - a:1\n    - b:2\ningester:\n  num-tokens: 512\n";
        let want = [
            "--kv.store=memberlist",
            "--memberlist.join=a:1",
            "--memberlist.join=b:2",
            "--ingester.num-tokens=512",
        ];
        assert_eq!(flags_from_yaml(flat).unwrap(), want);
        assert_eq!(flags_from_yaml(nested).unwrap(), want);
    }

    #[test]
    fn file_flags_go_after_the_subcommand_and_before_command_line_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringkit.yaml");
        std::fs::write(
            &path,
            "kv.store: etcd\nmemberlist:\n  randomize-node-name: false\n",
        )
        .unwrap();
        let args: Vec<OsString> = [
            "ringkit",
            "node",
            "--config.file",
            path.to_str().unwrap(),
            "--kv.store=memberlist",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let got: Vec<String> = expand(&crate::Cli::command(), args)
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "ringkit",
                "node",
                "--kv.store=etcd",
                "--memberlist.randomize-node-name=false",
                "--kv.store=memberlist"
            ]
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(
            flags_from_yaml("- just\n- a list\n")
                .unwrap_err()
                .to_string()
                .contains("mapping")
        );
        assert!(flags_from_yaml("a: [b: c]\n").is_err());
        assert!(flags_from_yaml("a: {").is_err());
        let err = expand(
            &crate::Cli::command(),
            vec![
                "ringkit".into(),
                "node".into(),
                "--config.file=/nonexistent/x.yaml".into(),
            ],
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/x.yaml"),
            "{err:#}"
        );
    }

    /// A Mimir ingester's config (layout of Mimir's reference config and jsonnet).
    const MIMIR_YAML: &str = r#"
target: ingester
multitenancy_enabled: false
server:
  http_listen_port: 8080
  grpc_listen_port: 9095
  log_level: info
  grpc_server_max_concurrent_streams: 500
distributor:
  ring:
    kvstore:
      store: memberlist
  pool:
    health_check_ingesters: true
ingester:
  ring:
    kvstore:
      store: memberlist
      prefix: ""
    replication_factor: 3
    zone_awareness_enabled: true
    instance_availability_zone: zone-a
    num_tokens: 512
    tokens_file_path: /data/tokens
    heartbeat_period: 2m
    heartbeat_timeout: 10m
    unregister_on_shutdown: false
    final_sleep: 0s
    excluded_zones: ""
  instance_limits:
    max_series: 1500000
memberlist:
  join_members:
    - dns+gossip-ring.mimir.svc.cluster.local:7946
  cluster_label: mimir
  abort_if_cluster_join_fails: false
  bind_port: 7946
  compression_algorithm: snappy
  zone_aware_routing:
    enabled: true
    instance_availability_zone: zone-a
    role: bridge
blocks_storage:
  backend: filesystem
  tsdb:
    dir: /data/tsdb
limits:
  ingestion_rate: 100000
"#;

    #[test]
    fn mimir_paths_map_to_flag_names() {
        assert_eq!(
            mimir_flag_name("memberlist.join_members"),
            "memberlist.join"
        );
        assert_eq!(
            mimir_flag_name("ingester.ring.kvstore.store"),
            "ingester.ring.store"
        );
        assert_eq!(
            mimir_flag_name("ingester.ring.kvstore.etcd.endpoints"),
            "etcd.endpoints"
        );
        assert_eq!(
            mimir_flag_name("ingester.ring.instance_availability_zone"),
            "ingester.ring.instance-availability-zone"
        );
        assert_eq!(mimir_flag_name("kv.max-value-size"), "kv.max-value-size");
    }

    #[test]
    fn a_mimir_config_file_configures_a_node_and_unknown_parts_are_skipped() {
        use clap::FromArgMatches as _;
        let cmd = crate::Cli::command();
        let node = crate::mimir_flags::subcommand(&cmd, &["node".to_owned()]);
        let (_, warnings) = mimir_layout(node, flags_from_yaml(MIMIR_YAML).unwrap());
        for skipped in [
            "\"multitenancy_enabled\"",
            "\"limits\"",
            "\"server.log_level\"",
            "\"ingester.instance_limits.max_series\"",
            "\"distributor.ring.kvstore.store\"",
        ] {
            assert!(
                warnings.iter().any(|w| w.contains(skipped)),
                "{skipped} not in {warnings:?}"
            );
        }
        // Each skipped section is reported once; sections and keys ringkit has flags for
        // (blocks_storage's backend and TSDB dir, memberlist's join abort) are not skipped.
        assert_eq!(
            warnings
                .iter()
                .filter(|w| w.contains("section \"limits\""))
                .count(),
            1
        );
        for taken in ["blocks_storage", "abort_if_cluster_join_fails"] {
            assert!(
                !warnings.iter().any(|w| w.contains(taken)),
                "{taken} skipped: {warnings:?}"
            );
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mimir.yaml");
        std::fs::write(&path, MIMIR_YAML).unwrap();
        let args: Vec<OsString> = [
            "ringkit",
            "node",
            "-config.file",
            path.to_str().unwrap(),
            "-ingester.ring.instance-availability-zone=zone-b",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let args = expand(&cmd, args).unwrap();
        let args = crate::mimir_flags::rewrite(&cmd, args).unwrap();
        let matches = crate::Cli::command()
            .args_override_self(true)
            .mut_subcommands(|c| c.args_override_self(true))
            .try_get_matches_from(args)
            .unwrap();
        let crate::Command::Node(n) = crate::Cli::from_arg_matches(&matches).unwrap().command
        else {
            panic!("not a node command")
        };
        assert_eq!(n.target, "ingester");
        assert_eq!(n.http_port, 8080);
        assert_eq!(n.kv.store, "memberlist");
        assert_eq!(n.kv.prefix, "");
        assert_eq!(n.replication_factor, 3);
        assert!(n.zone_awareness_enabled);
        // The command line wins over the file.
        assert_eq!(n.zone, "zone-b");
        assert_eq!(n.num_tokens, 512);
        assert_eq!(
            n.tokens_file_path.as_deref(),
            Some(std::path::Path::new("/data/tokens"))
        );
        assert_eq!(n.heartbeat_period, std::time::Duration::from_secs(120));
        assert_eq!(
            n.ring_heartbeat_timeout,
            std::time::Duration::from_secs(600)
        );
        assert!(!n.unregister_on_shutdown);
        assert_eq!(
            n.kv.memberlist.join,
            ["dns+gossip-ring.mimir.svc.cluster.local:7946"]
        );
        assert_eq!(n.kv.memberlist.cluster_label, "mimir");
        assert_eq!(n.kv.memberlist.bind_port, 7946);
        assert_eq!(n.ingester.grpc_port, 9095);
        assert!(!n.kv.memberlist.abort_if_join_fails);
        // dskit's zone-aware routing and compression keys.
        let ml = n.kv.memberlist.to_config().unwrap();
        let routing = ml.swim.zone_aware_routing.unwrap();
        assert_eq!(routing.zone, b"zone-a");
        assert_eq!(routing.role.to_string(), "bridge");
        assert_eq!(
            ml.compression_algorithm,
            ringkit_memberlist::wire::compress::CompressionAlgo::Snappy
        );
        assert_eq!(n.ingester.storage.backend.as_deref(), Some("filesystem"));
        assert_eq!(n.ingester.tsdb_dir, std::path::Path::new("/data/tsdb"));
    }
}
