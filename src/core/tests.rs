use super::*;

fn send<'a>(targets: &'a [NodeIndex], types: &'a [NameId], count: u32) -> SendRequest<'a> {
    SendRequest {
        sender: None,
        cause: None,
        inherited_correlation: None,
        explicit_causation: None,
        explicit_correlation: None,
        alias: None,
        targets: Targets::Nodes(targets),
        types,
        count,
    }
}

fn collect(
    core: &mut Core,
    request: &SendRequest,
) -> (Dispatched, Vec<(NodeIndex, Vec<HandlerId>)>) {
    let mut seen = Vec::new();
    let d = core.dispatch(request, |node, plan| {
        seen.push((node, plan.iter().map(|p| p.0).collect()))
    });
    (d, seen)
}

#[test]
fn fan_out_is_one_event_with_a_branch_per_node() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    let b = core.create_node("b").unwrap();
    let ha = core.add_handler(a, Some("update"), "onUpdate").unwrap();
    let hb = core.add_handler(b, Some("*"), "anything").unwrap();
    let update = core.intern_type("update");
    let (d, seen) = collect(&mut core, &send(&[a, b], &[update], 1));
    assert_eq!(seen, vec![(a, vec![ha]), (b, vec![hb])]);
    assert_eq!(
        d.correlation,
        Correlation::Event(d.first_seq),
        "a root event correlates to itself"
    );
    let tree = core.trace(&core.format_id(d.first_seq)).unwrap().nested();
    let branches = tree["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 2);
    assert_eq!(branches[0]["node"], "a");
    assert_eq!(branches[0]["steps"][0]["name"], "onUpdate");
    assert_eq!(branches[0]["outcome"], "running");
}

#[test]
fn unmatched_targets_get_an_empty_plan_and_an_unmatched_branch() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    core.add_handler(a, Some("order.*"), "h").unwrap();
    let t = core.intern_type("payment.created");
    let (d, seen) = collect(&mut core, &send(&[a], &[t], 1));
    assert_eq!(seen, vec![(a, vec![])]);
    let tree = core.trace(&core.format_id(d.first_seq)).unwrap().nested();
    assert_eq!(tree["branches"][0]["outcome"], "unmatched");
}

#[test]
fn events_sent_from_a_flow_inherit_correlation_and_appear_under_its_branch() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    let b = core.create_node("b").unwrap();
    core.add_handler(a, Some("start"), "start").unwrap();
    core.add_handler(b, Some("next"), "next").unwrap();
    let start = core.intern_type("start");
    let next = core.intern_type("next");
    let (root, _) = collect(&mut core, &send(&[a], &[start], 1));
    let (targets, types) = ([b], [next]);
    let mut child = send(&targets, &types, 1);
    child.sender = Some(a);
    child.cause = Some((root.first_seq, Some(root.first_branch)));
    let (caused, _) = collect(&mut core, &child);
    assert_eq!(caused.correlation, Correlation::Event(root.first_seq));
    let after = core.intern_step("after");
    core.add_step(root.first_branch, after);
    core.finish_branch(root.first_branch, Outcome::Fulfilled, 1.5, None);

    let root_id = core.format_id(root.first_seq);
    let trace = core.trace(&root_id).unwrap();
    let tree = trace.nested();
    let branch = &tree["branches"][0];
    assert_eq!(branch["outcome"], "fulfilled");
    assert_eq!(branch["duration"], 1.5);
    assert_eq!(branch["steps"][1]["name"], "after");
    let sent = &branch["children"][0];
    assert_eq!(sent["type"], "next");
    assert_eq!(sent["sender"], "a");
    assert_eq!(sent["causationId"], root_id.as_str());
    assert_eq!(sent["correlationId"], root_id.as_str());

    let text = trace.text();
    assert!(text.starts_with(&format!("start {root_id}")), "{text}");
    assert!(
        text.contains("-> a [start > after] fulfilled 1.5ms"),
        "{text}"
    );
    assert!(text.contains("next "), "{text}");
}

