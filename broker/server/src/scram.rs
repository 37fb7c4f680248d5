//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka serves them: the server's side of the
//! exchange, and turning a salted password (what AlterUserScramCredentials carries) into the credential the
//! metadata keeps. Pure: the caller passes the credential lookup and the server's nonce.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sluice_kafka_client::scram::{self, ScramHash};
use sluice_metadata::{ScramCredential, ScramMechanism};

fn algo(m: ScramMechanism) -> ScramHash {
    match m {
        ScramMechanism::Sha256 => ScramHash::Sha256,
        ScramMechanism::Sha512 => ScramHash::Sha512,
    }
}

fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    scram::hash(algo(m), data)
}

fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    scram::hmac(algo(m), key, data)
}

/// Hi(password, salt, i) of RFC 5802.
pub fn salted_password(
    m: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    scram::salted_password(algo(m), password, salt, iterations)
}

/// The credential a server keeps for a salted password.
pub fn credential(
    m: ScramMechanism,
    salted_password: &[u8],
    salt: &[u8],
    iterations: i32,
) -> ScramCredential {
    let client_key = hmac(m, salted_password, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(m, &client_key),
        server_key: hmac(m, salted_password, b"Server Key"),
        iterations,
    }
}

/// A SCRAM exchange after the client's first message: what the final message is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    mechanism: ScramMechanism,
    user: String,
    credential: ScramCredential,
    /// `c=` of the final message must be this (base64 of the GS2 header: no channel binding).
    channel_binding: String,
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

/// Why an exchange failed; the message goes back to the client.
pub type Refusal = String;

const INVALID_CREDENTIALS: &str =
    "Authentication failed during authentication due to invalid credentials";

/// Reads the client's first message (`n,,n=user,r=nonce`) and answers with the server's first
/// (`r=nonce+server nonce,s=salt,i=iterations`). `lookup` finds the user's credential.
pub fn client_first(
    m: ScramMechanism,
    message: &[u8],
    lookup: &dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
    server_nonce: &str,
) -> Result<(Exchange, Vec<u8>), Refusal> {
    let text = std::str::from_utf8(message).map_err(|_| "Invalid SCRAM client first message")?;
    // GS2 header: no channel binding ("n" or "y"), then an optional authorization id.
    let (flag, rest) = text
        .split_once(',')
        .ok_or("Invalid SCRAM client first message")?;
    if flag != "n" && flag != "y" {
        return Err("Channel binding is not supported".into());
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or("Invalid SCRAM client first message")?;
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or("Invalid SCRAM client first message: no user name")?;
    let user = unescape_name(user).ok_or("Invalid SCRAM user name")?;
    let client_nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty())
        .ok_or("Invalid SCRAM client first message: no nonce")?;
    // Extensions: Kafka's `tokenauth=true` asks for delegation tokens, which this broker does not issue.
    for extension in fields {
        if extension.starts_with("tokenauth=") {
            return Err("Delegation tokens are not supported".into());
        }
    }
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if unescape_name(authzid).as_deref() != Some(user.as_str()) {
            return Err(
                "Authentication failed: Client requested an authorization id that is different from username"
                    .into(),
            );
        }
    } else if !authzid.is_empty() {
        return Err("Invalid SCRAM client first message".into());
    }
    let credential = lookup(&user, m).ok_or("Authentication failed: Invalid user credentials")?;
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        STANDARD.encode(&credential.salt),
        credential.iterations
    );
    let exchange = Exchange {
        mechanism: m,
        user,
        credential,
        channel_binding: STANDARD.encode(format!("{flag},{authzid},")),
        nonce,
        client_first_bare: bare.to_owned(),
        server_first: server_first.clone(),
    };
    Ok((exchange, server_first.into_bytes()))
}

