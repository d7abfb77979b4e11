//! Sites as Linux network namespaces, for the tests that place nodes in separate networks
//! (`three_sites_netns.rs`, `dr_netns.rs`): a namespace per site joined by a bridge in a `core`
//! namespace, one veth pair per site, and one from the test's own namespace to the bridge so
//! that the test reaches every node (`<subnet>.254`; site `i` is `<subnet>.<i + 1>`). A site is
//! cut off by its own packet filter, which drops every packet to and from the other sites
//! without a word, as a failed link or a firewall does; the test's own address still gets
//! through. Everything is made by the test and removed when the [`Network`] is dropped; nodes
//! run as real `paddock start` processes inside their site's namespace and are stopped by PID
//! ([`Nodes`]). Needs root, as `cargo xtask ci` has.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Runs a command that must succeed (an `ip` or `iptables` call setting the network up).
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The test's network: namespaces named after the test's tag and process, removed (with every
/// veth in them, and so their peers) when dropped.
pub struct Network {
    /// `<tag><pid>`: namespaces are `<prefix>-<site>`, veths `<prefix><site><0|1>` (a site's
    /// name is one letter, so a name stays within the kernel's 15 characters).
    prefix: String,
    subnet: String,
    sites: Vec<&'static str>,
}

/// The IPv4 networks this machine already routes (`ip -4 route`, every table), as (address,
/// prefix length); the default route is left out.
fn routed_networks() -> Vec<(u32, u32)> {
    let out = Command::new("ip").args(["-4", "route", "show", "table", "all"]).output().expect("ip route runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            // A line of a route type (`local 10.0.0.1 dev …`, `unreachable …`) names the
            // network second.
            let net = match words.first()? {
                &"local" | &"broadcast" | &"unicast" | &"anycast" | &"multicast" | &"unreachable" | &"blackhole"
                | &"prohibit" | &"throw" => words.get(1)?,
                first => first,
            };
            let (addr, len) = net.split_once('/').unwrap_or((net, "32"));
            let addr: std::net::Ipv4Addr = addr.parse().ok()?;
            Some((u32::from(addr), len.parse().ok()?))
        })
        .collect()
}

/// `preferred` (three octets, `10.203.N`) if no route of this machine as specific as a `/24`
/// falls in it, else the next `/24` of `10.203.0.0/16` where none does: the test's addresses
/// must never be another network's (a container network of the machine's, say), or its
/// packets would leave the machine. A wider route (`10.0.0.0/8` via a gateway) is no
/// obstacle: the test's own `/24` is the longer match.
fn free_subnet(preferred: &str) -> String {
    let routed = routed_networks();
    let third: u32 = preferred.strip_prefix("10.203.").and_then(|t| t.parse().ok()).expect("a subnet 10.203.N");
    (third..255)
        .map(|n| (0x0acb_0000u32 | (n << 8), n))
        .find(|(net, _)| routed.iter().all(|(addr, len)| *len < 24 || (addr & 0xffff_ff00) != *net))
        .map(|(_, n)| format!("10.203.{n}"))
        .unwrap_or_else(|| panic!("every /24 of 10.203.0.0/16 from {preferred} on is routed on this machine"))
}

