//! Loads Kubernetes-shaped keys into an etcd cluster over gRPC, for the demo and the benchmarks.
//!
//! Usage: `etcd-load ENDPOINTS KEYS VALUE_SIZE [CACERT CERT KEY]`, where ENDPOINTS is
//! comma-separated. Keys already present are overwritten, so a second run with more keys grows
//! the database.

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 && args.len() != 7 {
        eprintln!("usage: etcd-load ENDPOINTS KEYS VALUE_SIZE [CACERT CERT KEY]");
        std::process::exit(2);
    }
    let endpoints: Vec<String> = args[1].split(',').map(str::to_owned).collect();
    let keys: usize = args[2].parse().expect("KEYS is a number");
    let value_size: usize = args[3].parse().expect("VALUE_SIZE is a number");
    let mut options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(60));
    if args.len() == 7 {
        let read = |path: &str| std::fs::read(path).unwrap_or_else(|e| panic!("failed to read {path}: {e}"));
        let tls = etcd_client::TlsOptions::new()
            .domain_name("127.0.0.1")
            .ca_certificate(etcd_client::Certificate::from_pem(read(&args[4])))
            .identity(etcd_client::Identity::from_pem(read(&args[5]), read(&args[6])));
        options = options.with_tls(tls);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect(endpoints, Some(options)).await.expect("connect to etcd");
        let written = caasctl_testing::etcd::load_k8s_data(&mut client, keys, value_size).await;
        println!("{}", written.len());
    });
}