#[test]
fn a_batch_takes_consecutive_ids_and_matches_handlers_that_accept_every_event() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    let only_points = core.add_handler(a, Some("data-point"), "points").unwrap();
    let all = core.add_handler(a, Some("*"), "all").unwrap();
    let point = core.intern_type("data-point");
    let other = core.intern_type("other");
    let (uniform, seen) = collect(&mut core, &send(&[a], &[point], 3));
    assert_eq!(seen, vec![(a, vec![only_points, all])]);
    let (mixed, seen) = collect(&mut core, &send(&[a], &[point, other, point], 3));
    assert_eq!(seen, vec![(a, vec![all])]);
    assert_eq!(mixed.first_seq, uniform.first_seq + 3);
    let member = core.format_id(uniform.first_seq + 2);
    let tree = core.trace(&member).unwrap().nested();
    assert_eq!(tree["batch"]["size"], 3);
    assert_eq!(tree["batch"]["ids"][2], member.as_str());
}

#[test]
fn explicit_ids_win_and_foreign_correlations_can_be_traced() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    let t = core.intern_type("t");
    let (targets, types) = ([a], [t]);
    let mut request = send(&targets, &types, 1);
    request.explicit_causation = Some("upstream-42");
    request.explicit_correlation = Some(IdRef::Text("checkout-7"));
    let (d, _) = collect(&mut core, &request);
    assert_eq!(d.correlation, Correlation::External("checkout-7".into()));
    let tree = core.trace("checkout-7").unwrap().nested();
    assert_eq!(tree["causationId"], "upstream-42");
    assert!(core.trace("nothing-like-it").is_none());
}

#[test]
fn broadcast_reaches_every_live_node() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    let b = core.create_node("b").unwrap();
    let c = core.create_node("c").unwrap();
    core.dispose_node(b).unwrap();
    let t = core.intern_type("t");
    let types = [t];
    let mut request = send(&[], &types, 1);
    request.targets = Targets::Everyone;
    let (_, seen) = collect(&mut core, &request);
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![a, c]);
}

#[test]
fn history_stays_bounded_under_endless_traffic() {
    let mut core = Core::new(50);
    let a = core.create_node("a").unwrap();
    core.add_handler(a, Some("t"), "h").unwrap();
    let t = core.intern_type("t");
    let mut first = None;
    for _ in 0..10_000 {
        let (d, _) = collect(&mut core, &send(&[a], &[t], 1));
        first.get_or_insert(d.first_seq);
    }
    assert_eq!(core.history().events_held(), 50);
    assert!(core.trace(&core.format_id(first.unwrap())).is_none());
}

/// Whatever numbers reach the core (the binding casts JS doubles: NaN becomes 0,
/// negatives 0, huge values the maximum), no call panics, and the history stays readable.
#[test]
fn malformed_requests_never_panic() {
    let mut core = Core::new(4);
    let a = core.create_node("a").unwrap();
    core.add_handler(a, Some("x"), "h").unwrap();
    let x = core.intern_type("x");
    // No types at all, a count of zero, unknown nodes and unknown type ids.
    collect(&mut core, &send(&[a], &[], 0));
    collect(&mut core, &send(&[a, 7, u32::MAX], &[x, 999], 2));
    collect(&mut core, &send(&[], &[u32::MAX], 1));
    // Unknown branches, steps, events, and ids that only look like ours.
    core.add_step(u64::MAX, u32::MAX);
    core.finish_branch(0, Outcome::Rejected, f64::NAN, Some("boom"));
    core.finish_branch(u64::MAX, Outcome::Fulfilled, -1.0, None);
    core.set_event_ids(0, Some("up"), None);
    core.set_event_ids(u64::MAX, None, Some(IdRef::Text("corr")));
    assert!(core.dispose_node(99).is_err());
    assert!(core.remove_handler(u32::MAX).is_err());
    for id in [
        String::new(),
        "-".into(),
        format!("{}-", core.id_prefix()),
        format!("{}-0", core.id_prefix()),
        format!("{}-18446744073709551615", core.id_prefix()),
        format!("{}-99999999999999999999999", core.id_prefix()),
        format!("{}--1", core.id_prefix()),
    ] {
        let _ = core.trace(&id);
    }
    // Every delivery the history still holds renders.
    for seq in 1..6 {
        if let Some(tree) = core.trace(&core.format_id(seq)) {
            let _ = tree.text();
            let _ = tree.to_wire();
        }
    }
}