impl Network {
    /// Makes the namespaces of `sites` (one letter each) on `subnet` (three octets, e.g.
    /// `10.203.77`; a test of its own each, as tests run at the same time), or on the next
    /// `/24` that this machine does not route yet.
    pub fn create(tag: &str, subnet: &str, sites: &[&'static str]) -> Network {
        // One letter, not `h` (the test's own veth): interface names are at most 15 characters.
        assert!(sites.iter().all(|s| s.len() == 1 && *s != "h"), "a site's name is one letter other than h");
        let subnet = free_subnet(subnet);
        let net = Network { prefix: format!("{tag}{}", std::process::id()), subnet, sites: sites.to_vec() };
        let core = net.ns("core");
        run("ip", &["netns", "add", &core]);
        run("ip", &["-n", &core, "link", "set", "lo", "up"]);
        run("ip", &["-n", &core, "link", "add", "br0", "type", "bridge"]);
        run("ip", &["-n", &core, "link", "set", "br0", "up"]);
        for site in sites {
            let ns = net.ns(site);
            let (inside, outside) = (format!("{}{site}0", net.prefix), format!("{}{site}1", net.prefix));
            run("ip", &["netns", "add", &ns]);
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
            run("ip", &["link", "add", &inside, "type", "veth", "peer", "name", &outside]);
            run("ip", &["link", "set", &inside, "netns", &ns]);
            run("ip", &["link", "set", &outside, "netns", &core]);
            run("ip", &["-n", &ns, "link", "set", &inside, "name", "eth0"]);
            run("ip", &["-n", &ns, "addr", "add", &format!("{}/24", net.site_ip(site)), "dev", "eth0"]);
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &core, "link", "set", &outside, "master", "br0", "up"]);
        }
        // This test's own way in, from the namespace it runs in.
        let (host, bridge_side) = (format!("{}h0", net.prefix), format!("{}h1", net.prefix));
        run("ip", &["link", "add", &host, "type", "veth", "peer", "name", &bridge_side]);
        run("ip", &["link", "set", &bridge_side, "netns", &core]);
        run("ip", &["-n", &core, "link", "set", &bridge_side, "master", "br0", "up"]);
        run("ip", &["addr", "add", &format!("{}/24", net.host()), "dev", &host]);
        run("ip", &["link", "set", &host, "up"]);
        net
    }

    /// A site's namespace.
    pub fn ns(&self, site: &str) -> String {
        format!("{}-{site}", self.prefix)
    }

    /// A site's address.
    pub fn site_ip(&self, site: &str) -> String {
        let index = self.sites.iter().position(|s| *s == site).unwrap_or_else(|| panic!("no site {site}"));
        format!("{}.{}", self.subnet, index + 1)
    }

    /// The test's own address on the bridge.
    pub fn host(&self) -> String {
        format!("{}.254", self.subnet)
    }

    /// Drops every packet between `site` and the other sites, both ways; the test's own address
    /// still gets through.
    pub fn cut(&self, site: &str) {
        let ns = self.ns(site);
        let (host, others) = (self.host(), format!("{}.0/24", self.subnet));
        for (chain, dir, addr) in [("INPUT", "-i", "-s"), ("OUTPUT", "-o", "-d")] {
            run("ip", &["netns", "exec", &ns, "iptables", "-A", chain, dir, "eth0", addr, &host, "-j", "ACCEPT"]);
            run("ip", &["netns", "exec", &ns, "iptables", "-A", chain, dir, "eth0", addr, &others, "-j", "DROP"]);
        }
    }

    /// Lifts [`Network::cut`].
    pub fn heal(&self, site: &str) {
        let ns = self.ns(site);
        for chain in ["INPUT", "OUTPUT"] {
            run("ip", &["netns", "exec", &ns, "iptables", "-F", chain]);
        }
    }

    /// Node `id`'s HTTP address in `site`.
    pub fn http(&self, site: &str, id: u64) -> String {
        format!("{}:{}", self.site_ip(site), 7000 + id)
    }

    /// Node `id`'s peer address in `site`.
    pub fn peer(&self, site: &str, id: u64) -> String {
        format!("{}:{}", self.site_ip(site), 7100 + id)
    }

    /// Starts node `id` (`paddock start`) inside `site`'s namespace on `data_dir`, at
    /// [`Network::http`] and [`Network::peer`], with the static keys of `keys_file` and
    /// `identity` (`--bootstrap …` or `--cluster-id …`), in plain HTTP (no TLS to set up in
    /// every namespace; the test's own network), its output appended to `log`.
    pub fn start_node(
        &self,
        site: &str,
        id: u64,
        data_dir: &Path,
        keys_file: &Path,
        identity: &[&str],
        log: &Path,
    ) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("a log file");
        Command::new("ip")
            .args(["netns", "exec", &self.ns(site)])
            .arg(env!("CARGO_BIN_EXE_paddock"))
            .arg("start")
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", &self.http(site, id), "--peer", &self.peer(site, id)])
            .arg("--static-keys")
            .arg(keys_file)
            .args(identity)
            .arg("--insecure-plaintext")
            .env("RUST_LOG", "info,openraft=warn,h2=warn,tower=warn,hyper=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .spawn()
            .expect("a node starts in its site's namespace")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // The test's own end of the bridge first: the kernel removes a namespace's devices
        // only once nothing holds it, so a veth pair would otherwise linger a moment.
        let _ = Command::new("ip").args(["link", "del", &format!("{}h0", self.prefix)]).status();
        for site in self.sites.iter().copied().chain(["core"]) {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(site)]).status();
        }
    }
}

/// Nodes by id, each stopped by PID (SIGKILL) when taken out or dropped — before the network
/// goes.
#[derive(Default)]
pub struct Nodes(pub std::collections::BTreeMap<u64, Child>);

impl Nodes {
    /// Kills node `id` (kill -9) and reaps it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.0.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops node `id` as an operator does (SIGTERM) and waits up to 30 s for it to exit;
    /// false if it had to be killed then.
    pub fn terminate(&mut self, id: u64) -> bool {
        let Some(mut child) = self.0.remove(&id) else { return true };
        // `ip netns exec` becomes the node (it execs, it does not fork), so the PID is the node's.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in self.0.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
