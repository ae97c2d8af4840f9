//! Every HTTP(S) connection the binaries make, configured in ONE place.
//!
//! What it owns:
//! - **One crypto provider**: rustls on *ring* ([`provider`]), installed as the process default
//!   the first time a client is built. No other TLS library is linked (no aws-lc, no OpenSSL).
//! - **One root store**: the system's trusted roots, read the way OpenSSL and curl read them
//!   (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else the platform store). They are loaded on the
//!   first TLS handshake, not when a client is built, so a run that only talks plain HTTP (or
//!   prints `--version`) never reads them. No trusted root at all fails the handshake, naming the
//!   variables — never a silent fallback to "trust anything".
//! - **One HTTP client stack**: reqwest over that rustls configuration ([`client_builder`]).
//!   The AWS SDK ([`sdk_http_client`]), the GitHub API through octocrab ([`octocrab`]), the
//!   registry client, the OIDC token request and git's smart HTTP (`git::transport`) all get
//!   their clients here.
//! - **One proxy policy**: `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and `NO_PROXY` (either
//!   case, curl's rules), read by every client built here — so STS, ECR, GitHub, the registry and
//!   git all go through the same proxy or none.
//!   A command may choose its own proxy from its inputs (oidc-login's `http-proxy` /
//!   `no-proxy`, [`ProxyChoice`]); that choice then replaces the environment's for every client
//!   of that command, the SDK's included ([`sdk_http_client_via`]).
//! - **HTTP/1.1 only**: every remote we talk to speaks it, and it keeps the h2 stack out of the
//!   build.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use bytes::Bytes;
use http_body_util::BodyExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::exit::{Failure, Result};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The variables that choose the trusted roots (for messages and docs).
pub const ROOTS_ENV: &str = "SSL_CERT_FILE / SSL_CERT_DIR";

/// The one crypto provider (ring). Installed as the process default on first call; since ring
/// is the only provider linked, whatever is the default is this one.
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
    })
    .clone()
}

/// The trusted roots: read once, on the first TLS handshake of the process.
fn roots() -> std::result::Result<Arc<WebPkiServerVerifier>, String> {
    static V: OnceLock<std::result::Result<Arc<WebPkiServerVerifier>, String>> = OnceLock::new();
    V.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            return Err(format!(
                "no trusted root certificate could be loaded{why}; install the system CA \
                 certificates or point {ROOTS_ENV} at a PEM bundle"
            ));
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| format!("cannot use the trusted root certificates: {e}"))
    })
    .clone()
}

/// Standard WebPKI verification against [`roots`], which it loads on first use. Signature checks
/// that do not need the roots go straight to the provider.
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        roots().map_err(rustls::Error::General)?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The one rustls client configuration: ring, TLS 1.2 and 1.3, the system roots, HTTP/1.1.
pub fn tls_config() -> Result<Arc<ClientConfig>> {
    static C: OnceLock<std::result::Result<Arc<ClientConfig>, String>> = OnceLock::new();
    C.get_or_init(|| {
        let provider = provider();
        let mut cfg = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot configure TLS: {e}"))?
            .dangerous() // not dangerous: standard WebPKI verification, roots loaded lazily
            .with_custom_certificate_verifier(Arc::new(SystemRoots { provider }))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    })
    .clone()
    .map_err(Failure::runtime)
}

/// A reqwest builder on the one TLS configuration and the environment's proxy settings, with
/// a connect timeout. Callers add what is theirs (user agent, redirects, read timeout, pool).
pub fn client_builder(connect_timeout: Duration) -> Result<reqwest::ClientBuilder> {
    let tls = tls_config()?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .http1_only()
        .connect_timeout(connect_timeout))
}

// ----- proxies ------------------------------------------------------------------------------

/// A proxy chosen from a command's inputs instead of the environment: the proxy for `http://`
/// targets, the one for `https://` targets, and the hosts that bypass both (curl's `NO_PROXY`
/// syntax: host names, domain suffixes, IP addresses and CIDR blocks, `*` for all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyChoice {
    /// Proxy for `http://` targets.
    pub http: Option<String>,
    /// Proxy for `https://` targets.
    pub https: Option<String>,
    /// Hosts that are reached directly.
    pub no_proxy: Option<String>,
}

