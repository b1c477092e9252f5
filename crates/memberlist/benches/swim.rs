//! Costs of the SWIM core's hot paths and of the simulator.
//!
//! `cargo bench -p ringkit-memberlist --bench swim`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use ringkit_memberlist::sim::{LinkConfig, Sim};
use ringkit_memberlist::swim::{Config, Core, LocalNode};
use ringkit_memberlist::wire::Message;
use ringkit_memberlist::wire::message::{Alive, Compound, DSKIT_VSN, IpForm};

fn addr(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 7946)
}

fn alive(i: u32, incarnation: u32) -> Alive {
    Alive {
        incarnation,
        node: format!("node-{i:05}").into_bytes(),
        addr: vec![10, 0, (i >> 8) as u8, i as u8],
        port: 7946,
        meta: None,
        vsn: DSKIT_VSN.to_vec(),
    }
}

fn core_with(n: u32) -> (Core<StdRng>, Instant) {
    let now = Instant::now();
    let local = LocalNode {
        name: b"me".to_vec(),
        addr: addr(0),
        ip_form: IpForm::V4,
        meta: None,
    };
    let mut c = Core::new(now, Config::dskit(), local, StdRng::seed_from_u64(1)).unwrap();
    for i in 1..=n {
        c.handle_packet(now, addr(i), Message::Alive(alive(i, 1)));
    }
    while c.poll_transmit().is_some() {}
    while c.poll_event().is_some() {}
    (c, now)
}

fn bench(c: &mut Criterion) {
    let (mut core, now) = core_with(1000);
    // A gossip compound of 50 alive messages the core already knows (the common
    // case in a converged cluster: every message is a duplicate).
    let mut parts = Vec::new();
    for i in 1..=50u32 {
        parts.push(Message::Alive(alive(i, 1)));
    }
    let packet = Message::Compound(Compound {
        parts,
        truncated: 0,
    });
    c.bench_function("swim/handle_packet_50_known_alive_1000_members", |b| {
        b.iter(|| core.handle_packet(now, addr(1), black_box(packet.clone())))
    });

    let (mut core, now) = core_with(1000);
    let mut t = now;
    c.bench_function(
        "swim/gossip_round_with_100_user_broadcasts_1000_members",
        |b| {
            b.iter(|| {
                for k in 0..100u32 {
                    core.queue_broadcast(k.to_be_bytes().repeat(25));
                }
                t += Duration::from_millis(200);
                core.handle_timeout(t);
                let mut n = 0;
                while let Some(x) = core.poll_transmit() {
                    n += black_box(&x).to().port() as usize;
                }
                n
            })
        },
    );

    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    g.bench_function("100_nodes_10s_virtual_steady_state", |b| {
        let mut sim = Sim::new(100, 7, Config::dskit(), LinkConfig::default());
        sim.record_membership = false;
        for i in 1..100 {
            sim.join(i, &[0]);
        }
        sim.run_for(Duration::from_secs(30));
        b.iter(|| sim.run_for(Duration::from_secs(10)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
