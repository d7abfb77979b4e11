//! A Compose project of deploy/compose.yaml for tests: the three images built from local files
//! (the node from the tests' debug binary) under tags of its own, secrets in a temporary
//! directory, host ports picked free on loopback, its own project name; `docker-compose down
//! -v` and the image removals undo it on drop, also when the test fails (after printing the
//! end of every container's log).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A running compose project.
pub struct Project {
    /// The `-p` name, also the prefix of its containers and networks.
    pub name: String,
    env: Vec<(String, String)>,
    images: Vec<String>,
    root: PathBuf,
    /// The secrets directory (CA, certificates, operator key).
    pub secrets: tempfile::TempDir,
    /// HAProxy's and Prometheus's host ports on 127.0.0.1.
    pub lb_port: u16,
    /// See `lb_port`.
    pub prometheus_port: u16,
}

fn run_script(root: &Path, args: &[&str]) {
    let out = Command::new("bash").args(args).current_dir(root).output().expect("bash runs");
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `docker` with `args`; its stdout, trimmed, or a panic with its stderr.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("the docker command runs");
    assert!(out.status.success(), "docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Project {
    /// Builds the images, makes the secrets and runs `docker-compose up -d`.
    pub fn up(tag: &str) -> Project {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
        let suffix = format!("{tag}-{}", std::process::id());
        let secrets = tempfile::tempdir().unwrap();
        let ports = super::free_ports(2);
        let project = Project {
            name: format!("paddock-{suffix}"),
            env: vec![
                ("PADDOCK_IMAGE".into(), format!("paddock:{suffix}")),
                ("PADDOCK_HAPROXY_IMAGE".into(), format!("paddock-haproxy:{suffix}")),
                ("PADDOCK_PROMETHEUS_IMAGE".into(), format!("paddock-prometheus:{suffix}")),
                ("PADDOCK_SECRETS".into(), secrets.path().display().to_string()),
                ("PADDOCK_LB_PORT".into(), ports[0].to_string()),
                ("PADDOCK_PROMETHEUS_PORT".into(), ports[1].to_string()),
            ],
            images: ["paddock", "paddock-haproxy", "paddock-prometheus"]
                .iter()
                .map(|i| format!("{i}:{suffix}"))
                .collect(),
            root: root.clone(),
            lb_port: ports[0],
            prometheus_port: ports[1],
            secrets,
        };
        let paddock = env!("CARGO_BIN_EXE_paddock");
        run_script(&root, &["xtask/image.sh", "--binary", paddock, "--all", "--suffix", &suffix]);
        let out = project.secrets.path().display().to_string();
        run_script(&root, &["xtask/compose.sh", "setup", "--binary", paddock, "--out", &out]);
        project.compose_ok(&["up", "-d"]);
        project
    }

    /// Builds the node's image from `binary` under a tag of this project's (removed with it).
    pub fn image_of(&mut self, name: &str, binary: &Path) -> String {
        let tag = format!("{name}:{}", self.name.trim_start_matches("paddock-"));
        run_script(&self.root, &["xtask/image.sh", "--binary", &binary.display().to_string(), "--tag", &tag]);
        self.images.push(tag.clone());
        tag
    }

    /// Runs `bash xtask/compose.sh ARGS` in the project's environment, with its name.
    pub fn compose_script(&self, args: &[&str]) -> std::process::Output {
        Command::new("bash")
            .arg(self.root.join("xtask/compose.sh"))
            .args(args)
            .args(["--project", &self.name])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.root)
            .output()
            .expect("bash runs")
    }

    /// Runs `docker-compose` on the project.
    pub fn compose(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker-compose")
            .args(["-p", &self.name, "-f"])
            .arg(self.root.join("deploy/compose.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("docker-compose runs")
    }

    /// [`Project::compose`], which must succeed; its stdout.
    pub fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "docker-compose {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The container of node `id` (Compose v1 names it `<project>_node<id>_1`).
    pub fn container(&self, id: u64) -> String {
        self.compose_ok(&["ps", "-q", &format!("node{id}")])
    }

    /// The backbone network's name, as Compose made it.
    pub fn backbone(&self) -> String {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let names = docker(&["network", "ls", "--filter", &label, "--format", "{{.Name}}"]);
        names.lines().find(|n| n.ends_with("_backbone")).expect("the project has a backbone network").to_string()
    }

    /// The operator's key and the cluster's CA certificate.
    pub fn operator(&self) -> (String, Vec<u8>) {
        let key = std::fs::read_to_string(self.secrets.path().join("operator.key")).unwrap().trim().to_string();
        (key, std::fs::read(self.secrets.path().join("ca.pem")).unwrap())
    }

    /// GETs `path` from node `id` directly on the backbone as the operator (its certificate
    /// names it `node<id>`; the host reaches the container's address on the network this
    /// project made): the decoded answer, or `None` if it did not come.
    pub async fn node_get<T: serde::de::DeserializeOwned>(&self, id: u64, path: &str) -> Option<T> {
        let container = self.container(id);
        let ip = docker(&[
            "inspect",
            &container,
            "--format",
            &format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", self.backbone()),
        ]);
        let (key, ca) = self.operator();
        let name = format!("node{id}");
        let addr: std::net::SocketAddr = format!("{ip}:7001").parse().ok()?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).ok()?)
            .resolve(&name, addr)
            .timeout(Duration::from_secs(3))
            .build()
            .ok()?;
        let response = http.get(format!("https://{name}:7001{path}")).bearer_auth(key).send().await.ok()?;
        response.json().await.ok()
    }

    /// Node `id`'s state hash, asked of it directly.
    pub async fn state_hash(&self, id: u64) -> Option<paddock_api::wire::StateHashBody> {
        self.node_get(id, "/v1/cluster/state-hash").await
    }

    /// Waits (at most 60 s) until HAProxy reaches a node that knows a leader: its view.
    pub async fn wait_leader(&self) -> paddock_api::wire::ClusterBody {
        let client = self.client(Duration::from_secs(5));
        super::poll_until("a leader through HAProxy", Duration::from_secs(60), Duration::from_millis(250), async || {
            client.cluster().await.ok().filter(|v| v.leader_id.is_some())
        })
        .await
    }

    /// Waits (at most 60 s) until the three nodes, asked directly, hold one state hash.
    pub async fn converged(&self) -> paddock_api::wire::StateHashBody {
        let hashes = super::poll_until(
            "three replicas with one state hash",
            Duration::from_secs(60),
            Duration::from_millis(500),
            async || {
                let mut hashes = Vec::new();
                for id in 1..=3 {
                    hashes.push(self.state_hash(id).await?);
                }
                hashes.windows(2).all(|w| w[0] == w[1]).then_some(hashes)
            },
        )
        .await;
        hashes.into_iter().next().expect("three hashes")
    }

    /// A client of HAProxy with the operator's key.
    pub fn client(&self, timeout: Duration) -> paddock_client::Client {
        let (key, ca) = self.operator();
        paddock_client::Client::new(vec![format!("https://127.0.0.1:{}", self.lb_port)], timeout)
            .with_ca_pem(&ca)
            .expect("the CA loads")
            .with_keys(&[(paddock_api::Role::Operator, key)])
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.compose(&["logs", "--no-color", "--tail", "30"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let _ = self.compose(&["down", "-v", "--timeout", "10"]);
        for image in &self.images {
            let _ = Command::new("docker").args(["image", "rm", "-f", image]).output();
        }
    }
}