/// The first non-empty value among `names` (each tried as given, then in lower case).
fn env_first(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .flat_map(|n| [n.to_string(), n.to_ascii_lowercase()])
        .find_map(|n| env(&n).filter(|v| !v.trim().is_empty()))
}

/// What a command's `proxy` / `no_proxy` inputs mean together with the environment's
/// `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` (either case). Without either input
/// the answer is `None`: the environment's settings apply as for every client ([`client_builder`]).
/// An explicit proxy serves both schemes; an explicit bypass list replaces `NO_PROXY`.
pub fn proxy_choice(
    proxy: Option<&str>,
    no_proxy: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<ProxyChoice> {
    if proxy.is_none() && no_proxy.is_none() {
        return None;
    }
    let bypass = no_proxy
        .map(str::to_string)
        .or_else(|| env_first(env, &["NO_PROXY"]));
    Some(match proxy {
        Some(p) => ProxyChoice {
            http: Some(p.to_string()),
            https: Some(p.to_string()),
            no_proxy: bypass,
        },
        None => ProxyChoice {
            http: env_first(env, &["HTTP_PROXY", "ALL_PROXY"]),
            https: env_first(env, &["HTTPS_PROXY", "ALL_PROXY"]),
            no_proxy: bypass,
        },
    })
}

/// A proxy URL: `http://` or `https://`, a host, an optional port, nothing after the authority.
/// Userinfo (`user:password@`) is allowed (proxies authenticate that way); the message never
/// repeats the value, since it may carry that password.
pub fn proxy_url(field: &str, v: &str) -> Result<url::Url> {
    const RULE: &str = "is not a proxy URL (`http://proxy.example:3128` or `https://...`)";
    let u = url::Url::parse(v.trim()).map_err(|_| Failure::usage(field, RULE))?;
    let bare = matches!(u.path(), "" | "/") && u.query().is_none() && u.fragment().is_none();
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) || !bare {
        return Err(Failure::usage(field, RULE));
    }
    Ok(u)
}

impl ProxyChoice {
    /// Apply to a builder from [`client_builder`]: the environment's proxies are switched off and
    /// these take their place.
    pub fn apply(&self, b: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
        let bypass = || {
            self.no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string)
        };
        let bad = |e: reqwest::Error| Failure::runtime(format!("cannot use the proxy: {e}"));
        let mut b = b.no_proxy();
        if let Some(p) = &self.http {
            b = b.proxy(
                reqwest::Proxy::http(p.as_str())
                    .map_err(bad)?
                    .no_proxy(bypass()),
            );
        }
        if let Some(p) = &self.https {
            b = b.proxy(
                reqwest::Proxy::https(p.as_str())
                    .map_err(bad)?
                    .no_proxy(bypass()),
            );
        }
        Ok(b)
    }
}

/// [`client_builder`] with a command's own proxy choice, if it made one.
pub fn client_builder_via(
    connect_timeout: Duration,
    proxy: Option<&ProxyChoice>,
) -> Result<reqwest::ClientBuilder> {
    let b = client_builder(connect_timeout)?;
    match proxy {
        Some(p) => p.apply(b),
        None => Ok(b),
    }
}

/// Build a client from [`client_builder`], with the error every caller would write.
pub fn build(b: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    b.build()
        .map_err(|e| Failure::runtime(format!("cannot build HTTP client: {e}")))
}

// ----- the AWS SDK ------------------------------------------------------------------------------

/// The AWS SDK's HTTP client: the SDK's requests sent by reqwest on the one TLS stack. One
/// reqwest client per distinct (connect, read) timeout pair the SDK asks for.
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkClient::default())
}

/// [`sdk_http_client`] with a command's own proxy choice ([`ProxyChoice`]), if it made one.
pub fn sdk_http_client_via(proxy: Option<ProxyChoice>) -> SharedHttpClient {
    SharedHttpClient::new(SdkClient {
        proxy,
        ..SdkClient::default()
    })
}

