//! What the three-site tests (`three_sites.rs` through the chaos harness's proxy,
//! `three_sites_netns.rs` in network namespaces) share: the writes the two sites left must take
//! once the third is cut off.

use paddock_client::Client;
use std::time::{Duration, Instant};

/// With `site` cut off since `cut_at`: the first deposit into `account` through `majority`
/// (the other two sites), asked again until it lands — after an election if the leader was in
/// the lost site — but within `within`, then 20 more, each of which must land. Returns the sum
/// deposited.
pub async fn majority_takes_every_write(
    majority: &Client,
    account: u64,
    site: &str,
    cut_at: Instant,
    within: Duration,
) -> i64 {
    let mut n = 0;
    let first_write = loop {
        n += 1;
        match majority.deposit(account, 100, &format!("site-{site}-{n}")).await {
            Ok(_) => break cut_at.elapsed(),
            Err(e) => {
                assert!(cut_at.elapsed() < within, "site {site} lost: no write within {} s: {e}", within.as_secs());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let mut deposited = 100;
    for i in 0..20 {
        majority
            .deposit(account, 10, &format!("site-{site}-more-{i}"))
            .await
            .unwrap_or_else(|e| panic!("site {site} lost: a write to the majority failed: {e}"));
        deposited += 10;
    }
    eprintln!("site {site} cut off: the other sites took a write {} ms after the cut", first_write.as_millis());
    deposited
}
