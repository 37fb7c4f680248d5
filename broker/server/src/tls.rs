//! TLS on `SSL` listeners, configured with Kafka's `ssl.*` keys, through rustls.
//!
//! Only PEM stores are taken (`ssl.keystore.type=PEM`, `ssl.truststore.type=PEM`): a file
//! (`ssl.keystore.location`, holding the private key and the certificate chain;
//! `ssl.truststore.location`) or the PEM text itself (`ssl.keystore.certificate.chain` with
//! `ssl.keystore.key`; `ssl.truststore.certificates`). Every key may be given for one listener as
//! `listener.name.<name>.ssl.…`, which wins over the plain key, as in Kafka. Files are read again
//! when they change (Kafka needs an AlterConfigs for that): a renewed certificate is served to new
//! connections without a restart, and one that does not load is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

/// `ssl.client.auth`: whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for; a client without one still connects.
    Requested,
    Required,
}

/// Where PEM text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    /// The text itself, from the config (`key` names the key it came from, for errors).
    Inline {
        key: String,
        text: String,
    },
}

impl Pem {
    fn read(&self) -> Result<Vec<u8>, Error> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(Error::path_io(path)),
            Pem::Inline { text, .. } => Ok(text.as_bytes().to_vec()),
        }
    }

    fn file(&self) -> Option<&Path> {
        match self {
            Pem::File(path) => Some(path),
            Pem::Inline { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Pem::File(path) => path.display().to_string(),
            Pem::Inline { key, .. } => key.clone(),
        }
    }
}

/// The TLS settings of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub listener: String,
    /// The certificate chain, and the private key (`None`: in the same PEM as the chain).
    pub chain: Pem,
    pub key: Option<Pem>,
    pub truststore: Option<Pem>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
    pub tls12: bool,
    pub tls13: bool,
    /// `ssl.endpoint.identification.algorithm`: when this node dials the listener (inter-broker, controller),
    /// whether the server's certificate must name the host dialed (`https`, the default) or only chain to
    /// the truststore (empty).
    pub verify_hostname: bool,
    /// `ssl.principal.mapping.rules`: a client certificate's subject DN to its user name.
    pub principal_rules: crate::principal::MappingRules,
}

/// Whether `key` is one this module reads (so the config does not call it unknown).
pub fn is_tls_key(key: &str) -> bool {
    let key = match key.strip_prefix("listener.name.") {
        Some(rest) => rest.split_once('.').map_or("", |(_, k)| k),
        None => key,
    };
    key.starts_with("ssl.")
}