/// The SDK's (connect, read) timeouts of one connector.
type SdkTimeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug, Default)]
struct SdkClient {
    clients: Mutex<HashMap<SdkTimeouts, SdkConnector>>,
    proxy: Option<ProxyChoice>,
}

/// A fallback connect timeout when the SDK configuration sets none.
const SDK_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpClient for SdkClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let conn = clients
            .entry(key)
            .or_insert_with(|| {
                let built =
                    client_builder_via(key.0.unwrap_or(SDK_CONNECT_TIMEOUT), self.proxy.as_ref())
                        .and_then(|b| {
                            let b = b.redirect(reqwest::redirect::Policy::none());
                            build(match key.1 {
                                Some(t) => b.read_timeout(t),
                                None => b,
                            })
                        });
                SdkConnector {
                    client: built.map_err(|f| f.to_string()),
                }
            })
            .clone();
        SharedHttpConnector::new(conn)
    }
}

#[derive(Debug, Clone)]
struct SdkConnector {
    client: std::result::Result<reqwest::Client, String>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| ConnectorError::other(e.into(), None))?;
            let req = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let req = reqwest::Request::try_from(req.map(reqwest::Body::wrap))
                .map_err(|e| ConnectorError::user(e.into()))?;
            let resp = client.execute(req).await.map_err(sdk_error)?;
            let resp: http::Response<reqwest::Body> = resp.into();
            HttpResponse::try_from(resp.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// How the SDK should see a transport failure: timeouts and connection failures are transient
/// (its retry rules and ours in `aws` treat them so), anything else a transient I/O error too.
fn sdk_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() {
        ConnectorError::io(e.into()).never_connected()
    } else if e.is_builder() {
        ConnectorError::user(e.into())
    } else {
        ConnectorError::other(e.into(), Some(ErrorKind::TransientError))
    }
}

// ----- octocrab -----------------------------------------------------------------------------

/// An octocrab client whose requests reqwest sends on the one TLS stack. `base` is the API
/// origin; the token goes only to that origin (octocrab's rule), marked sensitive. Each request
/// is sent once: there is no retry here (a POST must never be repeated behind the caller's
/// back); `github::Client`, the only caller, owns the retry rules.
pub fn octocrab(
    base: &str,
    token: &str,
    connect: Duration,
    read: Duration,
) -> Result<octocrab::Octocrab> {
    use octocrab::service::middleware::{auth_header::AuthHeaderLayer, base_uri::BaseUriLayer};
    let uri: http::Uri = base
        .parse()
        .map_err(|e| Failure::usage("github-api-url", format!("not a usable URL: {e}")))?;
    let mut bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Failure::usage("github-token", "contains characters a header cannot carry"))?;
    bearer.set_sensitive(true);
    let client = build(
        client_builder(connect)?
            .read_timeout(read)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gitops-actions/", env!("CARGO_PKG_VERSION"))),
    )?;
    let crab = octocrab::OctocrabBuilder::new_empty()
        .with_service(Reqwest { client })
        .with_layer(&BaseUriLayer::new(uri.clone()))
        .with_layer(&AuthHeaderLayer::new(Some(bearer), uri.clone(), uri))
        .with_auth(octocrab::AuthState::None)
        .build();
    match crab {
        Ok(c) => Ok(c),
        Err(never) => match never {},
    }
}

/// The tower service octocrab sends through.
#[derive(Clone)]
struct Reqwest {
    client: reqwest::Client,
}

type Pending = Pin<
    Box<dyn Future<Output = std::result::Result<http::Response<reqwest::Body>, BoxError>> + Send>,
>;

impl<B> tower::Service<http::Request<B>> for Reqwest
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<reqwest::Body>;
    type Error = BoxError;
    type Future = Pending;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Pending {
        let client = self.client.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            // GitHub API bodies are small JSON: buffered, then sent once.
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let sent = client
                .request(parts.method, parts.uri.to_string())
                .version(http::Version::HTTP_11)
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            Ok(sent.into())
        })
    }
}

