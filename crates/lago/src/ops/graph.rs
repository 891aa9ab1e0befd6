//! The picture of an environment: its topology as Graphviz DOT (`lago status -f dot`), and that
//! text rendered by Graphviz's `dot` (`lago graph`).
//!
//! The picture is drawn from the status with lago's additions ([`status`](super::status::status)
//! with `extra`), nothing being looked up again: networks (gateway, management, up or down),
//! VMs (their state by colour), one edge per NIC with its address, the host's legs on `nat`
//! networks and the ports forwarded to it, and the faults in force: a cut link (red, dashed), a
//! degraded one (orange, with how), a partitioned network (a red frame holding one segment per
//! group, each VM's NIC on its group's segment).

use std::fmt::Write;

use serde_json::Value;

use super::status::{NetStatus, Status, VmStatus};
use crate::host::process::{CommandRunner, Invocation, ProcessError};
use crate::provider::VmState;

/// Why a picture could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Graphviz's `dot` is not installed.
    #[error("Graphviz's `dot` is not installed: `lago graph` renders the picture with it")]
    DotMissing,
    /// The format asked for is not one `lago graph` renders.
    #[error("Cannot render {format:?} (formats: {})", FORMATS.join(", "))]
    Format {
        /// The format (an output file's extension).
        format: String,
    },
    /// `dot` failed.
    #[error("Graphviz's `dot` could not render the picture")]
    Dot {
        /// Why.
        #[source]
        source: ProcessError,
    },
}

/// The formats `lago graph` renders (Graphviz's `-T`).
pub const FORMATS: &[&str] = &["svg", "png", "pdf", "dot"];

/// The program that renders.
pub const DOT: &str = "dot";

/// The colour of a VM in a state, and the state's name in the legend.
fn state_colour(state: &VmState) -> &'static str {
    match state {
        VmState::Running => "#b7e4b0",
        VmState::Down => "#e2e2e2",
        VmState::Paused => "#fde9a9",
        VmState::Other(_) => "#f4b6b0",
    }
}

const NET_UP: &str = "#cfe0fc";
const NET_DOWN: &str = "#f2f5fa";
const CUT: &str = "#d62728";
const DEGRADED: &str = "#e8820c";
const HOST: &str = "#3a6fb0";

/// `text` as a DOT quoted string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` for an HTML-like label.
fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The node of network `net` a NIC of `vm` is on: the network's own, or, when it is
/// partitioned, the segment of `vm`'s group.
fn net_node(net: &str, status: Option<&NetStatus>, vm: &str) -> String {
    match status.and_then(|s| s.partition.as_ref()) {
        Some(p) => {
            let group = p.0.iter().position(|g| g.iter().any(|v| v == vm)).unwrap_or(p.0.len());
            format!("net:{net}:{group}")
        }
        None => format!("net:{net}"),
    }
}

/// The segments of a partitioned network: its groups, then the VMs of the network in no group,
/// which form one more group with the host's leg (a segment of the leg alone when every VM is in
/// a group and the leg is there).
fn segments(status: &Status, net: &str, ns: &NetStatus) -> Vec<Vec<String>> {
    let Some(partition) = &ns.partition else { return Vec::new() };
    let mut groups = partition.0.clone();
    let rest: Vec<String> = status
        .prefix
        .vms
        .iter()
        .filter(|(_, vm)| vm.nics.iter().any(|(_, n)| n.network == net))
        .map(|(v, _)| v.clone())
        .filter(|v| !partition.0.iter().flatten().any(|g| g == v))
        .collect();
    if !rest.is_empty() || has_leg(ns) {
        groups.push(rest);
    }
    groups
}

/// Whether the host has a leg on the network (up, or gone with its switch).
fn has_leg(ns: &NetStatus) -> bool {
    ns.host_leg.as_ref().is_some_and(|l| !l.starts_with("off"))
}

