//! The outbound client against tiny HTTP/1.1 servers on loopback: what it refuses, what it never
//! follows, how much it reads, when it gives up, and what its errors never say.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether::outbound::{Outbound, OutboundConfig, OutboundError, OutboundRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use url::Url;

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 64 * 1024;

fn config(allow: &[u16]) -> OutboundConfig {
    let mut config = OutboundConfig::new("https://tether.example");
    config.allow_private = allow.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    config
}

fn client(allow: &[u16]) -> Outbound {
    Outbound::new(config(allow)).expect("client builds")
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("test URL parses")
}

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

/// Reads a request head (tests send no bodies to these servers) and returns it.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Answers every connection with `response` and records each request head.
async fn answering(response: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let (l, port) = listener().await;
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let head = read_head(&mut s).await;
            seen.lock().expect("heads lock").push(head);
            let _ = s.write_all(response.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    (port, heads)
}

/// Asserts nothing connects to `l` within a moment.
async fn assert_untouched(l: &TcpListener) {
    let accepted = timeout(Duration::from_millis(300), l.accept()).await;
    assert!(
        accepted.is_err(),
        "something connected to the refused target"
    );
}

/// Streams `total` bytes in 64 KiB writes, pausing after each to notice the client hanging up;
/// returns how many bytes it wrote before it did.
async fn streaming(
    content_length: Option<usize>,
    total: usize,
) -> (u16, tokio::task::JoinHandle<usize>) {
    let (l, port) = listener().await;
    let task = tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return 0;
        };
        read_head(&mut s).await;
        let head = match content_length {
            Some(n) => format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n"),
            None => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned(),
        };
        if s.write_all(head.as_bytes()).await.is_err() {
            return 0;
        }
        let chunk = vec![b'x'; CHUNK];
        let mut written = 0;
        let mut probe = [0u8; 16];
        while written < total {
            if s.write_all(&chunk).await.is_err() {
                break;
            }
            written += CHUNK;
            match timeout(Duration::from_millis(20), s.read(&mut probe)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
        written
    });
    (port, task)
}