#[test]
fn a_remote_node_is_a_target_without_handlers_whose_branch_runs_until_finished() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    let r = core.create_remote_node("far").unwrap();
    assert!(core.is_remote(r) && !core.is_remote(a));
    assert!(
        core.add_handler(r, Some("*"), "h").is_err(),
        "handlers live in the remote process"
    );
    let ha = core.add_handler(a, Some("*"), "onA").unwrap();
    let t = core.intern_type("t");
    let (d, seen) = collect(&mut core, &send(&[a, r], &[t], 1));
    assert_eq!(seen, vec![(a, vec![ha]), (r, vec![])]);
    let id = core.format_id(d.first_seq);
    assert_eq!(
        core.trace(&id).unwrap().nested()["branches"][1]["outcome"],
        "running"
    );
    core.add_remote_steps(d.first_branch + 1, &["remoteHandler".into(), "next".into()]);
    core.finish_branch(d.first_branch + 1, Outcome::Fulfilled, 3.0, None);
    let tree = core.trace(&id).unwrap().nested();
    assert_eq!(tree["branches"][1]["outcome"], "fulfilled");
    assert_eq!(tree["branches"][1]["steps"][1]["name"], "next");
    assert_eq!(core.branch_steps(d.first_branch), vec!["onA".to_string()]);
    assert_eq!(
        core.branch_steps(d.first_branch + 1),
        vec!["remoteHandler".to_string(), "next".to_string()]
    );
}

#[test]
fn an_event_from_another_process_is_traced_under_its_own_id() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    core.add_handler(a, Some("*"), "onA").unwrap();
    let t = core.intern_type("t");
    let (targets, types) = ([a], [t]);
    // A root event there: its correlation is its own id, which the alias and the correlation share.
    let inbound = SendRequest {
        alias: Some(IdRef::Text("far-9")),
        explicit_correlation: Some(IdRef::Text("far-9")),
        ..send(&targets, &types, 1)
    };
    let (d, _) = collect(&mut core, &inbound);
    let child = SendRequest {
        cause: Some((d.first_seq, Some(d.first_branch))),
        ..send(&targets, &types, 1)
    };
    core.dispatch(&child, |_, _| {});
    let tree = core.trace("far-9").unwrap().nested();
    assert_eq!(tree["id"], "far-9");
    assert_eq!(tree["correlationId"], "far-9");
    let child = &tree["branches"][0]["children"][0];
    assert_eq!(child["causationId"], "far-9");
    assert_eq!(child["correlationId"], "far-9");
}

#[test]
fn an_event_from_another_process_named_by_numbers_is_traced_under_its_id_there() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    core.add_handler(a, Some("*"), "onA").unwrap();
    let t = core.intern_type("t");
    let (targets, types) = ([a], [t]);
    // Correlated with an event of "far" and passed on by another runtime, "near": one before
    // "far"'s prefix is known here (held as text), one after (held as numbers).
    let relayed = |alias| SendRequest {
        alias: Some(IdRef::Text(alias)),
        explicit_correlation: Some(IdRef::Text("far-1")),
        ..send(&targets, &types, 1)
    };
    collect(&mut core, &relayed("near-3"));
    let far = core.intern_foreign_prefix("far");
    let id = IdRef::Foreign(ForeignId {
        prefix: far,
        seq: 9,
    });
    let (d, _) = collect(
        &mut core,
        &SendRequest {
            alias: Some(id),
            explicit_correlation: Some(id),
            ..send(&targets, &types, 1)
        },
    );
    let held = core.history().find_event(d.first_seq).unwrap();
    assert_eq!(
        held.correlation(),
        Correlation::Foreign(ForeignId {
            prefix: far,
            seq: 9
        })
    );
    let child = SendRequest {
        cause: Some((d.first_seq, Some(d.first_branch))),
        ..send(&targets, &types, 1)
    };
    core.dispatch(&child, |_, _| {});
    assert_eq!(
        core.event_correlation_id(d.first_seq + 1).as_deref(),
        Some("far-9")
    );

    let tree = core.trace("far-9").unwrap().nested();
    assert_eq!(
        tree["id"], "far-9",
        "found by its id there, both forms of it"
    );
    assert_eq!(tree["correlationId"], "far-9");
    assert_eq!(tree["branches"][0]["children"][0]["causationId"], "far-9");

    collect(&mut core, &relayed("near-4"));
    let held = core.history().deliveries().last().unwrap();
    assert_eq!(
        held.correlation(),
        Correlation::Foreign(ForeignId {
            prefix: far,
            seq: 1
        })
    );
    let correlated = core.trace("far-1").unwrap();
    assert_eq!(
        correlated.roots.len(),
        2,
        "one correlation, held in either form"
    );
    assert_eq!(core.trace("near-3").unwrap().nested()["id"], "near-3");
}

