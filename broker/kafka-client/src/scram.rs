//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the primitives both sides share, and the client's
//! side of the exchange. The broker's server side (`sluice_server::scram`) is built on the same primitives.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac, pbkdf2};

/// The hash a SCRAM mechanism is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }
}

pub fn hash(h: ScramHash, data: &[u8]) -> Vec<u8> {
    let algorithm = match h {
        ScramHash::Sha256 => &digest::SHA256,
        ScramHash::Sha512 => &digest::SHA512,
    };
    digest::digest(algorithm, data).as_ref().to_vec()
}

pub fn hmac(h: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    let algorithm = match h {
        ScramHash::Sha256 => hmac::HMAC_SHA256,
        ScramHash::Sha512 => hmac::HMAC_SHA512,
    };
    hmac::sign(&hmac::Key::new(algorithm, key), data)
        .as_ref()
        .to_vec()
}

/// Hi(password, salt, i) of RFC 5802: PBKDF2 with the mechanism's HMAC, one block long.
pub fn salted_password(h: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let (algorithm, len) = match h {
        ScramHash::Sha256 => (pbkdf2::PBKDF2_HMAC_SHA256, 32),
        ScramHash::Sha512 => (pbkdf2::PBKDF2_HMAC_SHA512, 64),
    };
    let mut out = vec![0u8; len];
    let iterations = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(algorithm, iterations, salt, password, &mut out);
    out
}

/// The client's side of one exchange.
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    nonce: String,
    first_bare: String,
}

impl ScramClient {
    /// The client and its first message (`n,,n=user,r=nonce`).
    pub fn new(hash: ScramHash, user: &str, password: &str, nonce: &str) -> (ScramClient, Vec<u8>) {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let first_bare = format!("n={name},r={nonce}");
        let first = format!("n,,{first_bare}").into_bytes();
        let client = ScramClient {
            hash,
            password: password.into(),
            nonce: nonce.to_owned(),
            first_bare,
        };
        (client, first)
    }

    /// The final message for the server's first, and the server's final message to expect; `None` if the
    /// server's first message is malformed or does not extend this client's nonce.
    pub fn finish(&self, server_first: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let h = self.hash;
        let server_first = std::str::from_utf8(server_first).ok()?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for f in server_first.split(',') {
            match f.split_at_checked(2)? {
                ("r=", v) => nonce = Some(v),
                ("s=", v) => salt = STANDARD.decode(v).ok(),
                ("i=", v) => iterations = v.parse().ok(),
                _ => {}
            }
        }
        let (nonce, salt, iterations) = (nonce?, salt?, iterations?);
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return None;
        }
        let salted = salted_password(h, self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{server_first},{without_proof}", self.first_bare);
        let client_key = hmac(h, &salted, b"Client Key");
        let signature = hmac(h, &hash(h, &client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(h, &salted, b"Server Key");
        Some((
            format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes(),
            format!(
                "v={}",
                STANDARD.encode(hmac(h, &server_key, auth.as_bytes()))
            )
            .into_bytes(),
        ))
    }
}
