//! The certificates the operator issues: a certificate authority per cluster (and one for its
//! clients), node certificates for the brokers and controllers, client certificates for users and
//! for the operator itself. ECDSA P-256 keys, PEM everywhere (the brokers read `ssl.keystore.type=PEM`).
//!
//! Issuing draws random keys; deciding whether a certificate must be issued again
//! ([`needs_renewal`]) is pure and takes the time as an input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

use crate::error::Error;

/// The organization in the subject of every certificate the operator gives a node or itself. A
/// user's certificate has none, so no user can ever hold a node's principal (see
/// [`node_principal`]).
pub const NODE_ORGANIZATION: &str = "sluice.dev";

/// How long a certificate authority is valid. It is not rotated (see the operator README).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long a node or user certificate is valid; it is issued again once a third of that is left.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 86_400);

/// The Kafka principal of a certificate [`issue`]d for a node: its subject DN as Kafka writes it
/// (RFC 2253, most specific first).
pub fn node_principal(common_name: &str) -> String {
    format!("User:CN={common_name},O={NODE_ORGANIZATION}")
}

/// A certificate authority: its certificate and private key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// An issued certificate and its private key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf").finish_non_exhaustive()
    }
}

impl Leaf {
    /// A PEM keystore as Kafka's `ssl.keystore.location` takes it: the key, then the chain.
    pub fn keystore_pem(&self) -> String {
        keystore_pem(&self.key_pem, &self.cert_pem)
    }
}

/// The key, then the certificate chain, each ending in a newline.
pub fn keystore_pem(key_pem: &str, chain_pem: &str) -> String {
    let mut out = String::with_capacity(key_pem.len() + chain_pem.len() + 2);
    for part in [key_pem, chain_pem] {
        out.push_str(part.trim_end());
        out.push('\n');
    }
    out
}

/// What a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    pub common_name: String,
    /// `O=` of the subject: [`NODE_ORGANIZATION`] for nodes and the operator, none for users.
    pub organization: Option<String>,
    /// DNS names (wildcards allowed) a server certificate answers to; empty for a client.
    pub dns_names: Vec<String>,
    pub validity: Duration,
}

fn at(t: SystemTime) -> Result<OffsetDateTime, Error> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|e| cert_error("time", e))?
        .as_secs();
    OffsetDateTime::from_unix_timestamp(secs as i64).map_err(|e| cert_error("time", e))
}

fn cert_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Certificate {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

impl Ca {
    /// A new self-signed certificate authority named `common_name`.
    pub fn generate(common_name: &str, now: SystemTime) -> Result<Ca, Error> {
        let fail = |e| cert_error(common_name, e);
        let key = KeyPair::generate().map_err(fail)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::OrganizationName, NODE_ORGANIZATION);
            dn.push(DnType::CommonName, common_name);
            dn
        };
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // A minute back, so a node whose clock is a little behind takes it.
        params.not_before = at(now - Duration::from_secs(60))?;
        params.not_after = at(now + CA_VALIDITY)?;
        let cert = params.self_signed(&key).map_err(fail)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A certificate for `spec`, signed by this authority, usable both to serve and to dial (a
    /// node does both on the same listener).
    pub fn issue(&self, spec: &LeafSpec, now: SystemTime) -> Result<Leaf, Error> {
        let fail = |e| cert_error(&spec.common_name, e);
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(fail)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key).map_err(fail)?;
        let key = KeyPair::generate().map_err(fail)?;
        let mut params = CertificateParams::new(spec.dns_names.clone()).map_err(fail)?;
        params.distinguished_name = {
            // Pushed most general first: Kafka writes the DN the other way round (RFC 2253).
            let mut dn = DistinguishedName::new();
            if let Some(o) = &spec.organization {
                dn.push(DnType::OrganizationName, o.as_str());
            }
            dn.push(DnType::CommonName, spec.common_name.as_str());
            dn
        };
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = at(now - Duration::from_secs(60))?;
        params.not_after = at(now + spec.validity)?;
        let cert = params.signed_by(&key, &issuer).map_err(fail)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// What the renewal decision needs to know of an issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub not_after: SystemTime,
    pub dns_names: Vec<String>,
    pub common_name: String,
}

/// Reads the first certificate of `pem` (a keystore holds the key first, then the chain).
pub fn inspect(pem: &str) -> Result<Issued, Error> {
    let fail = |e: String| cert_error("read back", e);
    let block = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|block| block.label == "CERTIFICATE")
        .ok_or_else(|| fail("no CERTIFICATE block".to_owned()))?;
    let cert = block.parse_x509().map_err(|e| fail(e.to_string()))?;
    let not_after = cert.validity().not_after.timestamp();
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(Issued {
        not_after: UNIX_EPOCH + Duration::from_secs(not_after.max(0) as u64),
        dns_names,
        common_name,
    })
}

