// SPDX-License-Identifier: GPL-2.0-only
//! Any bytes as a request to the metrics endpoint, through the same
//! connection handler the listener uses (an in-memory pipe instead of TCP):
//! it never panics and its reply stays small, whatever the head says about
//! bodies, lengths or encodings.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let registry = Arc::new(scx_slod::metrics::registry(Default::default()));
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(scx_slod::http::serve_io(server, registry));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), (&mut client).take(1 << 20).read_to_end(&mut reply)).await;
        assert!(reply.len() < 1 << 20, "a reply of {} bytes", reply.len());
        let _ = served.await;
    });
});