/// The environment of `status` as a Graphviz graph (undirected, left to right). `status` should
/// be the one with lago's additions, for the faults, host legs and forwards.
pub fn dot(status: &Status) -> String {
    let p = &status.prefix;
    let name = std::path::Path::new(&p.base_directory)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.base_directory.clone());
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("// lago status -f dot: the environment of prefix {}", p.base_directory));
    line("graph lago {".into());
    line(format!(
        "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, nodesep=0.35, ranksep=1.1, labelloc=t, label={}];",
        quoted(&format!("prefix {name} ({})", p.uuid))
    ));
    line("  node [fontname=\"Helvetica\", fontsize=11];".into());
    line("  edge [fontname=\"Helvetica\", fontsize=9];".into());

    // Networks: one node, or a frame of one segment per group when partitioned.
    for (net, ns) in &p.networks {
        let mut words = vec![net.clone()];
        let mut facts = Vec::new();
        if let Some(gw) = scalar(&ns.gateway) {
            facts.push(format!("gw {gw}"));
        }
        if let Some(prefix) = ns.ipv6.as_ref().and_then(scalar) {
            facts.push(prefix);
        }
        if let Some(gw6) = ns.gateway6.as_ref().and_then(scalar) {
            facts.push(format!("gw6 {gw6}"));
        }
        if ns.management {
            facts.push("management".into());
        }
        if !facts.is_empty() {
            words.push(facts.join(" · "));
        }
        words.push(ns.status.to_owned());
        let (fill, style) = if ns.status == "up" { (NET_UP, "filled") } else { (NET_DOWN, "filled,dashed") };
        match &ns.partition {
            None => line(format!(
                "  {} [shape=ellipse, style={style:?}, fillcolor={fill:?}, label={}];",
                quoted(&format!("net:{net}")),
                quoted(&words.join("\n"))
            )),
            Some(partition) => {
                let groups = segments(status, net, ns);
                line(format!("  subgraph {} {{", quoted(&format!("cluster_net_{net}"))));
                line(format!(
                    "    graph [style=\"rounded,dashed\", color={CUT:?}, penwidth=2, fontcolor={CUT:?}, label={}];",
                    quoted(&format!("{} · partitioned: {partition}", words.join(" · ")))
                ));
                for (i, group) in groups.iter().enumerate() {
                    line(format!(
                        "    {} [shape=ellipse, style={style:?}, fillcolor={fill:?}, label={}];",
                        quoted(&format!("net:{net}:{i}")),
                        quoted(&format!(
                            "{net} · segment {}\n{}",
                            i + 1,
                            if group.is_empty() { "the host alone".to_owned() } else { group.join(", ") }
                        ))
                    ));
                }
                line("  }".into());
            }
        }
    }

    // VMs, coloured by state.
    for (vm, vs) in &p.vms {
        let mut words = vec![vm.clone()];
        let state = match scalar(&vs.distro) {
            Some(distro) => format!("{} · {distro}", vs.status),
            None => vs.status.to_string(),
        };
        words.push(state);
        if vs.clock.is_some() {
            words.push("clock not set after revert".into());
        }
        line(format!(
            "  {} [shape=box, style=\"rounded,filled\", fillcolor={:?}, label={}];",
            quoted(&format!("vm:{vm}")),
            state_colour(&vs.status),
            quoted(&words.join("\n"))
        ));
    }

    // NICs: one edge each, with its address and the faults on it.
    for (vm, vs) in &p.vms {
        for (nic, ns) in &vs.nics {
            let mut label = nic.clone();
            if let Some(ip) = scalar(&ns.ip) {
                label.push(' ');
                label.push_str(&ip);
            }
            if let Some(ip6) = ns.ip6.as_ref().and_then(scalar) {
                label.push(' ');
                label.push_str(&ip6);
            }
            let mut attrs = Vec::new();
            if ns.link.is_some() {
                label.push_str("\ncut");
                attrs.push(format!("color={CUT:?}, fontcolor={CUT:?}, style=dashed, penwidth=2"));
            }
            if let Some(how) = &ns.degraded {
                label.push('\n');
                label.push_str(how);
                if ns.link.is_none() {
                    attrs.push(format!("color={DEGRADED:?}, fontcolor={DEGRADED:?}, penwidth=2"));
                }
            }
            attrs.insert(0, format!("label={}", quoted(&label)));
            let to = net_node(&ns.network, p.networks.iter().find(|(n, _)| *n == ns.network).map(|(_, s)| s), vm);
            line(format!("  {} -- {} [{}];", quoted(&format!("vm:{vm}")), quoted(&to), attrs.join(", ")));
        }
    }

    // The host: its legs on networks, the ports forwarded to it.
    let legs: Vec<(&String, &NetStatus, &String)> = p
        .networks
        .iter()
        .filter(|(_, s)| has_leg(s))
        .filter_map(|(n, s)| s.host_leg.as_ref().map(|l| (n, s, l)))
        .collect();
    let forwards: Vec<(&String, &VmStatus)> =
        p.vms.iter().filter(|(_, v)| v.forwards.is_some()).map(|(n, v)| (n, v)).collect();
    if !legs.is_empty() || !forwards.is_empty() {
        line(format!(
            "  host [shape=house, style=filled, fillcolor=\"#ffffff\", color={HOST:?}, fontcolor={HOST:?}, label=\"this host\"];"
        ));
    }
    for (net, ns, leg) in &legs {
        let down = leg.starts_with("down");
        let label = if down { "host leg down".to_owned() } else { format!("host leg\n{}", leg.replacen(' ', "\n", 1)) };
        let style = if down { "dashed" } else { "bold" };
        // On a partitioned network, the leg is in the group of the VMs named in no group: the
        // last segment.
        let to = match segments(status, net, ns).len() {
            0 => format!("net:{net}"),
            n => format!("net:{net}:{}", n - 1),
        };
        line(format!(
            "  host -- {} [color={HOST:?}, fontcolor={HOST:?}, style={style}, label={}];",
            quoted(&to),
            quoted(&label)
        ));
    }
    for (vm, vs) in &forwards {
        for (host, guest) in vs.forwards.iter().flat_map(|f| f.0.iter()) {
            line(format!(
                "  host -- {} [color={HOST:?}, fontcolor={HOST:?}, style=dotted, label={}];",
                quoted(&format!("vm:{vm}")),
                quoted(&format!("{}:{host} → {guest}", super::forward::FORWARD_ADDRESS))
            ));
        }
    }

    // The legend: what the colours and lines of this picture mean.
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut states: Vec<&VmState> = Vec::new();
    for (_, vs) in &p.vms {
        if !states.contains(&&vs.status) {
            states.push(&vs.status);
        }
    }
    for state in states {
        rows.push((format!("<td bgcolor=\"{}\">    </td>", state_colour(state)), format!("VM {state}")));
    }
    let nics = || p.vms.iter().flat_map(|(_, v)| v.nics.iter().map(|(_, n)| n));
    if nics().any(|n| n.link.is_some()) {
        rows.push((format!("<td><font color=\"{CUT}\">- - -</font></td>"), "link cut".into()));
    }
    if nics().any(|n| n.degraded.is_some()) {
        rows.push((format!("<td><font color=\"{DEGRADED}\">———</font></td>"), "link degraded".into()));
    }
    if p.networks.iter().any(|(_, n)| n.partition.is_some()) {
        rows.push((format!("<td><font color=\"{CUT}\">[ ]</font></td>"), "network partitioned".into()));
    }
    if !legs.is_empty() {
        rows.push((format!("<td><font color=\"{HOST}\">━━━</font></td>"), "host leg".into()));
    }
    if !forwards.is_empty() {
        rows.push((format!("<td><font color=\"{HOST}\">·····</font></td>"), "port forwarded to the host".into()));
    }
    let mut table = String::from("<table border=\"0\" cellborder=\"0\" cellspacing=\"2\">");
    for (sample, what) in rows {
        let _ = write!(table, "<tr>{sample}<td align=\"left\">{}</td></tr>", html(&what));
    }
    table.push_str("</table>");
    line(format!("  legend [shape=plain, fontsize=9, label=<{table}>];"));
    line("}".into());
    out
}