#[test]
fn a_batch_members_own_ids_apply_to_that_member_only() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    let t = core.intern_type("t");
    let (targets, types) = ([a], [t]);
    for (causation, correlation) in [(Some("cause-0"), None), (None, Some("corr-0"))] {
        let mut request = send(&targets, &types, 3);
        request.explicit_causation = causation;
        request.explicit_correlation = correlation.map(IdRef::Text);
        let (d, _) = collect(&mut core, &request);
        let held = core.history().find_event(d.first_seq).unwrap().clone();
        let (cause0, correlation0) = held.causality(0);
        match causation {
            Some(id) => assert_eq!(cause0, Cause::External(id.into())),
            None => assert_eq!(cause0, Cause::Root),
        }
        match correlation {
            Some(id) => assert_eq!(correlation0, Correlation::External(id.into())),
            None => assert_eq!(correlation0, Correlation::Event(d.first_seq)),
        }
        for i in 1..3u32 {
            assert_eq!(
                held.causality(i),
                (Cause::Root, Correlation::Event(d.first_seq + i as u64)),
                "member {i} names no ids: a root of its own"
            );
        }
    }
}

#[test]
fn a_batch_from_a_flow_whose_first_member_names_ids_leaves_the_others_caused_by_the_flow() {
    let mut core = Core::new(100);
    let a = core.create_node("a").unwrap();
    let t = core.intern_type("t");
    let (targets, types) = ([a], [t]);
    let (root, _) = collect(&mut core, &send(&targets, &types, 1));
    let mut request = send(&targets, &types, 2);
    request.cause = Some((root.first_seq, Some(root.first_branch)));
    request.explicit_causation = Some("elsewhere");
    let (d, _) = collect(&mut core, &request);
    let held = core.history().find_event(d.first_seq).unwrap().clone();
    assert_eq!(held.causality(0).0, Cause::External("elsewhere".into()));
    assert_eq!(
        held.causality(1),
        (
            Cause::Event {
                seq: root.first_seq,
                branch: Some(root.first_branch)
            },
            Correlation::Event(root.first_seq)
        )
    );
}

#[test]
fn a_chain_of_ten_thousand_hops_is_traced_whole() {
    let mut core = Core::new(30_000);
    let a = core.create_node("a").unwrap();
    let b = core.create_node("b").unwrap();
    core.add_handler(a, Some("*"), "onA").unwrap();
    core.add_handler(b, Some("*"), "onB").unwrap();
    let t = core.intern_type("ping");
    let types = [t];
    let (ta, tb) = ([a], [b]);
    let (first, _) = collect(&mut core, &send(&ta, &types, 1));
    let mut last = first.clone();
    for hop in 0..10_000 {
        let targets: &[NodeIndex] = if hop % 2 == 0 { &tb } else { &ta };
        let request = SendRequest {
            cause: Some((last.first_seq, Some(last.first_branch))),
            ..send(targets, &types, 1)
        };
        last = collect(&mut core, &request).0;
    }
    let root = core.format_id(first.first_seq);
    {
        let tree = core.trace(&root).unwrap();
        assert_eq!(tree.events.len(), 10_001);
        let mut depth = 0;
        let mut at = tree.roots[0];
        while let Some(&next) = tree.events[at].branch_children[0].first() {
            at = next;
            depth += 1;
        }
        assert_eq!(depth, 10_000);
        assert_eq!(tree.events[at].fields["id"], core.format_id(last.first_seq));
        let text = tree.text();
        assert_eq!(
            text.lines().count(),
            20_002,
            "one line per event and per branch"
        );
        assert!(
            text.len() < 4_000_000,
            "text grows with the events, not depth squared"
        );
        assert!(text.contains("[depth 9999] "));
        let wire = tree.to_wire();
        assert!(wire.len() > 10_000);
    }
}