impl Exchange {
    /// Checks the client's final message (`c=…,r=…,p=proof`): the user and the server's final message
    /// (`v=signature`) when the proof is right.
    pub fn client_final(&self, message: &[u8]) -> Result<(String, Vec<u8>), Refusal> {
        let m = self.mechanism;
        let text =
            std::str::from_utf8(message).map_err(|_| "Invalid SCRAM client final message")?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or("Invalid SCRAM client final message: no proof")?;
        let mut fields = without_proof.split(',');
        if fields.next().and_then(|f| f.strip_prefix("c=")) != Some(self.channel_binding.as_str()) {
            return Err("Invalid SCRAM client final message: channel binding".into());
        }
        if fields.next().and_then(|f| f.strip_prefix("r=")) != Some(self.nonce.as_str()) {
            return Err("Invalid SCRAM client final message: nonce".into());
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| "Invalid SCRAM client final message: proof")?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(m, &self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(format!("{INVALID_CREDENTIALS} with SASL mechanism {m}"));
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !crate::sasl::constant_time_eq(&hash(m, &client_key), &self.credential.stored_key) {
            return Err(format!("{INVALID_CREDENTIALS} with SASL mechanism {m}"));
        }
        let server_signature = hmac(m, &self.credential.server_key, auth_message.as_bytes());
        Ok((
            self.user.clone(),
            format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        ))
    }
}

/// A `saslname`: `=2C` is ',' and `=3D` is '='; any other '=' is malformed.
fn unescape_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A fresh server nonce: printable, without ','.
pub fn server_nonce() -> String {
    let bytes: [u8; 24] = rand::random();
    STANDARD.encode(bytes)
}

/// A SCRAM client (`sluice_kafka_client::scram`) with a fixed nonce: for tests and the fuzz seeds.
pub struct Client(scram::ScramClient);

impl Client {
    /// The client and its first message.
    pub fn new(m: ScramMechanism, user: &str, password: &str) -> (Client, Vec<u8>) {
        let (client, first) = scram::ScramClient::new(algo(m), user, password, "clientnonce123");
        (Client(client), first)
    }

    /// The final message for the server's first, and the server's final message to expect.
    pub fn finish(&self, server_first: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        self.0.finish(server_first)
    }
}

#[cfg(test)]
pub mod tests {
    pub use super::Client;
    use super::*;

    pub fn stored(m: ScramMechanism, password: &str) -> ScramCredential {
        let salt = b"NaCl-salt".to_vec();
        credential(
            m,
            &salted_password(m, password.as_bytes(), &salt, 4096),
            &salt,
            4096,
        )
    }

    fn lookup(user: &str, m: ScramMechanism) -> Option<ScramCredential> {
        (user == "al,i=ce").then(|| stored(m, "pencil"))
    }

    #[test]
    fn rfc_7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil", SCRAM-SHA-256.
        let m = ScramMechanism::Sha256;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(m, b"pencil", &salt, 4096);
        let cred = credential(m, &salted, &salt, 4096);
        let find = |u: &str, _| (u == "user").then(|| cred.clone());
        let (exchange, server_first) = client_first(
            m,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            &find,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            server_first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, server_final) = exchange
            .client_final(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn both_mechanisms_authenticate_escaped_names_and_refuse_wrong_passwords() {
        for m in ScramMechanism::ALL {
            let (client, first) = Client::new(m, "al,i=ce", "pencil");
            let (exchange, server_first) =
                client_first(m, &first, &lookup, &server_nonce()).unwrap();
            let (last, expected) = client.finish(&server_first).unwrap();
            assert_eq!(
                exchange.client_final(&last).unwrap(),
                ("al,i=ce".into(), expected)
            );

            let (wrong, first) = Client::new(m, "al,i=ce", "pen");
            let (exchange, server_first) = client_first(m, &first, &lookup, "x").unwrap();
            let err = exchange
                .client_final(&wrong.finish(&server_first).unwrap().0)
                .unwrap_err();
            assert!(err.contains("invalid credentials"), "{err}");
        }
    }

    #[test]
    fn malformed_and_unknown_are_refused() {
        let m = ScramMechanism::Sha512;
        for first in [
            &b""[..],
            b"n",
            b"p=tls-unique,,n=al=2Ci=3Dce,r=x",
            b"n,,r=x",
            b"n,,n=al=2Ci=3Dce",
            b"n,,n=al=2Ci=3Dce,r=",
            b"n,,n=a=b,r=x",
            b"n,a=bob,n=al=2Ci=3Dce,r=x",
            b"n,,n=al=2Ci=3Dce,r=x,tokenauth=true",
            b"n,,n=mallory,r=x",
            b"\xff,,n=x,r=y",
        ] {
            assert!(client_first(m, first, &lookup, "s").is_err(), "{first:?}");
        }
        let (exchange, _) = client_first(m, b"n,,n=al=2Ci=3Dce,r=x", &lookup, "s").unwrap();
        for last in [
            &b""[..],
            b"c=biws,r=xs",
            b"c=biws,r=xs,p=!!",
            b"c=eSws,r=xs,p=AAAA",
            b"c=biws,r=other,p=AAAA",
            b"c=biws,r=xs,p=AAAA",
        ] {
            assert!(exchange.client_final(last).is_err(), "{last:?}");
        }
    }
}