/// Renders DOT text in `format` (one of [`FORMATS`]) with Graphviz's `dot`.
pub fn render(runner: &dyn CommandRunner, dot_text: &str, format: &str) -> Result<Vec<u8>, GraphError> {
    if !FORMATS.contains(&format) {
        return Err(GraphError::Format { format: format.to_owned() });
    }
    if format == "dot" {
        return Ok(dot_text.as_bytes().to_vec());
    }
    if crate::host::process::locate(DOT).is_none() {
        return Err(GraphError::DotMissing);
    }
    let inv = Invocation::new(DOT).arg(format!("-T{format}")).input(dot_text.as_bytes().to_vec());
    runner.run(&inv).map(|out| out.stdout).map_err(|source| GraphError::Dot { source })
}

/// The format of an output file, from its extension (`picture.svg` is `svg`).
pub fn format_of(path: &std::path::Path) -> Result<&'static str, GraphError> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    FORMATS.iter().find(|f| **f == ext).copied().ok_or(GraphError::Format { format: ext })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ops::status::{Forwards, NicStatus, Partition, PrefixStatus};

    fn nic(net: &str, ip: &str) -> NicStatus {
        NicStatus { network: net.into(), ip: json!(ip), ip6: None, link: None, degraded: None }
    }

    fn vm(state: VmState, nics: Vec<NicStatus>) -> VmStatus {
        VmStatus {
            distro: json!("tiny"),
            root_password: json!("123456"),
            status: state,
            snapshots: String::new(),
            metadata: json!({}),
            nics: nics.into_iter().enumerate().map(|(i, n)| (format!("eth{i}"), n)).collect(),
            clock: None,
            forwards: None,
            memory: None,
            reached_at: None,
        }
    }

    fn net(gw: &str, management: bool) -> NetStatus {
        NetStatus {
            gateway: json!(gw),
            status: "up",
            management,
            ipv6: None,
            gateway6: None,
            partition: None,
            libvirt_name: None,
            host_leg: None,
        }
    }

    /// The demo's environment, running, with every fault and addition a picture shows.
    fn demo() -> Status {
        let mut front = net("192.168.200.1", true);
        front.partition = Some(Partition(vec![vec!["web".into()], vec!["app".into(), "db".into()]]));
        front.host_leg = Some("3f2a-front 192.168.200.1/24".into());
        let mut back = net("192.168.201.1", false);
        back.host_leg = Some("off: lago runs without root or CAP_NET_ADMIN".into());
        let mut web = vm(VmState::Running, vec![nic("front", "192.168.200.2")]);
        web.forwards = Some(Forwards(vec![(40123, 8080)]));
        let mut app = vm(VmState::Paused, vec![nic("front", "192.168.200.3"), nic("back", "192.168.201.10")]);
        app.nics[1].1.degraded = Some("delay 200 ms, loss 5 %".into());
        let mut db = vm(VmState::Down, vec![nic("front", "192.168.200.4"), nic("back", "192.168.201.2")]);
        db.nics[1].1.link = Some("cut");
        db.clock = Some("not set after the last revert: no guest agent answered".into());
        Status {
            prefix: PrefixStatus {
                base_directory: "/w/.lago/default".into(),
                uuid: "0123456789abcdef0123456789abcdef".into(),
                networks: vec![("front".into(), front), ("back".into(), back)],
                vms: vec![("web".into(), web), ("app".into(), app), ("db".into(), db)],
                fork: None,
            },
        }
    }

    #[test]
    fn the_picture_shows_states_addresses_faults_legs_and_forwards() {
        insta::assert_snapshot!(dot(&demo()));
    }

    /// A network with IPv6 shows its prefix and IPv6 gateway; a NIC its IPv6 address beside
    /// its IPv4 one, or alone on an IPv6-only network.
    #[test]
    fn the_picture_shows_ipv6_prefixes_and_addresses() {
        let mut status = demo();
        let (_, front) = &mut status.prefix.networks[0];
        front.ipv6 = Some(json!("fd8f:1:2::/64"));
        front.gateway6 = Some(json!("fd8f:1:2::1"));
        let (_, web) = &mut status.prefix.vms[0];
        web.nics[0].1.ip6 = Some(json!("fd8f:1:2::2"));
        let (_, db) = &mut status.prefix.vms[2];
        db.nics[1].1.ip = json!("");
        db.nics[1].1.ip6 = Some(json!("fd8f:1:6::2"));
        let picture = dot(&status);
        assert!(picture.contains("gw 192.168.200.1 · fd8f:1:2::/64 · gw6 fd8f:1:2::1"), "{picture}");
        assert!(picture.contains("eth0 192.168.200.2 fd8f:1:2::2"), "{picture}");
        assert!(picture.contains("eth1 fd8f:1:6::2"), "{picture}");
    }

    #[test]
    fn an_environment_without_additions_has_no_host_and_a_plain_legend() {
        let mut status = demo();
        for (_, n) in &mut status.prefix.networks {
            n.partition = None;
            n.host_leg = None;
        }
        for (_, v) in &mut status.prefix.vms {
            v.forwards = None;
            v.status = VmState::Down;
            for (_, n) in &mut v.nics {
                n.link = None;
                n.degraded = None;
            }
        }
        let text = dot(&status);
        assert!(!text.contains("host"), "{text}");
        assert!(!text.contains("cluster"), "{text}");
        assert!(text.contains("\"vm:db\" -- \"net:back\" [label=\"eth1 192.168.201.2\"];"), "{text}");
        assert!(text.contains("VM down"), "{text}");
    }

    #[test]
    fn quoting_and_formats() {
        assert_eq!(quoted("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        assert_eq!(format_of(std::path::Path::new("x/pic.SVG")).unwrap(), "svg");
        assert!(matches!(format_of(std::path::Path::new("pic.gif")), Err(GraphError::Format { .. })));
        let runner = crate::host::process::FakeRunner::new(|_| panic!("dot is not run for the dot format"));
        assert_eq!(render(&runner, "graph {}", "dot").unwrap(), b"graph {}");
    }
}
