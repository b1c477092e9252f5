//! Quick simulator runs on small clusters.

use std::time::Duration;

use ringkit_memberlist::sim::{LinkConfig, Sim, seed_from_env};
use ringkit_memberlist::swim::{Config, State};

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
