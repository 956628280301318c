//! The console's HTTP/1.1 server: bounded connections, heads, bodies and time; static assets
//! compiled into the binary; `/api/...` handed to `api::route` with the caller's HTTP Basic
//! credentials.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{ApiError, Console, Credentials};

/// Open HTTP connections at most; more wait in the kernel's accept queue.
pub const CONNECTIONS_MAX: usize = 64;
/// A request's head (request line and headers), at most.
pub const HEAD_BYTES_MAX: usize = 16 * 1024;
/// A request's body, at most.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// A request's whole time, at most (reading its body and the Kafka calls it makes).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The header a change must carry (sent by the page after the user confirms).
pub const CONFIRM_HEADER: &str = "x-runnel-console";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

pub async fn serve(listener: TcpListener, console: Arc<Console>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "console accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let console = console.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let console = console.clone();
                async move { Ok::<_, Infallible>(handle(&console, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(HEAD_BYTES_MAX)
                .serve_connection(TokioIo::new(stream), service);
            // An idle keep-alive connection is closed after the request timeout.
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 4, connection).await;
            drop(permit);
        });
    }
}

async fn handle(console: &Console, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match tokio::time::timeout(REQUEST_TIMEOUT, respond(console, request)).await {
        Ok(response) => response,
        Err(_) => error(ApiError::Unavailable(format!("no answer within {REQUEST_TIMEOUT:?}"))),
    }
}

/// Whether the request's `Host` names this console by address (an IP literal) or
/// `localhost`, or by a name given with `--http-host`: a page from another site that rebinds
/// its own name to this address (DNS rebinding) is refused.
fn host_allowed(console: &Console, request: &Request<Incoming>) -> bool {
    let Some(host) = request.headers().get("host").and_then(|h| h.to_str().ok()) else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => {
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
        }
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || console.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
}

/// A change must come from the console's own page: an `Origin`, when the browser sends one,
/// names the same host the request went to.
fn same_origin(request: &Request<Incoming>) -> bool {
    let Some(origin) = request.headers().get("origin").and_then(|o| o.to_str().ok()) else { return true };
    let host = request.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
    origin.strip_prefix("http://").is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

async fn respond(console: &Console, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if !host_allowed(console, &request) {
        let status = Response::builder().status(StatusCode::MISDIRECTED_REQUEST);
        return with_headers(status, "this console answers only to its address (or a name given with --http-host)\n");
    }
    if method == Method::GET {
        let asset = match path.as_str() {
            "/" | "/index.html" => Some((INDEX_HTML, "text/html; charset=utf-8")),
            "/app.js" => Some((APP_JS, "text/javascript; charset=utf-8")),
            "/style.css" => Some((STYLE_CSS, "text/css; charset=utf-8")),
            _ => None,
        };
        if let Some((body, content_type)) = asset {
            return with_headers(Response::builder().status(StatusCode::OK).header("content-type", content_type), body);
        }
    }
    let Some(api_path) = path.strip_prefix("/api/") else {
        return error(ApiError::NotFound(format!("no page {path}")));
    };
    // The page signs in with its own form; other clients (curl) get HTTP Basic's challenge.
    let from_page = request.headers().contains_key("x-runnel-page");
    let mut response = api(console, request, api_path.to_string()).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        let scheme = if from_page { "Console realm=\"runnel\"" } else { "Basic realm=\"runnel\", charset=\"UTF-8\"" };
        response.headers_mut().insert("www-authenticate", hyper::header::HeaderValue::from_static(scheme));
    }
    response
}

async fn api(console: &Console, request: Request<Incoming>, api_path: String) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let who = credentials(&request);
    let query = request.uri().query().unwrap_or("").to_string();
    let changes = method != Method::GET;
    if changes && (request.headers().get(CONFIRM_HEADER).is_none_or(|v| v != "confirm") || !same_origin(&request)) {
        return error(ApiError::Bad(format!(
            "a change needs the {CONFIRM_HEADER}: confirm header (sent once confirmed)"
        )));
    }
    let body = match Limited::new(request.into_body(), BODY_BYTES_MAX).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(ApiError::Bad(format!("the body is larger than {BODY_BYTES_MAX} bytes or cut short"))),
    };
    let body: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(e) => return error(ApiError::Bad(format!("the body is not JSON: {e}"))),
        }
    };
    let segments: Vec<String> = api_path.split('/').map(|segment| percent_decode(segment, false)).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match super::api::route(console, &method, &segments, &parse_query(&query), &body, &who).await {
        Ok(value) => json(StatusCode::OK, &value),
        Err(e) => error(e),
    }
}

fn credentials(request: &Request<Incoming>) -> Credentials {
    let header = request.headers().get("authorization")?.to_str().ok()?;
    let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `a=1&b=x%20y` as pairs, percent-decoded (`+` is a space in a query).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

/// Percent-decoding of one URL component (with `plus_is_space`, `+` as a space, as in a
/// query); an escape that is not two hex digits stays as it is.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%').then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?))).flatten();
        match (bytes[i], escaped) {
            (b'%', Some((high, low))) => {
                out.push(u8::try_from(high * 16 + low).expect("two hex digits make a byte"));
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn with_headers(builder: hyper::http::response::Builder, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    builder
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("content-security-policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
        .body(Full::new(body.into()))
        .expect("a valid response")
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    with_headers(
        Response::builder().status(status).header("content-type", "application/json"),
        serde_json::to_vec(value).expect("JSON serializes"),
    )
}

fn error(e: ApiError) -> Response<Full<Bytes>> {
    let (status, message) = match e {
        ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
        ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        ApiError::Bad(m) => (StatusCode::BAD_REQUEST, m),
        ApiError::Unavailable(m) => (StatusCode::BAD_GATEWAY, m),
    };
    json(status, &serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_percent_decoded_and_bad_escapes_kept() {
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("a+b", false), "a+b", "a path keeps its plus");
        assert_eq!(percent_decode("%zz%4", true), "%zz%4");
        assert_eq!(percent_decode("%+a", true), "% a", "only hex digits make an escape");
        assert_eq!(percent_decode("caf%C3%A9", true), "café");
        assert_eq!(
            parse_query("partition=1&offset=&x"),
            vec![("partition".into(), "1".into()), ("offset".into(), "".into()), ("x".into(), "".into())]
        );
    }
}