// ----- verification probes ------------------------------------------------------------------

/// Why an address must never be probed: link-local (169.254.0.0/16, fe80::/10, where cloud
/// metadata services live) and the metadata addresses themselves (fd00:ec2::254, ...).
/// Loopback and private ranges stay allowed (tests, the demo, internal health endpoints).
pub fn forbidden_ip(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if o[0] == 169 && o[1] == 254 {
                return Some("is a link-local or cloud metadata address (169.254.0.0/16)");
            }
            // Alibaba Cloud's metadata service; 0.0.0.0/8 reaches this host on Linux.
            if o == [100, 100, 100, 200] || o[0] == 0 {
                return Some("is a cloud metadata or unspecified address");
            }
            None
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if (s[0] & 0xffc0) == 0xfe80 {
                return Some("is a link-local address (fe80::/10)");
            }
            if v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                return Some("is the cloud metadata address fd00:ec2::254");
            }
            if v6.is_unspecified() {
                return Some("is the unspecified address");
            }
            None
        }
    }
}

/// [`forbidden_ip`] for a URL whose host is an address literal (a name is checked after DNS
/// resolution, by the probe client's resolver). `metadata.google.internal` is refused by name.
pub fn forbidden_host(u: &url::Url) -> Option<&'static str> {
    match u.host()? {
        url::Host::Ipv4(a) => forbidden_ip(a.into()),
        url::Host::Ipv6(a) => forbidden_ip(a.into()),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "metadata.google.internal" || d == "metadata")
                .then_some("is a cloud metadata host name")
        }
    }
}

/// The marker error of a refused address (found in a reqwest error's source chain).
#[derive(Debug)]
struct ForbiddenAddress(String);

impl std::fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ForbiddenAddress {}

/// What a name resolved to may be connected to only when no address is forbidden
/// ([`forbidden_ip`]): one forbidden answer refuses the name as a whole.
fn check_resolved(
    host: &str,
    addrs: &[std::net::SocketAddr],
) -> std::result::Result<(), ForbiddenAddress> {
    match addrs
        .iter()
        .find_map(|a| forbidden_ip(a.ip()).map(|why| (a.ip(), why)))
    {
        Some((ip, why)) => Err(ForbiddenAddress(format!(
            "`{host}` resolves to {ip} which {why}"
        ))),
        None => Ok(()),
    }
}

/// The probe client's resolver: the system's, then every answer checked with [`forbidden_ip`];
/// a name that resolves to any forbidden address is refused as a whole (no "try the next one").
struct CheckedResolver;

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError { Box::new(e) })?
                .collect();
            check_resolved(&host, &addrs).map_err(|f| Box::new(f) as BoxError)?;
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// The HTTP client of verification probes: the one TLS stack, redirects followed only on the
/// same scheme, host and port (at most 5), never to a forbidden address, and names checked
/// after DNS resolution ([`CheckedResolver`]). It connects directly, never through a proxy:
/// the address rule must see the address actually connected to.
pub fn probe_client() -> Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().cloned();
        let next = attempt.url().clone();
        if attempt.previous().len() > 5 {
            return attempt.error("more than 5 redirects");
        }
        let Some(first) = first else {
            return attempt.follow();
        };
        let same = first.scheme() == next.scheme()
            && first.host_str() == next.host_str()
            && first.port_or_known_default() == next.port_or_known_default();
        if !same {
            return attempt.error(ForbiddenAddress(
                "redirect to another host, port or scheme (never followed)".into(),
            ));
        }
        if let Some(why) = forbidden_host(&next) {
            return attempt.error(ForbiddenAddress(format!(
                "redirect to an address that {why}"
            )));
        }
        attempt.follow()
    });
    build(
        client_builder(Duration::from_secs(5))?
            .no_proxy()
            .redirect(policy)
            .dns_resolver(Arc::new(CheckedResolver))
            .user_agent(concat!("gitops-actions-verify/", env!("CARGO_PKG_VERSION"))),
    )
}