/// Reads `listener`'s settings. `get` looks a key up (after `${env:…}` substitution).
pub fn settings(
    listener: &str,
    get: &dyn Fn(&str) -> Result<Option<String>, Error>,
) -> Result<TlsSettings, Error> {
    // The listener's own key first, as in Kafka.
    let lookup = |key: &str| -> Result<Option<(String, String)>, Error> {
        let own = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        if let Some(v) = get(&own)? {
            return Ok(Some((own, v)));
        }
        Ok(get(key)?.map(|v| (key.to_owned(), v)))
    };
    let non_empty = |key: &str| -> Result<Option<(String, String)>, Error> {
        Ok(lookup(key)?.filter(|(_, v)| !v.trim().is_empty()))
    };
    for store in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some((k, v)) = non_empty(store)?
            && !v.trim().eq_ignore_ascii_case("PEM")
        {
            return Err(Error::invalid(
                &k,
                &v,
                "PEM (Sluice reads PEM stores only; convert a JKS or PKCS12 store with keytool and openssl)",
            ));
        }
    }
    if let Some((k, _)) = non_empty("ssl.key.password")? {
        return Err(Error::config(
            &k,
            "encrypted private keys are not supported: give the key unencrypted (PKCS#8 PEM), \
             readable only by the broker",
        ));
    }
    let location = non_empty("ssl.keystore.location")?;
    let inline_chain = non_empty("ssl.keystore.certificate.chain")?;
    let inline_key = non_empty("ssl.keystore.key")?;
    let (chain, key) = match (location, inline_chain, inline_key) {
        (Some((_, path)), None, None) => (Pem::File(PathBuf::from(path.trim())), None),
        (None, Some((ck, chain)), Some((kk, key))) => (
            Pem::Inline {
                key: ck,
                text: chain,
            },
            Some(Pem::Inline { key: kk, text: key }),
        ),
        (Some((k, _)), _, _) => {
            return Err(Error::config(
                &k,
                "give either ssl.keystore.location or ssl.keystore.certificate.chain with \
                 ssl.keystore.key, not both",
            ));
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(Error::config(
                "ssl.keystore.key",
                "ssl.keystore.certificate.chain and ssl.keystore.key go together",
            ));
        }
        (None, None, None) => {
            return Err(Error::config(
                "ssl.keystore.location",
                format!("listener {listener} uses SSL and needs a certificate and key"),
            ));
        }
    };
    let truststore = match (
        non_empty("ssl.truststore.location")?,
        non_empty("ssl.truststore.certificates")?,
    ) {
        (Some((_, path)), None) => Some(Pem::File(PathBuf::from(path.trim()))),
        (None, Some((k, text))) => Some(Pem::Inline { key: k, text }),
        (None, None) => None,
        (Some((k, _)), Some(_)) => {
            return Err(Error::config(
                &k,
                "give either ssl.truststore.location or ssl.truststore.certificates, not both",
            ));
        }
    };
    let client_auth = match non_empty("ssl.client.auth")? {
        None => ClientAuth::None,
        Some((k, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => return Err(Error::invalid(&k, &v, "none, requested or required")),
        },
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(Error::config(
            "ssl.truststore.location",
            format!(
                "listener {listener} asks clients for certificates (ssl.client.auth) and needs a \
                 truststore to check them against"
            ),
        ));
    }
    let (mut tls12, mut tls13) = (true, true);
    if let Some((k, v)) = non_empty("ssl.enabled.protocols")? {
        (tls12, tls13) = (false, false);
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p {
                "TLSv1.2" => tls12 = true,
                "TLSv1.3" => tls13 = true,
                _ => return Err(Error::invalid(&k, &v, "TLSv1.2 and/or TLSv1.3")),
            }
        }
    }
    let verify_hostname = match lookup("ssl.endpoint.identification.algorithm")? {
        None => true,
        Some((k, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "https" => true,
            "" => false,
            _ => {
                return Err(Error::invalid(
                    &k,
                    &v,
                    "https, or empty to skip the host name check",
                ));
            }
        },
    };
    let principal_rules = match lookup("ssl.principal.mapping.rules")? {
        None => crate::principal::MappingRules::default(),
        Some((k, v)) => crate::principal::MappingRules::parse(&k, &v)?,
    };
    Ok(TlsSettings {
        listener: listener.to_owned(),
        chain,
        key,
        truststore,
        client_auth,
        tls12,
        tls13,
        verify_hostname,
        principal_rules,
    })
}

fn tls_error(what: &Pem, message: impl std::fmt::Display) -> Error {
    Error::Format(format!("TLS: {}: {message}", what.describe()))
}

/// The listener's own certificate chain and key.
fn identity(
    settings: &TlsSettings,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let chain_pem = settings.chain.read()?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(&settings.chain, e))?;
    if chain.is_empty() {
        return Err(tls_error(&settings.chain, "no certificate in it"));
    }
    let key_source = settings.key.as_ref().unwrap_or(&settings.chain);
    let key_pem = match &settings.key {
        Some(key) => key.read()?,
        None => chain_pem,
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        tls_error(
            key_source,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM, unencrypted): {e}"),
        )
    })?;
    Ok((chain, key))
}

/// The CAs of a truststore.
fn roots(trust: &Pem) -> Result<rustls::RootCertStore, Error> {
    let pem = trust.read()?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| tls_error(trust, e))?;
        roots
            .add(cert)
            .map_err(|e| tls_error(trust, format!("not a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(tls_error(trust, "no certificate in it"));
    }
    Ok(roots)
}

fn versions(settings: &TlsSettings) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut versions = Vec::new();
    if settings.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if settings.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// Builds the rustls server config the settings describe, reading every PEM now.
/// `kernel_tls`: the session keys may be taken out of rustls after the handshake, for the kernel.
pub fn server_config(settings: &TlsSettings, kernel_tls: bool) -> Result<Arc<ServerConfig>, Error> {
    let (chain, key) = identity(settings)?;
    let key_source = settings.key.as_ref().unwrap_or(&settings.chain);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(settings);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| Error::config("ssl.enabled.protocols", e.to_string()))?;
    let builder = match (&settings.truststore, settings.client_auth) {
        (Some(trust), auth) if auth != ClientAuth::None => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(trust)?),
                provider.clone(),
            );
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| tls_error(trust, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        tls_error(
            key_source,
            format!("the key does not fit the certificate: {e}"),
        )
    })?;
    config.enable_secret_extraction = kernel_tls;
    Ok(Arc::new(config))
}

