//! Quick simulator runs on small clusters.

use std::time::Duration;

use ringkit_memberlist::sim::{LinkConfig, Sim, seed_from_env};
use ringkit_memberlist::swim::{Config, Event, State};

fn all_see_all_alive(sim: &Sim) -> bool {
    let running = sim.running();
    running.iter().all(|&i| {
        let c = sim.core(i).unwrap();
        running.iter().all(|&j| {
            c.member(sim.name(j))
                .is_some_and(|m| m.state == State::Alive)
        })
    })
}

#[test]
fn five_nodes_joining_one_seed_all_see_each_other_alive() {
    let seed = seed_from_env(1);
    let mut sim = Sim::new(5, seed, Config::default_lan(), LinkConfig::default());
    for i in 1..5 {
        sim.join(i, &[0]);
    }
    sim.run_for(Duration::from_secs(5));
    assert!(all_see_all_alive(&sim));
    for i in 0..5 {
        assert_eq!(sim.stats(i).decode_errors, 0);
        assert_eq!(sim.core(i).unwrap().num_alive(), 5);
    }
}

/// Events without absolute instants (the base instant differs between runs).
type Trace = Vec<(std::time::Duration, usize, String)>;

fn chaotic_run(seed: u64) -> (Trace, Vec<u64>) {
    let link = LinkConfig {
        loss: 0.1,
        duplicate: 0.05,
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(50),
        stream_failure: 0.1,
    };
    let mut sim = Sim::new(20, seed, Config::default_lan(), link);
    for i in 1..20 {
        sim.join(i, &[0, 1]);
    }
    sim.run_for(Duration::from_secs(5));
    sim.command(3, |c, _| c.queue_broadcast(b"x".to_vec()));
    sim.crash(5);
    sim.net
        .partition((0..20).map(|i| u32::from(i % 3 == 0)).collect());
    sim.run_for(Duration::from_secs(10));
    sim.net.heal();
    sim.restart(5, &[0]);
    sim.run_for(Duration::from_secs(20));
    let bytes = (0..20).map(|i| sim.stats(i).packet_bytes).collect();
    let trace = sim
        .take_events()
        .into_iter()
        .map(|e| {
            let what = match e.event {
                Event::MemberJoined(m) => format!("joined {:?} {}", m.name, m.incarnation),
                Event::MemberUpdated(m) => format!("updated {:?} {}", m.name, m.incarnation),
                Event::MemberSuspect(m) => format!("suspect {:?} {}", m.name, m.incarnation),
                Event::MemberDead(m) => format!("dead {:?} {}", m.name, m.incarnation),
                Event::MemberLeft(m) => format!("left {:?} {}", m.name, m.incarnation),
                other => format!("{other:?}"),
            };
            (e.at, e.node, what)
        })
        .collect();
    (trace, bytes)
}

#[test]
fn the_same_seed_replays_exactly_and_another_seed_differs() {
    let seed = seed_from_env(99);
    let a = chaotic_run(seed);
    let b = chaotic_run(seed);
    assert!(a.0.len() > 100);
    assert_eq!(a.0.len(), b.0.len());
    let diverge = a.0.iter().zip(&b.0).position(|(x, y)| x != y);
    assert_eq!(diverge, None, "traces diverge");
    assert_eq!(a.1, b.1);
    let c = chaotic_run(seed.wrapping_add(1));
    assert_ne!(a.1, c.1);
}

#[test]
fn a_restarted_node_with_the_same_name_refutes_its_death_and_rejoins() {
    let seed = seed_from_env(5);
    let mut sim = Sim::new(10, seed, Config::default_lan(), LinkConfig::default());
    for i in 1..10 {
        sim.join(i, &[0]);
    }
    sim.run_for(Duration::from_secs(5));
    assert!(all_see_all_alive(&sim));
    sim.crash(4);
    // LAN: suspicion min = 4 s at n = 10, max 24 s; dead everywhere within 30 s
    // and not yet forgotten (that takes gossip_to_the_dead_time more).
    sim.run_for(Duration::from_secs(30));
    let name = sim.name(4).to_vec();
    for i in sim.running() {
        let st = sim.core(i).unwrap().member(&name).map(|m| m.state);
        assert_eq!(st, Some(State::Dead), "node {i}");
    }
    sim.restart(4, &[0]);
    sim.run_for(Duration::from_secs(10));
    assert!(all_see_all_alive(&sim));
    assert!(sim.core(4).unwrap().incarnation() > 1, "it had to refute");
}

#[test]
fn a_graceful_leave_is_seen_as_left_by_everyone() {
    let seed = seed_from_env(6);
    let mut sim = Sim::new(10, seed, Config::default_lan(), LinkConfig::default());
    for i in 1..10 {
        sim.join(i, &[0]);
    }
    sim.run_for(Duration::from_secs(5));
    sim.take_events();
    sim.command(2, |c, now| c.leave(now));
    sim.run_for(Duration::from_secs(5));
    let done = sim
        .take_events()
        .iter()
        .any(|e| e.node == 2 && e.event == Event::LeaveBroadcastDone);
    assert!(done);
    sim.crash(2); // shut down after the leave broadcast drained
    let name = sim.name(2).to_vec();
    for i in sim.running() {
        let st = sim.core(i).unwrap().member(&name).map(|m| m.state);
        assert_eq!(st, Some(State::Left), "node {i}");
    }
}
