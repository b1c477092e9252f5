//! The CLI's defaults agree with the libraries' `Default`s (issue 17): a `ringkit node`
//! started with no flags builds the configs a library user gets from `Default` (or the
//! named preset), except for the differences `tests::INTENDED` lists with their reason.
//!
//! Integer and boolean defaults are taken from the libraries in the clap attributes
//! (`default_value_t = LifecyclerConfig::default().num_tokens`); durations and strings
//! are literals clap must parse, so this test is what keeps them in step.

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use clap::Parser;

    use crate::node::NodeArgs;

    /// `ringkit node` flags on their own, for parsing without the other subcommands.
    #[derive(Parser)]
    struct NodeOnly {
        #[command(flatten)]
        node: NodeArgs,
    }

    /// Fields where the CLI's default is meant to differ from the library's `Default`,
    /// each with the reason. The test fails when one of them no longer differs, too, so
    /// the list stays true.
    const INTENDED: &[(&str, &str)] = &[
        (
            "ServerConfig.http_conn_limit",
            "the CLI's 0 means a quarter of this process's open-file limit, so a node never \
             runs out of descriptors (ringkit's safe default; Mimir's 0 means no limit); the \
             library cannot know the process's limit and leaves the bound to its caller",
        ),
        (
            "ServerConfig.grpc_conn_limit",
            "as ServerConfig.http_conn_limit",
        ),
    ];

    /// The fields (as `Type.path.to.field`) whose values differ between `cli` and `lib`,
    /// read from their `Debug` forms, with both values.
    fn differences<T: Debug>(name: &str, cli: &T, lib: &T) -> Vec<(String, String)> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        flatten(name, &format!("{cli:?}"), &mut a);
        flatten(name, &format!("{lib:?}"), &mut b);
        if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| x.0 != y.0) {
            return vec![(name.to_owned(), format!("CLI {cli:?} vs library {lib:?}"))];
        }
        a.into_iter()
            .zip(b)
            .filter(|(x, y)| x.1 != y.1)
            .map(|(x, y)| (x.0, format!("CLI `{}` vs library `{}`", x.1, y.1)))
            .collect()
    }

    /// Splits the `Debug` form of a struct (`Name { a: 1, b: Inner { c: 2 } }`) into
    /// `(path, value)` leaves: `(prefix.a, 1)`, `(prefix.b.c, 2)`. Anything else is one leaf.
    fn flatten(prefix: &str, debug: &str, out: &mut Vec<(String, String)>) {
        let body = debug
            .split_once(" { ")
            .filter(|(head, _)| head.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .and_then(|(_, rest)| rest.strip_suffix(" }"));
        let Some(body) = body else {
            out.push((prefix.to_owned(), debug.to_owned()));
            return;
        };
        for field in split_top_level(body) {
            match field.split_once(": ") {
                Some((k, v)) => flatten(&format!("{prefix}.{k}"), v, out),
                None => out.push((prefix.to_owned(), field.to_owned())),
            }
        }
    }

    /// Splits `a: 1, b: [2, 3], c: "x, y"` at the commas outside brackets and strings.
    fn split_top_level(s: &str) -> Vec<&str> {
        let (mut depth, mut in_str, mut escaped, mut start) = (0i32, false, false, 0);
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        for (i, &c) in bytes.iter().enumerate() {
            if in_str {
                match c {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 && bytes.get(i + 1) == Some(&b' ') => {
                    out.push(&s[start..i]);
                    start = i + 2;
                }
                _ => {}
            }
        }
        out.push(&s[start..]);
        out
    }

    #[test]
    fn flatten_names_nested_fields_and_keeps_lists_and_strings_whole() {
        let mut out = Vec::new();
        flatten(
            "T",
            r#"T { a: 1, b: I { c: Some(2), d: [3, 4] }, e: "x, y" }"#,
            &mut out,
        );
        let want = [
            ("T.a", "1"),
            ("T.b.c", "Some(2)"),
            ("T.b.d", "[3, 4]"),
            ("T.e", r#""x, y""#),
        ];
        let got: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    fn defaults() -> NodeArgs {
        NodeOnly::try_parse_from(["ringkit"]).unwrap().node
    }

    #[test]
    fn every_cli_default_matches_the_library_default_or_is_listed_with_its_reason() {
        let args = defaults();
        let mut found: Vec<(String, String)> = Vec::new();

        let lib = ringkit_lifecycle::LifecyclerConfig::default();
        let cli = args.lifecycler_config(lib.id.clone(), lib.addr.clone());
        found.extend(differences("LifecyclerConfig", &cli, &lib));

        found.extend(differences(
            "RingConfig",
            &args.ring_config(),
            &ringkit_ring::RingConfig::default(),
        ));

        let (dist, instance, read) = args.distributor.configs();
        let lib = ringkit_dataplane::distributor::DistributorConfig::default();
        found.extend(differences("DistributorConfig", &dist, &lib));
        found.extend(differences(
            "InstanceLimits",
            &instance,
            &ringkit_dataplane::limits::InstanceLimits::default(),
        ));
        found.extend(differences(
            "ReadLimits",
            &read,
            &ringkit_dataplane::limits::ReadLimits::default(),
        ));

        found.extend(differences(
            "ServerConfig",
            &args.server.to_config(),
            &ringkit_dataplane::server::ServerConfig::default(),
        ));

        let cfg = args.ingester.config().unwrap();
        let lib = ringkit_ingest::head::HeadOptions::default();
        found.extend(differences(
            "HeadOptions.store",
            &cfg.head.store,
            &lib.store,
        ));
        found.extend(differences("HeadOptions.wal", &cfg.head.wal, &lib.wal));
        found.extend(differences(
            "HeadOptions.retention_ms",
            &cfg.head.retention_ms,
            &lib.retention_ms,
        ));
        found.extend(differences(
            "HeadOptions.block_readers",
            &cfg.head.block_readers,
            &lib.block_readers,
        ));
        found.extend(differences(
            "HeadOptions.retention_waits_for_shipping",
            &cfg.head.retention_waits_for_shipping,
            &lib.retention_waits_for_shipping,
        ));
        found.extend(differences(
            "HeadOptions.blocks",
            &cfg.head.blocks.is_some(),
            &lib.blocks.is_some(),
        ));
        found.extend(differences(
            "Limits",
            &cfg.limits,
            &ringkit_ingest::validate::Limits::default(),
        ));

        found.extend(differences(
            "ClientOptions",
            &args.kv.client_options(),
            &ringkit_kv::ClientOptions::default(),
        ));
        found.extend(differences(
            "EtcdConfig",
            &args.kv.etcd_config(),
            &ringkit_kv::EtcdConfig::default(),
        ));
        found.extend(differences(
            "MultiConfig",
            &args.kv.multi_config(),
            &ringkit_kv::MultiConfig::default(),
        ));
        found.extend(differences(
            "MemberlistConfig",
            &args.kv.memberlist.to_config().unwrap(),
            &ringkit_memberlist::runtime::MemberlistConfig::dskit(),
        ));
        found.extend(differences(
            "KvConfig",
            &args.kv.memberlist.kv_config(),
            &ringkit_memberlist::kv::KvConfig::default(),
        ));

        let lib = ringkit_lifecycle::PartitionLifecyclerConfig::new("ingester-zone-a-1", 1);
        let cli =
            crate::partition::lifecycler_config(&args.partition, "ingester-zone-a-1").unwrap();
        found.extend(differences("PartitionLifecyclerConfig", &cli, &lib));

        let lib = ringkit_ship::ShipperConfig::new("./tsdb/");
        let cli = args.ingester.storage.shipper_config("./tsdb/".into());
        found.extend(differences("ShipperConfig", &cli, &lib));

        let mut unexpected = Vec::new();
        for (field, values) in &found {
            if !INTENDED.iter().any(|(f, _)| f == field) {
                unexpected.push(format!("{field}: {values}"));
            }
        }
        let stale: Vec<&str> = INTENDED
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| !found.iter().any(|(g, _)| g == f))
            .collect();
        assert!(
            unexpected.is_empty() && stale.is_empty(),
            "CLI defaults that differ from the library's Default without a listed reason:\n{}\n\
             listed as different but now equal: {stale:?}",
            unexpected.join("\n")
        );
    }
}