/// The rustls client config this node dials a listener of these settings with (inter-broker and controller
/// traffic): the truststore's CAs check the server, and the listener's own certificate is presented, so a
/// listener with `ssl.client.auth=required` knows the node (its principal is the certificate's subject).
pub fn client_config(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, Error> {
    let Some(trust) = &settings.truststore else {
        return Err(Error::config(
            &format!(
                "listener.name.{}.ssl.truststore.location",
                settings.listener.to_ascii_lowercase()
            ),
            format!(
                "this node connects to listener {} over TLS and needs a truststore to check the other \
                 nodes' certificates against",
                settings.listener
            ),
        ));
    };
    let (chain, key) = identity(settings)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots(trust)?);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(settings))
        .map_err(|e| Error::config("ssl.enabled.protocols", e.to_string()))?;
    let builder = if settings.verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| tls_error(trust, e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyHostName(inner)))
    };
    let identity = ReloadingIdentity::load(settings, chain, key)?;
    let config = builder.with_client_cert_resolver(Arc::new(identity));
    Ok(Arc::new(config))
}

/// The certificate this node presents when it dials another node, read again when its files change (as
/// a listener's are), so that a renewed certificate is used without a restart, before the old one expires.
#[derive(Debug)]
struct ReloadingIdentity {
    settings: TlsSettings,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: Mutex<(Stamp, Arc<rustls::sign::CertifiedKey>)>,
}

impl ReloadingIdentity {
    fn load(
        settings: &TlsSettings,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ReloadingIdentity, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = Self::certified(settings, &provider, chain, key)?;
        Ok(ReloadingIdentity {
            settings: settings.clone(),
            provider,
            current: Mutex::new((stamp(settings), certified)),
        })
    }

