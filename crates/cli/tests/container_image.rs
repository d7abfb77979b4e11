//! The node's container image (`cargo xtask image`, deploy/docker/Dockerfile) on the real Docker
//! engine: built from local files only (FROM scratch, the binary and the libraries it links),
//! it runs as a non-root user on a read-only root filesystem, a one-node cluster in it becomes
//! ready on a network this test creates, keeps its data on the volume across a container
//! restart, and stops cleanly on `docker stop`. Built here from the debug binary the tests use
//! (operators build the release one). Everything this test starts is removed by its id or its
//! unique name, also when it fails; without a Docker engine it fails and says so.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `docker` with `args`; its stdout, trimmed, or a panic with its stderr.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("the docker command runs");
    assert!(out.status.success(), "docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the test created, removed on drop: containers by id, then the volume, network and
/// image by their unique names.
struct Created {
    containers: Vec<String>,
    volume: String,
    network: String,
    image: String,
}

impl Drop for Created {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
        let _ = Command::new("docker").args(["volume", "rm", "-f", &self.volume]).output();
        let _ = Command::new("docker").args(["network", "rm", &self.network]).output();
        let _ = Command::new("docker").args(["image", "rm", "-f", &self.image]).output();
    }
}

/// `GET http://{ip}:7001{path}` from this host; the status and body, or `None` if no answer.
async fn get(ip: &str, path: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let response = client.get(format!("http://{ip}:7001{path}")).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// An operator key made with `paddock keys new`, and the static keys file that admits it.
fn operator_key(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["keys", "new", "--principal", "root", "--role", "operator"])
        .output()
        .expect("paddock keys new runs");
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).expect("paddock keys new prints JSON");
    let file = dir.join("static-keys");
    std::fs::write(&file, format!("{}\n", made["static_keys_line"].as_str().expect("a line"))).unwrap();
    // Readable by the container's user (10001).
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    (made["key"].as_str().expect("a key").to_string(), file)
}

fn client(ip: &str, key: &str) -> paddock_client::Client {
    paddock_client::Client::new(vec![format!("http://{ip}:7001")], Duration::from_secs(5))
        .with_keys(&[(paddock_api::Role::Operator, key.to_string())])
}

fn ip_of(container: &str) -> String {
    docker(&["inspect", container, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"])
}

async fn wait_ready(ip: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some((200, _)) = get(ip, "/health/ready").await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the node in the container at {ip} was not ready within {within:?}");
}

fn start_node(created: &mut Created, image: &str, keys_file: &std::path::Path) -> String {
    let keys_mount = format!("{}:/etc/paddock/static-keys:ro", keys_file.display());
    let id = docker(&[
        "run",
        "-d",
        "--read-only",
        "-v",
        &keys_mount,
        "--network",
        &created.network,
        // How compose names a node; here the one node dials itself by it.
        "--network-alias",
        "paddock-1",
        "-v",
        &format!("{}:/var/lib/paddock", created.volume),
        image,
        "start",
        "--node-id",
        "1",
        "--data-dir",
        "/var/lib/paddock/node-1",
        "--http",
        "0.0.0.0:7001",
        "--peer",
        "0.0.0.0:7101",
        "--bootstrap",
        "1=paddock-1:7101",
        "--static-keys",
        "/etc/paddock/static-keys",
        "--insecure-plaintext",
    ]);
    created.containers.push(id.clone());
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_a_node_as_a_non_root_user_on_a_read_only_root_with_its_data_on_a_volume() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tag = format!("paddock:test-{}", std::process::id());
    let unique = format!("paddock-test-{}", std::process::id());
    let mut created =
        Created { containers: Vec::new(), volume: unique.clone(), network: unique.clone(), image: tag.clone() };
    let built = Command::new("bash")
        .arg(root.join("xtask/image.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_paddock"), "--tag", &tag])
        .output()
        .expect("xtask/image.sh runs");
    assert!(built.status.success(), "the image did not build: {}", String::from_utf8_lossy(&built.stderr));
    docker(&["network", "create", &created.network]);
    docker(&["volume", "create", &created.volume]);

    assert_eq!(docker(&["image", "inspect", &tag, "--format", "{{.Config.User}}"]), "10001:10001");
    assert_eq!(docker(&["run", "--rm", "--read-only", &tag, "--version"]).split(' ').next(), Some("paddock"));

    let keys_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(keys_dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (key, keys_file) = operator_key(keys_dir.path());
    let first = start_node(&mut created, &tag, &keys_file);
    let ip = ip_of(&first);
    let took = wait_ready(&ip, Duration::from_secs(30)).await;
    eprintln!("node 1 in a container at {ip} ready after {took:?}");
    let (status, live) = get(&ip, "/health/live").await.expect("the node answers");
    assert_eq!((status, live.contains("live")), (200, true), "{live}");
    let operator = client(&ip, &key);
    operator.open_account(1, "GBP", "container-open-1").await.expect("the account opens");

    // A clean stop (SIGTERM), then a new container on the same volume: the same book.
    docker(&["stop", "--time", "20", &first]);
    let exit = docker(&["inspect", &first, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(exit, "0", "the node did not stop cleanly:\n{}", docker(&["logs", &first]));
    docker(&["rm", &first]);
    created.containers.retain(|c| c != &first);
    let second = start_node(&mut created, &tag, &keys_file);
    let ip = ip_of(&second);
    wait_ready(&ip, Duration::from_secs(30)).await;
    // A fresh data directory would know no account 1 (404).
    let account = client(&ip, &key).account(1).await.expect("the account opened before the restart is there");
    assert_eq!(account.balance_minor, 0);
}