/// What one probe request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// A response: its status, and whether its body (first 64 KiB) contains the expected text.
    Response {
        /// Status code.
        status: u16,
        /// `None` when no text was expected.
        body_matches: Option<bool>,
    },
    /// A transport failure (timeout, connection, TLS), described without the URL.
    Failed(String),
    /// A safety rule refused the request (redirect to another host, forbidden address).
    Refused(String),
}

/// Send one GET with a timeout; read at most 64 KiB of the body when `expect` is given.
pub async fn probe(
    client: &reqwest::Client,
    url: &url::Url,
    timeout: Duration,
    expect: Option<&str>,
) -> ProbeAnswer {
    if let Some(why) = forbidden_host(url) {
        return ProbeAnswer::Refused(format!("the address {why}"));
    }
    let sent = tokio::time::timeout(timeout, async {
        let mut resp = client.get(url.clone()).timeout(timeout).send().await?;
        let status = resp.status().as_u16();
        let body_matches = match expect {
            None => None,
            Some(want) => {
                let mut buf = Vec::new();
                while let Some(chunk) = resp.chunk().await? {
                    buf.extend_from_slice(&chunk);
                    if buf.len() >= 64 * 1024 {
                        break;
                    }
                }
                Some(String::from_utf8_lossy(&buf).contains(want))
            }
        };
        Ok::<_, reqwest::Error>((status, body_matches))
    })
    .await;
    match sent {
        Err(_) => ProbeAnswer::Failed(format!("timed out after {}s", timeout.as_secs())),
        Ok(Ok((status, body_matches))) => ProbeAnswer::Response {
            status,
            body_matches,
        },
        Ok(Err(e)) => describe_probe_error(&e, timeout),
    }
}

fn describe_probe_error(e: &reqwest::Error, timeout: Duration) -> ProbeAnswer {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut tls = None;
    while let Some(s) = src {
        if let Some(f) = s.downcast_ref::<ForbiddenAddress>() {
            return ProbeAnswer::Refused(f.0.clone());
        }
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            tls = Some(r.to_string());
        }
        // An io::Error's `source` skips the error it wraps (rustls's, inside hyper-rustls's
        // io errors): walk into it instead.
        src = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    if e.is_redirect() {
        return ProbeAnswer::Refused("too many redirects".into());
    }
    if let Some(t) = tls {
        return ProbeAnswer::Failed(format!("TLS: {t}"));
    }
    if e.is_timeout() {
        return ProbeAnswer::Failed(format!("timed out after {}s", timeout.as_secs()));
    }
    if e.is_connect() {
        return ProbeAnswer::Failed("connection failed".into());
    }
    ProbeAnswer::Failed(if e.is_body() || e.is_decode() {
        "the response body could not be read".into()
    } else {
        "the request failed".into()
    })
}

