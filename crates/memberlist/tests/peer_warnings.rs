//! What a misconfigured peer shows the operator: a cluster-label mismatch and the
//! failed join it causes are logged at WARN (dskit logs them as errors), once per peer
//! per minute however often they happen.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig};

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn config(label: &str) -> MemberlistConfig {
    let mut c = MemberlistConfig::dskit();
    c.bind_addr = [127, 0, 0, 1].into();
    c.bind_port = 0;
    c.node_name = format!("node-{label}");
    c.cluster_label = label.into();
    c
}

// One thread: every task of both nodes logs through the subscriber set below.
#[tokio::test(flavor = "current_thread")]
async fn a_cluster_label_mismatch_is_a_rate_limited_warning() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let a = Memberlist::start(config("cluster-a"), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let b = Memberlist::start(config("cluster-b"), GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let seed = a.advertise_addr().to_string();
    for _ in 0..3 {
        b.join(std::slice::from_ref(&seed))
            .await
            .expect_err("another cluster's member must refuse us");
    }
    // `a` logs after it read the stream; give its task a moment (bounded).
    let refused = "refusing memberlist stream with another cluster label";
    for _ in 0..100 {
        if logs.text().contains(refused) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = logs.text();
    let lines = |needle: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    };
    let label_lines = lines(refused);
    assert_eq!(label_lines.len(), 1, "one line for three refusals:\n{text}");
    let line = &label_lines[0];
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains("label=cluster-b") && line.contains("ours=cluster-a"),
        "the line says which labels differ: {line}"
    );
    assert!(line.contains("suppressed=0"), "{line}");
    let join_lines = lines("joining memberlist cluster through this member failed");
    assert_eq!(join_lines.len(), 1, "{text}");
    assert!(join_lines[0].contains(" WARN ") && join_lines[0].contains(&seed));
    a.shutdown().await;
    b.shutdown().await;
}