    fn certified(
        settings: &TlsSettings,
        provider: &rustls::crypto::CryptoProvider,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<rustls::sign::CertifiedKey>, Error> {
        rustls::sign::CertifiedKey::from_der(chain, key, provider)
            .map(Arc::new)
            .map_err(|e| {
                tls_error(
                    &settings.chain,
                    format!("unusable as a client certificate: {e}"),
                )
            })
    }
}

impl rustls::client::ResolvesClientCert for ReloadingIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut current = self.current.lock();
        let now = stamp(&self.settings);
        if current.0 != now {
            let reloaded = identity(&self.settings).and_then(|(chain, key)| {
                Self::certified(&self.settings, &self.provider, chain, key)
            });
            match reloaded {
                Ok(certified) => {
                    tracing::info!(listener = %self.settings.listener, "client certificate reloaded");
                    *current = (now, certified);
                }
                // Kept, and tried again on the next change: a half-written renewal breaks nothing.
                Err(e) => {
                    tracing::error!(listener = %self.settings.listener, error = %e,
                        "client certificate changed but does not load; still using the previous one");
                    current.0 = now;
                }
            }
        }
        Some(current.1.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain must still lead to a trusted CA and be
/// valid; only the host name check is skipped, as in Kafka.
#[derive(Debug)]
struct AnyHostName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What a file looked like when last read, to notice a change.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(settings: &TlsSettings) -> Stamp {
    [
        Some(&settings.chain),
        settings.key.as_ref(),
        settings.truststore.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(Pem::file)
    .map(|path| {
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

/// One listener's TLS: the config new connections are accepted with, re-read when its files change.
pub struct ListenerTls {
    settings: TlsSettings,
    config: RwLock<Arc<ServerConfig>>,
    seen: Mutex<Stamp>,
    /// What the kernel can take over after the handshake (`crate::kernel_tls`); `None` when it is off
    /// (`sluice.ssl.kernel.offload=false`) or the kernel has no kTLS.
    kernel: Option<&'static crate::kernel_tls::Support>,
}

impl ListenerTls {
    /// Reads the certificates now: a listener that cannot serve TLS stops start-up. `kernel_offload`:
    /// hand sessions to the kernel where it can take them.
    pub fn load(settings: TlsSettings, kernel_offload: bool) -> Result<ListenerTls, Error> {
        let seen = stamp(&settings);
        let kernel = kernel_offload
            .then(crate::kernel_tls::support)
            .filter(|support| support.any());
        let config = server_config(&settings, kernel.is_some())?;
        Ok(ListenerTls {
            settings,
            config: RwLock::new(config),
            seen: Mutex::new(seen),
            kernel,
        })
    }

    pub fn kernel(&self) -> Option<&'static crate::kernel_tls::Support> {
        self.kernel
    }

    pub fn principal_rules(&self) -> &crate::principal::MappingRules {
        &self.settings.principal_rules
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.read().clone())
    }

    /// Reads the files again if any changed. A set that does not load is logged and the current one
    /// kept, so a half-written renewal breaks nothing; it is tried again on the next change.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.settings);
        {
            let mut seen = self.seen.lock();
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match server_config(&self.settings, self.kernel.is_some()) {
            Ok(config) => {
                *self.config.write() = config;
                tracing::info!(listener = %self.settings.listener, "TLS certificates reloaded");
                true
            }
            Err(e) => {
                tracing::error!(listener = %self.settings.listener, error = %e,
                    "TLS certificates changed but do not load; still serving the previous ones");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<TlsSettings, Error> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings("SSL", &|k| Ok(map.get(k).cloned()))
    }

    fn refused(pairs: &[(&str, &str)]) -> String {
        parse(pairs).expect_err("refused").to_string()
    }

    /// The certificate the config presents when it dials.
    fn presented(config: &rustls::ClientConfig) -> Vec<u8> {
        let key = config
            .client_auth_cert_resolver
            .resolve(&[], &[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
            .expect("a client certificate");
        key.cert[0].to_vec()
    }

    #[test]
    fn the_certificate_a_node_dials_with_is_read_again_when_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = dir.path().join("node.pem");
        let write = |cert: &rcgen::CertifiedKey<rcgen::KeyPair>, stamp: u64| {
            let pem = format!("{}{}", cert.signing_key.serialize_pem(), cert.cert.pem());
            std::fs::write(&keystore, pem).unwrap();
            // A distinct modification time, however coarse the file system's clock.
            let file = std::fs::File::options()
                .write(true)
                .open(&keystore)
                .unwrap();
            file.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(stamp))
                .unwrap();
        };
        let first = rcgen::generate_simple_self_signed(vec!["node".to_owned()]).unwrap();
        write(&first, 1_000_000);
        let path = keystore.display().to_string();
        let settings = parse(&[
            ("ssl.keystore.location", &path),
            ("ssl.truststore.location", &path),
        ])
        .unwrap();
        let config = client_config(&settings).unwrap();
        assert_eq!(presented(&config), first.cert.der().to_vec());

        let renewed = rcgen::generate_simple_self_signed(vec!["node".to_owned()]).unwrap();
        write(&renewed, 2_000_000);
        assert_eq!(presented(&config), renewed.cert.der().to_vec());

        // A file that does not load leaves the last good certificate in use.
        std::fs::write(&keystore, "half-written").unwrap();
        assert_eq!(presented(&config), renewed.cert.der().to_vec());
    }

    #[test]
    fn keys_are_read_with_the_listeners_own_first() {
        let s = parse(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/general.pem"),
            ("listener.name.ssl.ssl.keystore.location", "/own.pem"),
            ("ssl.truststore.certificates", "-----BEGIN CERTIFICATE-----"),
            ("ssl.client.auth", "required"),
            ("ssl.enabled.protocols", "TLSv1.3"),
        ])
        .unwrap();
        assert_eq!(s.chain, Pem::File("/own.pem".into()));
        assert_eq!(s.key, None);
        assert!(
            matches!(&s.truststore, Some(Pem::Inline { key, .. }) if key == "ssl.truststore.certificates")
        );
        assert_eq!(s.client_auth, ClientAuth::Required);
        assert!(s.tls13 && !s.tls12);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_key() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[], "ssl.keystore.location"),
            (
                &[
                    ("ssl.keystore.type", "JKS"),
                    ("ssl.keystore.location", "/k"),
                ],
                "ssl.keystore.type",
            ),
            (
                &[("ssl.keystore.location", "/k"), ("ssl.key.password", "x")],
                "ssl.key.password",
            ),
            (
                &[("ssl.keystore.certificate.chain", "x")],
                "ssl.keystore.key",
            ),
            (
                &[("ssl.keystore.location", "/k"), ("ssl.client.auth", "yes")],
                "ssl.client.auth",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.client.auth", "required"),
                ],
                "ssl.truststore.location",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.enabled.protocols", "TLSv1.1"),
                ],
                "ssl.enabled.protocols",
            ),
        ];
        for (pairs, key) in cases {
            let message = refused(pairs);
            assert!(message.contains(key), "{pairs:?}: {message}");
        }
    }

    #[test]
    fn tls_keys_are_recognised() {
        assert!(is_tls_key("ssl.keystore.location"));
        assert!(is_tls_key("listener.name.external.ssl.client.auth"));
        assert!(!is_tls_key(
            "listener.name.external.sasl.enabled.mechanisms"
        ));
        assert!(!is_tls_key("listeners"));
    }
}
