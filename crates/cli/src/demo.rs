//! `paddock demo`: a local 3-node cluster as three child processes, sample markets and
//! accounts, and a light betting flow — what a newcomer runs first.
//!
//! The flow is bounded (`--duration-s`, one hour by default) and stops by itself; Ctrl-C stops
//! it earlier, and so does SIGTERM. Either way each node gets SIGTERM (by PID), drains and exits.
//!
//! Secure as a real cluster, with nothing to set up: it makes its own CA and node certificates
//! (HTTPS for the API, mutual TLS between the nodes) and its own keys, and prints how to use
//! them with curl.

use crate::demo_control::{NodeProc, Nodes};
use anyhow::{bail, Context, Result};
use paddock_api::wire::*;
use paddock_client::Client;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `paddock demo` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// Keep data here instead of a temporary directory (kept after exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP ports are base+1..=base+3, peer ports base+101..=base+103.
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// Stop by itself after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub duration_s: u64,
    /// Bets per second in the simulated flow; 0 for none (a quiet book, as the API examples
    /// in docs/api.md expect).
    #[arg(long, default_value_t = 5)]
    pub bets_per_s: u32,
}

/// Where the console's node controls are and the token they need.
struct Console {
    control: String,
    token: String,
}

/// A fresh random token for the demo's control API.
fn control_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the control token: {e}"))?;
    Ok(paddock_api::convert::hex(&bytes))
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<()> {
    let temp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("paddock-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // SIGTERM (a supervisor, `kill PID`, `timeout`) must stop the nodes too, never leave them
    // running without the demo that started them. The handler is installed before the first
    // node starts: a SIGTERM that arrived before it would take the default action, kill the
    // demo at once and orphan its nodes (a test that stopped the demo as soon as it printed
    // its banner caught exactly that).
    let mut term = {
        let _in_runtime = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?
    };
    let exe = std::env::current_exe().context("cannot find the paddock binary")?;
    let http = |i: u16| format!("127.0.0.1:{}", args.base_port + i);
    let peer = |i: u16| format!("127.0.0.1:{}", args.base_port + 100 + i);
    let bootstrap = (1..=3).map(|i| format!("{i}={}", peer(i))).collect::<Vec<_>>().join(",");
    // The demo's own principals, as static keys of every node: an operator and a service
    // that plays the betting front end. Made afresh on every run; only digests are on disk.
    let keys = paddock_client::StaticKeys::generate("demo-operator", "demo-service");
    let keys_file = data_dir.join("static-keys");
    std::fs::write(&keys_file, keys.file_text())?;
    let certs_dir = data_dir.join("certs");
    crate::certs::make(&crate::certs::CertsRequest {
        cluster_id: "paddock",
        nodes: &[1, 2, 3],
        hosts: &["127.0.0.1".to_string(), "localhost".to_string()],
        valid_for: Duration::from_secs(30 * 86_400),
        out: &certs_dir,
    })?;
    let ca_file = certs_dir.join("ca.pem");
    let nodes = Nodes::default();
    for i in 1..=3u16 {
        let files = crate::certs::node_files(&certs_dir, u64::from(i));
        let args: Vec<std::ffi::OsString> = [
            "start".into(),
            "--node-id".into(),
            i.to_string().into(),
            "--http".into(),
            http(i).into(),
            "--peer".into(),
            peer(i).into(),
            "--bootstrap".into(),
            bootstrap.clone().into(),
            "--static-keys".into(),
            keys_file.clone().into_os_string(),
            "--tls-ca".into(),
            ca_file.clone().into_os_string(),
            "--tls-cert".into(),
            files.cert.into_os_string(),
            "--tls-key".into(),
            files.key.into_os_string(),
            "--data-dir".into(),
            data_dir.join(format!("node-{i}")).into_os_string(),
        ]
        .into();
        let log = data_dir.join(format!("node-{i}.log"));
        let mut node = NodeProc::new(u64::from(i), format!("https://{}", http(i)), exe.clone(), args, log.clone());
        let pid = node.start()?;
        println!("started node {i} (pid {pid}), log {}", log.display());
        nodes.push(node);
    }
    // The console's kill / pause / restart buttons call this, on the loopback address only.
    let control_token = control_token()?;
    let control_addr = format!("127.0.0.1:{}", args.base_port);
    let control_listener = {
        let _in_runtime = runtime.enter();
        let std_listener = std::net::TcpListener::bind(&control_addr)
            .with_context(|| format!("cannot listen on {control_addr} for the console's node controls"))?;
        std_listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(std_listener)?
    };
    runtime.spawn(crate::demo_control::serve(control_listener, nodes.clone(), control_token.clone()));
    let console = Console { control: format!("http://{control_addr}"), token: control_token };
    let urls: Vec<String> = (1..=3).map(|i| format!("https://{}", http(i))).collect();
    let ca_pem = std::fs::read(&ca_file)?;
    let result = runtime.block_on(async {
        tokio::select! {
            r = serve(&args, &urls, &ca_pem, &ca_file, &data_dir, &keys, &console) => r,
            _ = tokio::signal::ctrl_c() => { println!("\nCtrl-C: stopping"); Ok(()) }
            _ = term.recv() => { println!("\nSIGTERM: stopping"); Ok(()) }
        }
    });
    nodes.stop_all();
    if let Err(e) = &result {
        eprintln!("demo failed: {e:#}; node logs are in {}", data_dir.display());
    }
    result
}

/// Waits for the cluster, seeds it, prints how to use it and runs the simulated flow until
/// the demo's duration is over.
async fn serve(
    args: &DemoArgs,
    urls: &[String],
    ca_pem: &[u8],
    ca_file: &std::path::Path,
    data_dir: &std::path::Path,
    keys: &paddock_client::StaticKeys,
    console: &Console,
) -> Result<()> {
    let client = Client::new(urls.to_vec(), Duration::from_secs(5)).with_keys(&keys.ring()).with_ca_pem(ca_pem)?;
    wait_ready(&client, Duration::from_secs(30)).await?;
    seed(&client).await?;
    let bettor_key = demo_bettor(&client).await?;
    let operator_key = keys.operator.expose();
    let env_file = data_dir.join("demo-keys.env");
    crate::certs::write_private(
        &env_file,
        &format!(
            "PADDOCK_KEY={operator_key}\nPADDOCK_BETTOR_KEY={bettor_key}\nPADDOCK_NODE={}\nPADDOCK_CA={}\n",
            urls[0],
            ca_file.display()
        ),
    )?;
    println!();
    println!("Paddock demo: a 3-node cluster is running.");
    for (i, url) in urls.iter().enumerate() {
        println!("  node {}: {url}", i + 1);
    }
    println!("  cluster:  {}/v1/cluster", urls[0]);
    println!("  markets:  {}/v1/markets", urls[0]);
    println!("  CA:       {} (HTTPS for the API, mutual TLS between the nodes)", ca_file.display());
    println!("  metrics:  {}/metrics", urls[0]);
    println!("  API doc:  {}/v1/openapi.json", urls[0]);
    println!("  console:  {}/console#key={operator_key}&control={}&token={}", urls[0], console.control, console.token);
    println!("            (any node's /console; trust the CA above in the browser, or accept its warning)");
    println!("  data:     {}", data_dir.display());
    println!();
    println!("Every /v1 route but the OpenAPI document needs an API key. This run's keys (also in");
    println!("{}, readable by you only):", env_file.display());
    println!("  operator (demo-operator): {operator_key}");
    println!("  bettor (demo-bettor, owns account 1, a 12-hour session): {bettor_key}");
    println!("Try:");
    println!("  set -a; . {}; set +a", env_file.display());
    println!("  curl --cacert $PADDOCK_CA -H \"Authorization: Bearer $PADDOCK_BETTOR_KEY\" {}/v1/accounts/1", urls[0]);
    println!(
        "  curl --cacert $PADDOCK_CA -H \"Authorization: Bearer $PADDOCK_BETTOR_KEY\" {}/v1/accounts/2   # 403: not theirs",
        urls[0]
    );
    println!(
        "  curl --cacert $PADDOCK_CA -N -H \"Authorization: Bearer $PADDOCK_BETTOR_KEY\" {}/v1/stream/prices",
        urls[0]
    );
    println!("  paddock principals list      # uses PADDOCK_KEY, PADDOCK_NODE and PADDOCK_CA");
    println!("Ctrl-C stops the demo (it stops by itself after {} s).", args.duration_s);
    flow(&client, Duration::from_secs(args.duration_s), args.bets_per_s).await
}

async fn wait_ready(client: &Client, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let mut ready = 0;
        for i in 0..client.nodes().len() {
            if client.is_ready(i).await {
                ready += 1;
            }
        }
        if ready == client.nodes().len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {} nodes became ready within {within:?}", client.nodes().len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rules(each_way: bool, delay_ms: u64) -> MarketRulesBody {
    MarketRulesBody {
        stake_min_minor: 10,
        stake_max_minor: 100_000,
        payout_max_minor: 10_000_000,
        liability_max_minor: 50_000_000,
        bet_delay_ms: delay_ms,
        closes_at_ms: None,
        each_way: each_way.then(|| EachWayBody { fraction: "1/4".into(), places: 3 }),
    }
}

/// One sample market: (event id, name, sport, market id, market name, each-way, delay, runners).
type SampleMarket =
    (u64, &'static str, &'static str, u64, &'static str, bool, u64, &'static [(&'static str, &'static str)]);

/// Sample catalogue.
const CATALOGUE: &[SampleMarket] = &[
    (
        1,
        "Grand National",
        "racing",
        1,
        "Win",
        true,
        0,
        &[
            ("Red Rum", "5/1"),
            ("Aldaniti", "10/1"),
            ("Tiger Roll", "4/1"),
            ("Corbiere", "12/1"),
            ("Party Politics", "14/1"),
            ("Mr Frisk", "16/1"),
        ],
    ),
    (
        2,
        "Arsenal v Spurs",
        "football",
        2,
        "Match result",
        false,
        0,
        &[("Arsenal", "10/11"), ("Draw", "5/2"), ("Spurs", "3/1")],
    ),
    (3, "Lakers v Celtics", "basketball", 3, "Moneyline", false, 0, &[("Lakers", "-110"), ("Celtics", "-110")]),
    (
        4,
        "Djokovic v Alcaraz",
        "tennis",
        4,
        "Match winner (in play)",
        false,
        2_000,
        &[("Djokovic", "2.2"), ("Alcaraz", "1.7")],
    ),
];

const ACCOUNTS: u64 = 20;

async fn seed(client: &Client) -> Result<()> {
    let start_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64 + 3_600_000;
    for (event_id, name, sport, market_id, market_name, each_way, delay, runners) in CATALOGUE {
        ignore_exists(
            client
                .create_event(
                    &CreateEventRequest {
                        event_id: *event_id,
                        name: (*name).into(),
                        sport: (*sport).into(),
                        competition: "Demo".into(),
                        starts_at_ms: start_ms,
                    },
                    &paddock_client::fresh_key(),
                )
                .await,
        )?;
        let selections = runners
            .iter()
            .enumerate()
            .map(|(i, (n, o))| NewSelectionBody {
                selection_id: market_id * 100 + i as u64 + 1,
                name: (*n).into(),
                odds: (*o).into(),
            })
            .collect();
        ignore_exists(
            client
                .create_market(
                    &CreateMarketRequest {
                        market_id: *market_id,
                        event_id: *event_id,
                        name: (*market_name).into(),
                        currency: "GBP".into(),
                        selections,
                        rules: rules(*each_way, *delay),
                    },
                    &paddock_client::fresh_key(),
                )
                .await,
        )?;
    }
    for account in 1..=ACCOUNTS {
        if let Err(e) = client.open_account(account, "GBP", &paddock_client::fresh_key()).await {
            if e.code() != Some("account_exists") {
                return Err(e.into());
            }
        }
        client.deposit(account, 100_000, &format!("demo-seed-{account}")).await?;
    }
    println!("seeded {} markets and {ACCOUNTS} accounts with £1,000 each", CATALOGUE.len());
    Ok(())
}

/// A bettor who owns account 1, and a key for them.
async fn demo_bettor(client: &Client) -> Result<String> {
    match client.create_principal("demo-bettor", paddock_api::Role::Bettor, &[1], &paddock_client::fresh_key()).await {
        Ok(_) => {}
        Err(e) if e.code() == Some("principal_exists") => {}
        Err(e) => return Err(e.into()),
    }
    Ok(client.issue_key("demo-bettor", None).await?)
}

fn ignore_exists<T>(r: Result<T, paddock_client::ClientError>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.code(), Some("event_exists" | "market_exists")) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A tiny deterministic generator (xorshift): the demo needs variety, not statistics.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn flow(client: &Client, duration: Duration, bets_per_s: u32) -> Result<()> {
    let deadline = Instant::now() + duration;
    if bets_per_s == 0 {
        // A quiet book: what the documentation's examples (and a newcomer following them)
        // expect, with bet ids from 1 and balances nobody else moves.
        println!("no betting flow (--bets-per-s 0): the book changes only when you change it");
        tokio::time::sleep_until(deadline.into()).await;
        return Ok(());
    }
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let period = Duration::from_secs_f64(1.0 / f64::from(bets_per_s.max(1)));
    let (mut accepted, mut refused, mut errors) = (0u64, 0u64, 0u64);
    let mut last_report = Instant::now();
    let run = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let markets = client.markets().await.unwrap_or_default();
        let open: Vec<&MarketBody> = markets.iter().filter(|m| m.status == "open").collect();
        if open.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if dice.roll(10) == 0 {
            // A trader moves a price.
            let m = open[dice.roll(open.len() as u64) as usize];
            let s = &m.selections[dice.roll(m.selections.len() as u64) as usize];
            let new = ["2/1", "9/4", "5/2", "11/4", "3/1", "7/2", "4/1", "6/1", "8/1", "10/1"][dice.roll(10) as usize];
            let _ = client.set_price(m.market_id, s.selection_id, new, &paddock_client::fresh_key()).await;
        }
        let legs_n = if dice.roll(4) == 0 { 2.min(open.len()) } else { 1 };
        let mut legs = Vec::new();
        for k in 0..legs_n {
            let m = open[(dice.roll(open.len() as u64) as usize + k) % open.len()];
            if legs.iter().any(|l: &LegBody| l.market_id == m.market_id) {
                continue;
            }
            let s = &m.selections[dice.roll(m.selections.len() as u64) as usize];
            legs.push(LegBody {
                market_id: m.market_id,
                selection_id: s.selection_id,
                odds: s.odds.fractional.clone(),
            });
        }
        let request = PlaceBetRequest {
            account_id: 1 + dice.roll(ACCOUNTS),
            bet_type: if legs.len() > 1 { "accumulator".into() } else { "single".into() },
            k: None,
            legs,
            stake_per_line_minor: 100 * (1 + dice.roll(20) as i64),
            each_way: false,
            odds_policy: "higher".into(),
        };
        match client.place_bet(&request, &format!("demo-{run}-{n}")).await {
            Ok(_) => accepted += 1,
            Err(e) if e.code().is_some() && !e.is_retryable() => refused += 1,
            Err(_) => errors += 1,
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            let leader = client.cluster().await.ok().and_then(|c| c.leader_id);
            let leader = leader.map_or_else(|| "none (election in progress)".to_string(), |id| format!("node {id}"));
            println!("bets accepted {accepted}, refused {refused}, errors {errors}; leader {leader}");
            last_report = Instant::now();
        }
        tokio::time::sleep(period).await;
    }
    println!("demo flow finished: {accepted} bets accepted, {refused} refused, {errors} errors");
    Ok(())
}
