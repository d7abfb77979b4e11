//! Transport security on real processes: the API answers HTTPS only, peers speak mutual TLS
//! and serve members only, and a renewed certificate is served without a restart.

mod support;

use paddock_consensus::network::GrpcTransport;
use paddock_consensus::tls::{PeerTls, TlsFiles};
use paddock_consensus::transport::{call, PeerError, Rpc};
use paddock_consensus::{ForwardOp, ForwardReply};
use std::path::Path;
use std::time::Duration;
use support::*;

fn files(dir: &Path, node: u64) -> TlsFiles {
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("node-{node}.pem")),
        key: dir.join(format!("node-{node}.key")),
    }
}

/// Asks node 1's peer port `op` as the node whose certificate is `tls`.
async fn ask(cluster: &Cluster, tls: &PeerTls, op: &ForwardOp) -> Result<ForwardReply, PeerError> {
    let transport = GrpcTransport::new("paddock", None, Some(tls)).expect("transport builds");
    call(&transport, &cluster.node(1).peer.to_string(), Rpc::Forward, op, Duration::from_secs(3)).await
}

/// The certificate the node's API presents now.
async fn served_certificate(cluster: &Cluster, id: u64) -> Vec<u8> {
    let ca = cluster.certs_dir().expect("a TLS cluster").join("ca.pem");
    let roots = paddock_consensus::tls::read_roots(&ca).expect("CA reads");
    let config = paddock_consensus::tls::client_config(roots, None, &[b"http/1.1"]).expect("client config");
    let tcp = tokio::net::TcpStream::connect(cluster.node(id).http).await.expect("connects");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("an IP address is a server name");
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("handshake with the node");
    tls.get_ref().1.peer_certificates().expect("the node presents a certificate")[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_https_only_and_replicates_over_mutual_tls() {
    let cluster = Cluster::start_tls(3, &[]).await;
    // A write through a follower is forwarded to the leader over mutual TLS, replicated, and
    // read back linearizably on every node (a follower asks the leader for a read index).
    let through_three = cluster.client_for(3);
    through_three.open_account(1, "GBP", &paddock_client::fresh_key()).await.expect("account opens over HTTPS");
    through_three.deposit(1, 500, &paddock_client::fresh_key()).await.expect("deposit");
    for id in cluster.ids() {
        let account = cluster.client_for(id).account(1).await.expect("reads on every node");
        assert_eq!(account.balance_minor, 500, "node {id}");
    }

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("client");
    let answer = plain.get(format!("http://{}/health/live", cluster.node(1).http)).send().await;
    assert!(answer.is_err(), "plain HTTP was answered: {:?}", answer.map(|r| r.status()));

    // A client that trusts another CA refuses the node's certificate: it never sends a key.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    run_paddock(
        &["certs", "--cluster-id", "paddock", "--nodes", "1", "--host", "127.0.0.1", "--out"],
        elsewhere.path(),
    );
    let foreign_ca = std::fs::read(elsewhere.path().join("ca.pem")).expect("foreign CA");
    let fooled = paddock_client::Client::new(vec![cluster.url(1)], Duration::from_secs(3))
        .with_ca_pem(&foreign_ca)
        .expect("client builds")
        .with_token(&cluster.keys().operator.expose())
        .with_retry(paddock_client::RetryPolicy {
            attempts: 1,
            backoff: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
        });
    let refused = fooled.whoami().await.expect_err("a certificate of another CA is not trusted");
    assert!(refused.was_not_acted_on(), "the request never left the client: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_port_serves_only_members_holding_a_certificate_of_the_cluster_ca() {
    let cluster = Cluster::start_tls(3, &[]).await;
    let certs = cluster.certs_dir().expect("a TLS cluster").to_path_buf();
    // A member asks: answered.
    let member = PeerTls::load(&files(&certs, 2), "paddock", 2).expect("node 2's files load");
    let reply = ask(&cluster, &member, &ForwardOp::ClockSample).await;
    assert!(matches!(reply, Ok(ForwardReply::Clock { .. })), "a member is served: {reply:?}");

    // Node 9 holds a certificate of the same CA but is no member: refused, except for the
    // membership question that a node starting on an empty data directory asks.
    run_paddock(&["certs", "--cluster-id", "paddock", "--nodes", "9", "--out"], &certs);
    let stranger = PeerTls::load(&files(&certs, 9), "paddock", 9).expect("node 9's files load");
    match ask(&cluster, &stranger, &ForwardOp::ClockSample).await {
        Err(PeerError::Refused { message, .. }) => assert!(message.contains("names no member"), "{message}"),
        other => panic!("a non-member was served: {other:?}"),
    }
    for op in [ForwardOp::TransferLeader { to: 2 }, ForwardOp::Remove { id: 3 }] {
        let answer = ask(&cluster, &stranger, &op).await;
        assert!(matches!(answer, Err(PeerError::Refused { .. })), "{op:?} from a non-member: {answer:?}");
    }
    let membership = ask(&cluster, &stranger, &ForwardOp::Membership).await;
    assert!(matches!(membership, Ok(ForwardReply::Membership { .. })), "{membership:?}");

    // A certificate of another CA does not get through the handshake. (In TLS 1.3 the client
    // finishes its half before the server judges its certificate, so the dialler sees a broken
    // connection rather than a refused one: it cannot count the call as never sent.)
    let elsewhere = tempfile::tempdir().expect("temp dir");
    run_paddock(&["certs", "--cluster-id", "paddock", "--nodes", "2", "--out"], elsewhere.path());
    let forged = PeerTls::load(&files(elsewhere.path(), 2), "paddock", 2).expect("forged files load");
    // It trusts its own CA, so give it ours to dial with: the node still refuses its certificate.
    let forged = PeerTls { roots: member.roots.clone(), ..forged };
    match ask(&cluster, &forged, &ForwardOp::ClockSample).await {
        Err(PeerError::Unreachable { .. }) => {}
        other => panic!("a certificate of another CA was accepted: {other:?}"),
    }

    // No client certificate at all: the handshake fails too.
    let config = paddock_consensus::tls::client_config(member.roots.clone(), None, &[b"h2"]).expect("config");
    let tcp = tokio::net::TcpStream::connect(cluster.node(1).peer).await.expect("connects");
    let name = rustls::pki_types::ServerName::try_from("peer.paddock.paddock").expect("name");
    let outcome = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await?;
        Ok::<usize, std::io::Error>(n)
    }
    .await;
    assert!(matches!(outcome, Err(_) | Ok(0)), "a peer without a certificate was served: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let cluster = Cluster::start_tls(1, &[]).await;
    let certs = cluster.certs_dir().expect("a TLS cluster").to_path_buf();
    let before = served_certificate(&cluster, 1).await;
    run_paddock(&["certs", "--cluster-id", "paddock", "--nodes", "1", "--host", "127.0.0.1", "--out"], &certs);
    let renewed =
        paddock_consensus::tls::read_certs(&certs.join("node-1.pem")).expect("renewed certificate")[0].to_vec();
    assert_ne!(before, renewed, "the command made a new certificate");
    poll_until(
        "the node to serve the renewed certificate",
        Duration::from_secs(20),
        Duration::from_millis(250),
        async || (served_certificate(&cluster, 1).await == renewed).then_some(()),
    )
    .await;
    let client = cluster.client_for(1);
    client.whoami().await.expect("the node still serves with its new certificate");
    assert!(cluster.log_text(1).contains("TLS certificate reloaded"));
}
