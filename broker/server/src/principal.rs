//! Who a connection is, as Kafka's default principal builder names it: `User:ANONYMOUS` on a plaintext
//! listener (or TLS without a client certificate), `User:<name>` once SASL authenticated, and `User:<subject
//! DN>` for a TLS client certificate, the DN written as RFC 2253 has it (Java's `X500Principal.getName()`:
//! most specific part first, `CN=alice,OU=eng,O=Acme`).

use x509_parser::prelude::{FromDer, X509Certificate};

pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The principal of a TLS client certificate (DER), or `None` if it does not parse.
pub fn of_certificate(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut parts = Vec::new();
    for rdn in cert
        .subject()
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let mut attrs = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let value = match (short_name(&oid), attr.as_str()) {
                (Some(name), Ok(text)) => format!("{name}={}", escape(text)),
                // Java writes attribute types it has no name for, or values that are not strings, as the
                // dotted OID and the value's DER in hex.
                _ => {
                    let data = attr.as_slice();
                    let mut der = vec![attr.attr_value().tag().0 as u8];
                    if data.len() < 128 {
                        der.push(data.len() as u8);
                    } else {
                        let len = (data.len() as u32).to_be_bytes();
                        let skip = len.iter().take_while(|&&b| b == 0).count();
                        der.push(0x80 | (4 - skip) as u8);
                        der.extend_from_slice(&len[skip..]);
                    }
                    der.extend_from_slice(data);
                    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{oid}=#{hex}")
                }
            };
            attrs.push(value);
        }
        parts.push(attrs.join("+"));
    }
    Some(format!("User:{}", parts.join(",")))
}

/// The keywords RFC 2253 (and Java) use for attribute types.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 2253 section 2.4: the special characters, a leading '#' or space and a trailing space get a backslash.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificates_subject_is_written_most_specific_first() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            of_certificate(cert.der()).as_deref(),
            Some("User:CN=alice,OU=eng,O=Acme\\, Inc.,C=US")
        );
        assert_eq!(of_certificate(b"not a certificate"), None);
        assert_eq!(escape(" #a;b "), "\\ #a\\;b\\ ");
    }
}