#[tokio::test]
async fn user_agent_and_bearer_are_sent_and_error_statuses_are_responses() {
    let body = r#"{"error":"Too many requests"}"#;
    let (port, heads) = answering(format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
         X-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 2030-01-01T00:00:00Z\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let req = OutboundRequest::get(url(&format!(
        "http://127.0.0.1:{port}/api/v1/accounts/verify_credentials"
    )))
    .bearer("tok123");
    let resp = client(&[port])
        .send(req)
        .await
        .expect("a 429 is a response");

    assert_eq!(resp.status, 429);
    assert!(!resp.is_success());
    assert_eq!(resp.header("x-ratelimit-remaining"), Some("0"));
    let error: serde_json::Value = resp.json().expect("json body");
    assert_eq!(error["error"], "Too many requests");

    let head = heads.lock().expect("heads lock")[0].to_ascii_lowercase();
    let ua = format!(
        "user-agent: tether/{} (+https://tether.example)\r\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(head.contains(&ua), "{head}");
    assert!(head.contains("authorization: bearer tok123\r\n"), "{head}");
}

#[tokio::test]
async fn allow_list_allows_exactly_its_host_and_port() {
    let (port, _) = answering("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".into()).await;
    let (other, other_port) = listener().await;
    let c = client(&[port]);

    let resp = c
        .get(url(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect("allowed over http");
    assert_eq!(resp.status, 204);

    for refused in [
        format!("http://127.0.0.1:{other_port}/"),
        format!("https://127.0.0.1:{other_port}/"),
        format!("https://2130706433:{other_port}/"),
        format!("https://[::ffff:127.0.0.1]:{other_port}/"),
        "http://mastodon.social/".to_owned(),
    ] {
        match c.get(url(&refused)).await {
            Err(OutboundError::NotAllowed(_)) => {}
            other => panic!("{refused}: expected NotAllowed, got {other:?}"),
        }
    }
    assert_untouched(&other).await;
}

#[tokio::test]
async fn resolver_refuses_names_that_resolve_to_private_addresses() {
    let (target, target_port) = listener().await;
    let err = client(&[])
        .get(url(&format!(
            "https://localhost:{target_port}/api/v1/instance"
        )))
        .await
        .expect_err("localhost is private");
    assert_eq!(
        err,
        OutboundError::NotAllowed(format!(
            "refused: private address (https://localhost:{target_port}/api/v1/instance)"
        ))
    );
    assert!(err.to_string().starts_with("refused: private address"));
    assert_untouched(&target).await;
}

#[tokio::test]
async fn allow_listed_names_resolve_to_local_addresses() {
    let (port, _) = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into()).await;
    let mut config = config(&[]);
    config.allow_private = vec![format!("localhost:{port}")];
    let resp = Outbound::new(config)
        .expect("client builds")
        .get(url(&format!("http://localhost:{port}/")))
        .await
        .expect("localhost is allow-listed");
    assert_eq!(&resp.body[..], b"ok");
}

#[tokio::test]
async fn redirects_are_returned_never_followed() {
    let (target, target_port) = listener().await;
    let (port, _) = answering(format!(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target_port}/\r\nContent-Length: 0\r\n\r\n"
    ))
    .await;
    // The target is allow-listed too: only the redirect policy stands between the two.
    let c = client(&[port, target_port]);
    let err = c
        .get(url(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("a redirect is not a response");
    assert_eq!(err, OutboundError::Redirect { status: 302 });
    assert_untouched(&target).await;

    let (port, heads) = answering(
        "HTTP/1.1 301 Moved\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n\
         Content-Length: 0\r\n\r\n"
            .into(),
    )
    .await;
    let err = client(&[port])
        .get(url(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("a redirect is not a response");
    assert_eq!(err, OutboundError::Redirect { status: 301 });
    assert_eq!(heads.lock().expect("heads lock").len(), 1);
}

#[tokio::test]
async fn body_past_the_cap_is_too_large_and_not_read_further() {
    // No length: the cap is enforced while streaming.
    let (port, server) = streaming(None, 5 * MIB).await;
    let err = client(&[port])
        .get(url(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("5 MiB is over the cap");
    assert_eq!(err, OutboundError::TooLarge);
    let written = server.await.expect("server task");
    assert!(
        (MIB..=MIB + 3 * CHUNK).contains(&written),
        "server wrote {written} bytes before the client hung up"
    );

    // A declared length over the cap: refused before reading the body.
    let (port, server) = streaming(Some(5 * MIB), 5 * MIB).await;
    let err = client(&[port])
        .get(url(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("5 MiB is over the cap");
    assert_eq!(err, OutboundError::TooLarge);
    let written = server.await.expect("server task");
    assert!(written <= 3 * CHUNK, "server wrote {written} bytes");
}

#[tokio::test]
async fn body_at_the_cap_is_read_whole() {
    let (port, server) = streaming(None, MIB).await;
    let resp = client(&[port])
        .get(url(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect("exactly 1 MiB is allowed");
    assert_eq!(resp.body.len(), MIB);
    assert_eq!(server.await.expect("server task"), MIB);
}

#[tokio::test]
async fn total_timeout_covers_a_silent_server_and_a_slow_body() {
    let (l, port) = listener().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let head = read_head(&mut s).await;
            if head.starts_with("GET /slow-body") {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab")
                    .await;
            }
            held.push(s);
        }
    });
    let mut config = config(&[port]);
    config.total_timeout = Duration::from_millis(300);
    let c = Outbound::new(config).expect("client builds");

    for path in ["/silent", "/slow-body"] {
        let started = Instant::now();
        let err = c
            .get(url(&format!("http://127.0.0.1:{port}{path}")))
            .await
            .expect_err("the server never finishes");
        let took = started.elapsed();
        assert_eq!(err, OutboundError::Timeout, "{path}");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{path}: gave up after {took:?}"
        );
    }
}

#[tokio::test]
async fn errors_never_show_tokens() {
    let secret = "SECRET";
    let query = format!("?access_token={secret}&code={secret}");
    let mut errors = Vec::new();

    let (closed, closed_port) = listener().await;
    drop(closed);
    let (redirecting, _) = answering(format!(
        "HTTP/1.1 302 Found\r\nLocation: https://example.com/cb?code={secret}\r\nContent-Length: 0\r\n\r\n"
    ))
    .await;
    let body = format!(r#"{{"access_token": "{secret}", "created_at": "{secret}"}}"#);
    let (token_json, _) = answering(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let (big, _) = streaming(Some(2 * MIB), 2 * MIB).await;
    let (silent, silent_port) = listener().await;
    let mut config = config(&[closed_port, redirecting, token_json, big, silent_port]);
    config.total_timeout = Duration::from_millis(300);
    let c = Outbound::new(config).expect("client builds");

    let targets = [
        format!("https://10.0.0.1/oauth/token{query}"),
        format!("https://localhost/oauth/token{query}"),
        format!("http://mastodon.social/oauth/token{query}"),
        format!("https://user:{secret}@mastodon.social/{query}"),
        format!("http://127.0.0.1:{closed_port}/api/v1/accounts{query}"),
        format!("http://127.0.0.1:{redirecting}/oauth/authorize{query}"),
        format!("http://127.0.0.1:{big}/api/v1/timelines/home{query}"),
        format!("http://127.0.0.1:{silent_port}/api/v1/statuses{query}"),
    ];
    for target in &targets {
        let req = OutboundRequest::post(url(target))
            .bearer(secret)
            .form(&[("client_secret", secret), ("code", secret)]);
        errors.push(c.send(req).await.expect_err(target));
    }
    drop(silent);

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Token {
        access_token: String,
        created_at: u64,
    }
    let resp = c
        .send(
            OutboundRequest::post(url(&format!("http://127.0.0.1:{token_json}/oauth/token")))
                .bearer(secret),
        )
        .await
        .expect("a token answer");
    errors.push(
        resp.json::<Token>()
            .expect_err("created_at is not a number"),
    );

    assert!(errors
        .iter()
        .any(|e| matches!(e, OutboundError::Unreachable(_))));
    assert!(errors
        .iter()
        .any(|e| matches!(e, OutboundError::Malformed(_))));
    for e in &errors {
        let shown = format!(
            "{e} / {e:?} / {}",
            e.clone().into_upstream("instance").message()
        );
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[tokio::test]
async fn https_goes_through_rustls() {
    // Not a TLS server: the handshake fails, which shows the https path is rustls with a working
    // provider (a missing one panics) and that a TLS failure is "unreachable".
    let (l, port) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let err = client(&[port])
        .get(url(&format!("https://127.0.0.1:{port}/")))
        .await
        .expect_err("no TLS on the other side");
    assert!(matches!(err, OutboundError::Unreachable(_)), "{err:?}");
}
