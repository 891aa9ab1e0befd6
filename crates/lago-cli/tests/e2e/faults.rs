//! Faults on demand on a `local-qemu` network: cut and restore a link, partition and heal, degrade
//! a link, all seen from inside the VMs.

use crate::lab::Lab;

pub const THREE: &str = "\
base: &base {memory: 256, vcpu: 1, disks: [{template_name: tiny, type: template, name: root}]}
domains:
  vm01: {<<: *base, nics: [{net: lago}]}
  vm02: {<<: *base, nics: [{net: lago}]}
  vm03: {<<: *base, nics: [{net: lago}]}
nets:
  lago: {management: true}
";

pub fn pings(lab: &Lab, from: &str, to: &str) -> bool {
    lab.shell(from, &format!("ping -c 1 -W 2 {to} >/dev/null && echo ok")).1 == "ok"
}

/// Whether a ping gets through within 5 tries (a guest takes a moment to see its carrier back).
pub fn pings_again(lab: &Lab, from: &str, to: &str) -> bool {
    (0..5).any(|_| pings(lab, from, to))
}

/// Minimum and average round trip from `from` to `to`, ms (10 pings).
fn rtt(lab: &Lab, from: &str, to: &str) -> (f64, f64) {
    let out = lab.shell(from, &format!("ping -q -c 10 -i 0.2 {to} | tail -1")).1;
    // round-trip min/avg/max = 0.447/0.685/1.143 ms
    let field = |i: usize| -> f64 {
        out.split('=')
            .nth(1)
            .and_then(|v| v.trim().split('/').nth(i))
            .and_then(|a| a.trim_end_matches(" ms").parse().ok())
            .unwrap_or_else(|| panic!("no round trip in {out:?}"))
    };
    (field(0), field(1))
}

/// Percent of 100 pings lost.
fn loss(lab: &Lab, from: &str, to: &str) -> u32 {
    let out = lab.shell(from, &format!("ping -q -c 100 -i 0.05 -W 1 {to} | grep loss")).1;
    // 100 packets transmitted, 72 packets received, 28% packet loss
    out.split(", ")
        .find(|p| p.ends_with("packet loss"))
        .and_then(|p| p.trim_end_matches("% packet loss").parse().ok())
        .unwrap_or_else(|| panic!("no loss in {out:?}"))
}