/// A tokio runtime for one command (multi-threaded: uploads and API calls run concurrently). The
/// network layer owns it, so `github`, `aws` and the commands all reach it without going through
/// `cli` (which imports them).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_provider_and_http1_only() {
        let cfg = tls_config().unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
        // The provider of the config is the process default: one provider for every client.
        let default = CryptoProvider::get_default().expect("installed");
        assert!(
            Arc::ptr_eq(cfg.crypto_provider(), default) || {
                let names = |p: &CryptoProvider| {
                    p.cipher_suites
                        .iter()
                        .map(|s| format!("{:?}", s.suite()))
                        .collect::<Vec<_>>()
                };
                names(cfg.crypto_provider()) == names(default)
            }
        );
    }

    #[test]
    fn proxy_choice_table() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let some = |h: Option<&str>, s: Option<&str>, n: Option<&str>| {
            Some(ProxyChoice {
                http: h.map(str::to_string),
                https: s.map(str::to_string),
                no_proxy: n.map(str::to_string),
            })
        };
        let full: &[(&str, &str)] = &[
            ("HTTPS_PROXY", "http://s:1"),
            ("http_proxy", "http://h:1"),
            ("NO_PROXY", "internal"),
        ];
        #[rustfmt::skip]
        type Row<'a> = (Option<&'a str>, Option<&'a str>, &'a [(&'a str, &'a str)], Option<ProxyChoice>);
        let rows: Vec<Row> = vec![
            // No input: the environment applies as for every client (reqwest reads it).
            (None, None, full, None),
            // An explicit proxy serves both schemes; NO_PROXY still bypasses it.
            (
                Some("http://p:3128"),
                None,
                full,
                some(
                    Some("http://p:3128"),
                    Some("http://p:3128"),
                    Some("internal"),
                ),
            ),
            // An explicit bypass list replaces NO_PROXY and keeps the environment's proxies.
            (
                None,
                Some("127.0.0.1"),
                full,
                some(Some("http://h:1"), Some("http://s:1"), Some("127.0.0.1")),
            ),
            (
                Some("http://p:3128"),
                Some("a,b"),
                full,
                some(Some("http://p:3128"), Some("http://p:3128"), Some("a,b")),
            ),
            // ALL_PROXY fills whichever scheme has no proxy of its own; empty values do not count.
            (
                None,
                Some("x"),
                &[("ALL_PROXY", "http://a:1"), ("HTTPS_PROXY", " ")],
                some(Some("http://a:1"), Some("http://a:1"), Some("x")),
            ),
            (None, Some("x"), &[], some(None, None, Some("x"))),
        ];
        for (p, n, e, want) in rows {
            assert_eq!(proxy_choice(p, n, &env(e)), want, "{p:?} {n:?} {e:?}");
        }
    }

    #[test]
    fn proxy_urls_never_echo_their_value() {
        for ok in [
            "http://p:3128",
            "https://u:pw@proxy.example",
            "http://10.0.0.1:8080/",
        ] {
            proxy_url("http-proxy", ok).unwrap();
        }
        for bad in [
            "p:3128",
            "socks5://p:1080",
            "http://u:SECRETpw@p:3128/path",
            "http://u:SECRETpw@p:3128?x",
            "ftp://p",
            "",
            "http://",
        ] {
            let e = proxy_url("http-proxy", bad).unwrap_err().to_string();
            assert!(
                e.contains("`http-proxy`") && !e.contains("SECRET"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_name_resolving_to_a_forbidden_address_is_refused_as_a_whole() {
        let a = |s: &str| -> std::net::SocketAddr { s.parse().unwrap() };
        assert!(check_resolved("app", &[a("127.0.0.1:0"), a("[::1]:0")]).is_ok());
        let e =
            check_resolved("evil.example", &[a("10.0.0.1:0"), a("169.254.169.254:0")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`evil.example` resolves to 169.254.169.254 which is a link-local or cloud metadata address (169.254.0.0/16)"
        );
        assert!(check_resolved("v6", &[a("[fd00:ec2::254]:0")]).is_err());
    }

    #[test]
    fn forbidden_addresses() {
        use std::net::IpAddr;
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(forbidden_ip(ip).is_some(), "{bad}");
        }
        for good in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "fd00::1",
        ] {
            let ip: IpAddr = good.parse().unwrap();
            assert_eq!(forbidden_ip(ip), None, "{good}");
        }
        for (u, bad) in [
            ("http://169.254.169.254/latest/meta-data/", true),
            ("http://[fd00:ec2::254]/", true),
            ("http://metadata.google.internal./", true),
            ("http://127.0.0.1:8080/", false),
            ("https://example.com/", false),
        ] {
            assert_eq!(
                forbidden_host(&url::Url::parse(u).unwrap()).is_some(),
                bad,
                "{u}"
            );
        }
    }

    #[test]
    fn sdk_errors_keep_their_class() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Nothing listens on port 9 of loopback: a connection failure, transient, never connected.
        let client = build(client_builder(Duration::from_secs(2)).unwrap()).unwrap();
        let e = rt
            .block_on(client.get("http://127.0.0.1:9/").send())
            .unwrap_err();
        let c = sdk_error(e);
        assert!(c.is_io(), "{c:?}");
    }
}
