//! A rolling upgrade of deploy/compose.yaml under load (issue 15): the cluster runs the image of
//! the tests' own build, and `bash xtask/compose.sh upgrade` (`paddock upgrade`) rolls it, one
//! container at a time, to the image of the next-format test build (another version, another
//! log-entry format). Clients writing and reading through HAProxy, with no retries of their own,
//! see no failed request; every acknowledged write is there afterwards; every container runs the
//! new image, every member announces the new version, and a leader writes the first entry of the
//! new format; the replicas converge to one state hash. The roll's duration and the load's
//! slowest request are printed.

mod support;

use paddock_api::wire::ClusterBody;
use paddock_client::RetryPolicy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::compose::{docker, Project};
use support::*;

#[derive(Default)]
struct Tally {
    /// Account ids whose opening was acknowledged.
    acknowledged: Vec<u64>,
    /// Every request that failed, in words.
    failed: Vec<String>,
    reads: u64,
    slowest: Duration,
}

/// Opens accounts (ids from `first`, one after another) and reads back the latest one, through
/// HAProxy with a client that never retries by itself, until `stop` (or 10 minutes).
async fn load(client: paddock_client::Client, first: u64, tally: Arc<Mutex<Tally>>, stop: Arc<AtomicBool>) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut id = first;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        id += 1;
        let started = Instant::now();
        let opened = client.open_account(id, "GBP", &format!("upgrade-open-{id}")).await;
        let read = match &opened {
            Ok(_) => Some(client.account(id).await),
            Err(_) => None,
        };
        let took = started.elapsed();
        {
            let mut t = tally.lock().unwrap();
            t.slowest = t.slowest.max(took);
            match opened {
                Ok(_) => t.acknowledged.push(id),
                Err(e) => t.failed.push(format!("opening account {id}: {e}")),
            }
            match read {
                Some(Ok(_)) => t.reads += 1,
                Some(Err(e)) => t.failed.push(format!("reading account {id}: {e}")),
                None => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_under_load_fails_no_request_and_loses_no_acknowledged_write() {
    let next_binary = next_build();
    let mut project = Project::up("upgrade");
    let next = project.image_of("paddock-next", &next_binary);
    project.wait_leader().await;

    let tally: Arc<Mutex<Tally>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let no_retry =
        RetryPolicy { attempts: 1, backoff: Duration::from_millis(1), backoff_max: Duration::from_millis(1) };
    let workers: Vec<_> = [1_000_000u64, 2_000_000]
        .into_iter()
        .map(|first| {
            let client = project.client(Duration::from_secs(10)).with_retry(no_retry);
            tokio::spawn(load(client, first, tally.clone(), stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let version = format!("{}+next-format", env!("CARGO_PKG_VERSION"));
    let started = Instant::now();
    let rolled = {
        let project = &project;
        let (next, version) = (next.clone(), version.clone());
        let paddock = env!("CARGO_BIN_EXE_paddock");
        tokio::task::block_in_place(move || {
            project.compose_script(&["upgrade", "--image", &next, "--binary", paddock, "--expect-version", &version])
        })
    };
    let roll = started.elapsed();
    let said = String::from_utf8_lossy(&rolled.stdout).to_string();
    assert!(rolled.status.success(), "the roll failed:\n{said}{}", String::from_utf8_lossy(&rolled.stderr));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!("{said}");
    eprintln!(
        "rolling upgrade of 3 containers under load: {:.1} s; {} writes acknowledged, {} reads, {} failed requests; \
         slowest write and read {:.2} s",
        roll.as_secs_f64(),
        tally.acknowledged.len(),
        tally.reads,
        tally.failed.len(),
        tally.slowest.as_secs_f64()
    );
    assert!(tally.failed.is_empty(), "requests failed during the roll:\n{}", tally.failed.join("\n"));
    assert!(tally.acknowledged.len() > 100, "the load barely ran: {}", tally.acknowledged.len());
    for line in ["leadership handed to node", "done in"] {
        assert!(said.contains(line), "the roll says {line:?}:\n{said}");
    }

    // Every container runs the new image; the leader hears the new version from every member,
    // and the new log-entry format is active.
    for id in 1..=3 {
        let image = docker(&["inspect", "--format", "{{.Config.Image}}", &project.container(id)]);
        assert_eq!(image, next, "node {id}'s container");
    }
    let view: ClusterBody =
        poll_until("the leader's view", Duration::from_secs(30), Duration::from_millis(250), async || {
            for id in 1..=3 {
                if let Some(v) = project.node_get::<ClusterBody>(id, "/v1/cluster").await.filter(|v| v.role == "leader")
                {
                    return Some(v);
                }
            }
            None
        })
        .await;
    for m in &view.members {
        assert_eq!(m.version.as_deref(), Some(version.as_str()), "node {}", m.node_id);
    }
    assert_eq!(view.entry_format, Some(2), "every member reads the next format");
    // And a leader wrote the first entry of that format (the next-format build's leader does
    // as soon as the write path lets it).
    poll_until("the first format-2 entry", Duration::from_secs(30), Duration::from_millis(500), async || {
        (1..=3u64)
            .any(|id| {
                let out = std::process::Command::new("docker").args(["logs", &project.container(id)]).output().unwrap();
                String::from_utf8_lossy(&out.stderr).contains("every member reads the new log entry format")
            })
            .then_some(())
    })
    .await;

    // Nothing acknowledged was lost, and the replicas agree.
    let reader = project.client(Duration::from_secs(10));
    for id in &tally.acknowledged {
        reader.account(*id).await.unwrap_or_else(|e| panic!("acknowledged account {id} is missing: {e}"));
    }
    let hash = project.converged().await;
    assert!(hash.accounts as usize >= tally.acknowledged.len());
}