#[test]
fn cut_restore_partition_heal_degrade() {
    let lab = Lab::new(THREE);
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    assert!(pings_again(&lab, "vm01", "vm03"));

    // A cut link: the guest loses its carrier, its peers lose it; the others still talk.
    lab.ok(&["net", "cut", "vm03"]);
    assert_eq!(lab.shell("vm03", "cat /sys/class/net/eth0/carrier").1, "0");
    assert!(!pings(&lab, "vm01", "vm03"));
    assert!(pings_again(&lab, "vm01", "vm02"));
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm03"]["NICs"]["eth0"]["link"], "cut");
    lab.ok(&["net", "restore", "vm03"]);
    assert_eq!(lab.shell("vm03", "cat /sys/class/net/eth0/carrier").1, "1");
    assert!(pings_again(&lab, "vm01", "vm03"));
    assert!(lab.status()["Prefix"]["VMs"]["vm03"]["NICs"]["eth0"].get("link").is_none());

    // A partition {vm01, vm02} | {vm03}: nothing crosses, in either direction, by name or address.
    lab.ok(&["net", "partition", "lago", "vm01,vm02", "vm03"]);
    assert!(pings_again(&lab, "vm01", "vm02") && pings_again(&lab, "vm02", "vm01"));
    assert!(!pings(&lab, "vm01", "vm03") && !pings(&lab, "vm03", "vm01") && !pings(&lab, "vm03", "192.168.200.3"));
    assert_eq!(lab.status()["Prefix"]["Networks"]["lago"]["partition"], "vm01,vm02 | vm03");
    // It survives a stop and start of vm03.
    lab.ok(&["stop", "vm03"]);
    lab.ok(&["start", "vm03"]);
    assert!(!pings(&lab, "vm01", "vm03") && !pings(&lab, "vm03", "vm02"));
    lab.ok(&["net", "heal", "lago"]);
    assert!(pings_again(&lab, "vm01", "vm03") && pings_again(&lab, "vm03", "vm02"));
    assert!(lab.status()["Prefix"]["Networks"]["lago"].get("partition").is_none());

    // A degraded link: the round trip to vm02 grows by the delay; losses are seen both ways.
    let (base_min, base) = rtt(&lab, "vm01", "vm02");
    lab.ok(&["net", "degrade", "vm02", "lago", "--delay", "200"]);
    let (slow_min, slow) = rtt(&lab, "vm01", "vm02");
    eprintln!("round trip vm01 -> vm02: {base:.1} ms, degraded: {slow:.1} ms (averages of 10)");
    // Minimums: one late echo on a busy host moves an average, not the delay added to every frame.
    assert!((195.0..=260.0).contains(&(slow_min - base_min)), "min {base_min} -> {slow_min} (avg {base} -> {slow})");
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm02"]["NICs"]["eth0"]["degraded"], "delay 200 ms");
    lab.ok(&["net", "restore", "vm02"]);
    let (restored, _) = rtt(&lab, "vm01", "vm02");
    assert!(restored < base_min + 50.0, "{base_min} -> {restored}");
    lab.ok(&["net", "degrade", "vm02", "lago", "--loss", "15"]);
    let lost = loss(&lab, "vm01", "vm02");
    eprintln!("15 % loss each way: {lost} % of 100 pings lost");
    assert!((12..=45).contains(&lost), "{lost} %");
    lab.ok(&["net", "restore", "vm02"]);
    assert!(pings_again(&lab, "vm01", "vm02"));

    // Bad requests name what is wrong.
    let out = lab.lago(&["net", "partition", "nope", "vm01", "vm02"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown network \"nope\" (known: lago)"));
    let out = lab.lago(&["net", "partition", "lago", "vm01,vm02", "vm02"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VM vm02 is in two groups"));

    // A partitioned environment is destroyed without leftovers.
    lab.ok(&["net", "partition", "lago", "vm01", "vm02,vm03"]);
    let prefix = lab.home.path().join(".lago/default");
    lab.ok(&["destroy", "--yes"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(crate::env::processes_naming(&prefix), Vec::<String>::new());
}

/// Starts, on vm02 and vm03, a TCP server keeping the highest number it received in /tmp/last,
/// and on vm01 a sender of an increasing counter to both, every 50 ms, whose last value is in
/// /tmp/sent. (busybox's nc has no UDP: each number is one short TCP connection.)
pub fn start_counters(lab: &Lab) {
    for vm in ["vm02", "vm03"] {
        let script = r#"printf '#!/bin/sh\nread v\nold=$(cat /tmp/last 2>/dev/null || echo 0)\n[ "$v" -gt "$old" ] && echo $v > /tmp/last\n' > /tmp/recv; chmod +x /tmp/recv; setsid nc -ll -p 5000 -e /tmp/recv </dev/null >/dev/null 2>&1 & echo started"#;
        assert_eq!(lab.shell(vm, script).1, "started");
    }
    let sender = r#"printf '#!/bin/sh\necho $$ > /tmp/send.pid\ni=0\nwhile :; do i=$((i+1)); echo $i > /tmp/sent; echo $i | nc -w 1 vm02 5000; echo $i | nc -w 1 vm03 5000; usleep 50000; done\n' > /tmp/send; chmod +x /tmp/send; setsid /tmp/send </dev/null >/dev/null 2>&1 & echo started"#;
    assert_eq!(lab.shell("vm01", sender).1, "started");
}

/// Freezes the sender, then reads (sent, received by vm02, received by vm03).
pub fn counters(lab: &Lab) -> (i64, i64, i64) {
    let n = |(code, out): (i32, String)| -> i64 {
        out.trim().parse().unwrap_or_else(|_| panic!("not a number ({code}): {out:?}"))
    };
    let sent = n(lab.shell("vm01", "kill -STOP $(cat /tmp/send.pid) && cat /tmp/sent"));
    (sent, n(lab.shell("vm02", "cat /tmp/last")), n(lab.shell("vm03", "cat /tmp/last")))
}

/// The environment is snapshotted at one instant: after a revert, what each VM last received is
/// what vm01 had sent, give or take the number in flight.
pub fn snapshot_at_one_instant(lab: &Lab) {
    start_counters(lab);
    std::thread::sleep(std::time::Duration::from_secs(3));
    lab.ok(&["snapshot", "instant"]);
    let list: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-f", "json", "snapshot", "--list", "--extra"])).unwrap();
    let spread = list["vm01"]["instant"][0]["pause_spread_ms"].as_f64().unwrap();
    eprintln!("pause spread of 3 VMs: {spread} ms");
    std::thread::sleep(std::time::Duration::from_secs(3));
    lab.ok(&["revert", "instant"]);
    let (sent, got2, got3) = counters(lab);
    eprintln!("after the revert: sent {sent}, vm02 got {got2}, vm03 got {got3}");
    assert!(sent > 5, "the counter did not run: {sent}");
    assert!((0..=2).contains(&(sent - got2)) && (0..=2).contains(&(sent - got3)), "sent {sent}, got {got2} and {got3}");
}

#[test]
fn whole_environment_snapshot_at_one_instant() {
    let lab = Lab::new(THREE);
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    snapshot_at_one_instant(&lab);
    // tiny has no guest agent: the clocks could not be set, and status says so.
    let st = lab.status();
    assert_eq!(
        st["Prefix"]["VMs"]["vm02"]["clock"], "not set after the last revert: no guest agent runs in the VM",
        "{st}"
    );
    lab.ok(&["stop", "vm02"]);
    lab.ok(&["start", "vm02"]);
    assert!(lab.status()["Prefix"]["VMs"]["vm02"].get("clock").is_none());
}
