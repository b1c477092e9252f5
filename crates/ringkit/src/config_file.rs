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

use std::ffi::OsString;

use anyhow::{Context as _, bail};
use yaml_rust2::{Yaml, YamlLoader};

const FLAG: &str = "config.file";

/// Replaces `--config.file PATH` / `--config.file=PATH` in `args` with the flags the file
/// holds, placed right after the subcommand words so later command-line flags win.
pub(crate) fn expand(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
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
        let got: Vec<String> = expand(args)
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
        let err = expand(vec![
            "ringkit".into(),
            "node".into(),
            "--config.file=/nonexistent/x.yaml".into(),
        ])
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/x.yaml"),
            "{err:#}"
        );
    }
}
