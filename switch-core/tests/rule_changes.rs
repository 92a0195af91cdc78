//! Rule changes through the control plane: one bridge's change does not hold up another's, a
//! change becomes visible only once its record succeeded, and a failed record changes nothing.
//! Dummy bridges: no root needed.

use std::sync::mpsc;
use std::time::Duration;

use flow_table::{Action, Match, RuleFilter, RuleSpec};
use switch_core::{BridgeOptions, DatapathType, Switch, SwitchConfig, SwitchError};

fn dummy_bridges(sw: &Switch, names: &[&str]) {
    for n in names {
        sw.add_bridge_with(
            n,
            BridgeOptions {
                datapath_type: DatapathType::Dummy,
            },
        )
        .unwrap();
    }
}

fn drop_rule(priority: u16) -> RuleSpec {
    RuleSpec::new(priority, Match::any().in_port(1), vec![Action::Drop])
}

#[test]
fn a_change_waiting_on_its_record_holds_up_only_its_own_bridge() {
    let sw = Switch::start(SwitchConfig::default()).unwrap();
    dummy_bridges(&sw, &["rcA", "rcB"]);
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let sw1 = &sw;
        let slow = s.spawn(move || {
            sw1.add_flows_recorded("rcA", vec![drop_rule(5)], || {
                started_tx.send(()).unwrap();
                // A slow disk: the record takes until the test says so.
                release_rx.recv().unwrap();
                Ok(())
            })
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        // Not recorded yet, so not visible: readers still see the default rule alone.
        assert_eq!(sw.n_flows("rcA").unwrap(), 1);
        // Another bridge's changes go through meanwhile (run in a thread so that a wrong
        // implementation fails the test instead of hanging it).
        let (done_tx, done) = mpsc::channel();
        let sw2 = &sw;
        s.spawn(move || {
            let r = sw2
                .add_flows("rcB", vec![drop_rule(6)])
                .and_then(|()| sw2.del_flows("rcB", &RuleFilter::all(), false));
            done_tx.send(r.map(|gone| gone.len())).unwrap();
        });
        let r = done.recv_timeout(Duration::from_secs(10));
        release.send(()).unwrap();
        assert_eq!(
            r.expect("bridge rcB's changes waited for rcA's record")
                .unwrap(),
            2
        );
        slow.join().unwrap().unwrap();
    });
    assert_eq!(sw.n_flows("rcA").unwrap(), 2);
}

#[test]
fn a_failed_record_changes_nothing() {
    let sw = Switch::start(SwitchConfig::default()).unwrap();
    dummy_bridges(&sw, &["rcF"]);
    sw.add_flows("rcF", vec![drop_rule(5)]).unwrap();
    let before: Vec<String> = sw
        .flows("rcF")
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    let e = sw
        .add_flows_recorded("rcF", vec![drop_rule(7)], || Err("disk full".into()))
        .unwrap_err();
    assert!(
        matches!(&e, SwitchError::NotRecorded(m) if m == "disk full"),
        "{e}"
    );
    let e = sw
        .del_flows_recorded("rcF", &RuleFilter::all(), false, |gone| {
            assert_eq!(gone.len(), 2);
            Err("disk full".into())
        })
        .unwrap_err();
    assert!(matches!(e, SwitchError::NotRecorded(_)));
    let e = sw
        .mod_flows_recorded(
            "rcF",
            &RuleFilter::all(),
            &[Action::Normal],
            false,
            |changed| {
                assert!(changed.iter().all(|r| *r.actions == [Action::Normal]));
                Err("disk full".into())
            },
        )
        .unwrap_err();
    assert!(matches!(e, SwitchError::NotRecorded(_)));
    let after: Vec<String> = sw
        .flows("rcF")
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(before, after);
}
