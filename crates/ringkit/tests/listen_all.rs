//! A node listening on `0.0.0.0` (HTTP, gRPC and memberlist) with no address given puts
//! the address of `-ingester.ring.instance-interface-names` in the ring and in gossip,
//! never `0.0.0.0`; naming only the loopback interface stops it with a clear error (dskit
//! never takes a loopback address).
//!
//! The node runs in a network namespace the test makes (a veth pair with 10.77.0.1 on one
//! end, plus its own loopback) and removes at the end, so nothing listens on the host's
//! interfaces. Making a namespace needs root (`ip netns`): without it the test skips
//! loudly, and fails when `RINGKIT_REQUIRE_NETNS=1` (scripts/test.sh sets it when run as
//! root).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADDR: &str = "10.77.0.1";

/// A network namespace, deleted (with the processes the test started in it, by pid)
/// when dropped.
struct Netns {
    name: String,
    children: Vec<Child>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// The namespace with `lo` up and a veth pair whose end `rk0` has 10.77.0.1/24.
    fn create() -> Result<Netns, String> {
        let name = format!("ringkit-test-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns {
            name,
            children: Vec::new(),
        };
        let n = ns.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", n, "link", "add", "rk0", "type", "veth", "peer", "name", "rk1",
        ])?;
        ip(&["-n", n, "addr", "add", &format!("{ADDR}/24"), "dev", "rk0"])?;
        ip(&["-n", n, "link", "set", "rk0", "up"])?;
        ip(&["-n", n, "link", "set", "rk1", "up"])?;
        Ok(ns)
    }

    fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// GETs `url` inside the namespace as JSON (curl; 5 s bound).
    fn get_json(&self, url: &str) -> Option<serde_json::Value> {
        let out = self
            .exec("curl")
            .args([
                "-sf",
                "--max-time",
                "5",
                "-H",
                "Accept: application/json",
                url,
            ])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn node_args(wal: &std::path::Path, interfaces: &str) -> Vec<String> {
    vec![
        "node".into(),
        "-target=ingester".into(),
        "-ingester.ring.instance-id=ing-listen-all".into(),
        format!("-ingester.ring.instance-interface-names={interfaces}"),
        "-ingester.ring.min-ready-duration=0s".into(),
        "-ingester.ring.store=memberlist".into(),
        "-memberlist.bind-addr=0.0.0.0".into(),
        "-memberlist.bind-port=7946".into(),
        "-server.http-listen-address=0.0.0.0".into(),
        "-server.http-listen-port=8080".into(),
        "-server.grpc-listen-address=0.0.0.0".into(),
        "-server.grpc-listen-port=9095".into(),
        format!("-ingester.wal-dir={}", wal.display()),
    ]
}

#[test]
fn a_node_listening_on_every_interface_advertises_its_interface_address() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            ringkit_testkit::require::missing(
                "RINGKIT_REQUIRE_NETNS",
                &format!("listen_all cannot make a network namespace ({why})"),
            );
            return;
        }
    };
    let mut ns = ns;
    let wal = tempfile::tempdir().unwrap();

    // Only loopback named: the node stops, saying why, before registering anything.
    let lo = ns
        .exec(env!("CARGO_BIN_EXE_ringkit"))
        .args(node_args(wal.path(), "lo"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ns.children.push(lo);
    let child = ns.children.last_mut().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "a loopback-only node started: {err}");
    assert!(
        err.contains("no usable address") && err.contains("\"lo\""),
        "{err}"
    );

    // The veth end named: HTTP, gRPC and gossip listen everywhere, 10.77.0.1 is advertised.
    let mut node = ns
        .exec(env!("CARGO_BIN_EXE_ringkit"))
        .args(node_args(wal.path(), "rk1,rk0"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = node.stdout.take().unwrap();
    ns.children.push(node);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.contains("http://0.0.0.0:8080"), "{line:?}");

    let deadline = Instant::now() + Duration::from_secs(40);
    let ring = loop {
        let r = ns.get_json(&format!("http://{ADDR}:8080/ring"));
        if let Some(r) = &r
            && r["shards"][0]["state"] == "ACTIVE"
        {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "node not ACTIVE: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let shards = ring["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 1, "{ring}");
    assert_eq!(shards[0]["id"], "ing-listen-all");
    assert_eq!(shards[0]["address"], format!("{ADDR}:9095"), "{ring}");

    // Gossip advertises the same address, and every listener answers on loopback too.
    let ml = ns
        .get_json("http://127.0.0.1:8080/memberlist")
        .expect("/memberlist answers on 127.0.0.1");
    assert_eq!(ml["address"], format!("{ADDR}:7946"), "{ml}");
    for port in [9095, 7946] {
        let out = ns
            .exec("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "port {port} not open on 127.0.0.1");
    }
    drop(ns);
}