/// Whether a certificate must be issued again: there is none, it was issued by another authority
/// than the current one, it names other hosts or another subject than wanted, or less than a third
/// of its validity is left.
pub fn needs_renewal(
    existing: Option<&Issued>,
    issued_by_current_ca: bool,
    want: &LeafSpec,
    now: SystemTime,
) -> bool {
    let Some(existing) = existing else {
        return true;
    };
    let mut have = existing.dns_names.clone();
    let mut wanted = want.dns_names.clone();
    have.sort();
    wanted.sort();
    !issued_by_current_ca
        || have != wanted
        || existing.common_name != want.common_name
        || existing.not_after < now + want.validity / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_spec() -> LeafSpec {
        LeafSpec {
            common_name: "demo-broker".to_owned(),
            organization: Some(NODE_ORGANIZATION.to_owned()),
            dns_names: vec![
                "*.demo-brokers.ns.svc".to_owned(),
                "demo-brokers.ns.svc".to_owned(),
            ],
            validity: LEAF_VALIDITY,
        }
    }

    #[test]
    fn an_issued_certificate_reads_back_with_its_names_and_validity() {
        let now = SystemTime::now();
        let ca = Ca::generate("demo-cluster-ca", now).unwrap();
        let leaf = ca.issue(&node_spec(), now).unwrap();
        let issued = inspect(&leaf.cert_pem).unwrap();
        assert_eq!(issued.common_name, "demo-broker");
        assert_eq!(issued.dns_names, node_spec().dns_names);
        let left = issued.not_after.duration_since(now).unwrap();
        assert!(left > LEAF_VALIDITY - Duration::from_secs(5) && left <= LEAF_VALIDITY);
        let ks = leaf.keystore_pem();
        assert!(ks.starts_with("-----BEGIN PRIVATE KEY-----"), "{ks}");
        assert!(ks.contains("-----BEGIN CERTIFICATE-----"));
        // What the renewal decision reads back from a node's Secret: the keystore, key first.
        assert_eq!(inspect(&ks).unwrap(), issued);
        assert!(inspect(&leaf.key_pem).is_err());
    }

    #[test]
    fn renewal_is_due_when_missing_changed_foreign_or_two_thirds_old() {
        let now = SystemTime::now();
        let want = node_spec();
        let fresh = Issued {
            not_after: now + LEAF_VALIDITY,
            dns_names: vec![want.dns_names[1].clone(), want.dns_names[0].clone()],
            common_name: want.common_name.clone(),
        };
        assert!(
            !needs_renewal(Some(&fresh), true, &want, now),
            "order of names does not matter"
        );
        assert!(needs_renewal(None, true, &want, now));
        assert!(needs_renewal(Some(&fresh), false, &want, now));
        let mut other_hosts = fresh.clone();
        other_hosts.dns_names.pop();
        assert!(needs_renewal(Some(&other_hosts), true, &want, now));
        let mut other_cn = fresh.clone();
        other_cn.common_name = "x".to_owned();
        assert!(needs_renewal(Some(&other_cn), true, &want, now));
        let later = now + LEAF_VALIDITY * 2 / 3 + Duration::from_secs(1);
        assert!(needs_renewal(Some(&fresh), true, &want, later));
        let sooner = now + LEAF_VALIDITY / 2;
        assert!(!needs_renewal(Some(&fresh), true, &want, sooner));
    }
}
