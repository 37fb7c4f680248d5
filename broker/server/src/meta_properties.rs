//! `meta.properties`: the identity stamp in each log dir, in Kafka's KRaft (version 1) format.
//!
//! Kafka requires `kafka-storage format` before first start; Sluice formats a log dir itself when
//! it has no `meta.properties`, so a fresh volume needs no init step. Once stamped, a dir only
//! starts for the same cluster id and node id, which catches volumes attached to the wrong pod.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::config::{parse_properties, validate_cluster_id};
use crate::error::Error;

pub const META_PROPERTIES_FILE: &str = "meta.properties";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
    pub directory_id: String,
}

/// Makes sure every log dir exists and is formatted for `node_id` and one common cluster id,
/// formatting those that are not. The cluster id is `cluster_id` if given, else the one already
/// in the dirs, else a new random one. Returns the first log dir's properties.
///
/// Every dir is checked before any is written, so a refusal leaves the disks untouched.
pub fn ensure_formatted(
    log_dirs: &[PathBuf],
    node_id: i32,
    cluster_id: Option<&str>,
) -> Result<MetaProperties, Error> {
    ensure_formatted_with(log_dirs, node_id, cluster_id, None)
}

/// Whether any of `log_dirs` holds a `meta.properties` (this node started before).
pub fn is_formatted(log_dirs: &[PathBuf]) -> Result<bool, Error> {
    for dir in log_dirs {
        if read(dir)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// As `ensure_formatted`; a fresh first log dir (where the metadata log lives) gets `first_directory_id`, as
/// `kafka-storage format --initial-controllers` gives each controller the directory id the list names.
pub fn ensure_formatted_with(
    log_dirs: &[PathBuf],
    node_id: i32,
    cluster_id: Option<&str>,
    first_directory_id: Option<uuid::Uuid>,
) -> Result<MetaProperties, Error> {
    if log_dirs.is_empty() {
        return Err(Error::config(
            "log.dirs",
            "must name at least one directory",
        ));
    }
    let configured = cluster_id
        .map(|id| validate_cluster_id("cluster.id", id))
        .transpose()?;

    let mut existing = Vec::with_capacity(log_dirs.len());
    for dir in log_dirs {
        fs::create_dir_all(dir).map_err(Error::path_io(dir))?;
        existing.push(read(dir)?);
    }

    // (cluster id, where it came from) — the source goes into the mismatch error.
    let mut expected: Option<(String, String)> =
        configured.map(|id| (id, "set in the configuration".to_owned()));
    for (dir, meta) in log_dirs.iter().zip(&existing) {
        let Some(meta) = meta else { continue };
        if meta.node_id != node_id {
            return Err(Error::NodeIdMismatch {
                dir: dir.clone(),
                found: meta.node_id,
                expected: node_id,
            });
        }
        match &expected {
            Some((id, why)) if *id != meta.cluster_id => {
                return Err(Error::ClusterIdMismatch {
                    dir: dir.clone(),
                    found: meta.cluster_id.clone(),
                    expected: id.clone(),
                    why: why.clone(),
                });
            }
            Some(_) => {}
            None => {
                expected = Some((
                    meta.cluster_id.clone(),
                    format!("log dir {} is formatted for it", dir.display()),
                ))
            }
        }
    }
    let cluster_id = match expected {
        Some((id, _)) => id,
        None => random_kafka_uuid(),
    };

    let mut first = None;
    for (dir, meta) in log_dirs.iter().zip(existing) {
        let meta = match meta {
            Some(Stored {
                directory_id: Some(directory_id),
                ..
            }) => MetaProperties {
                cluster_id: cluster_id.clone(),
                node_id,
                directory_id,
            },
            // Files written before Kafka 3.7 lack directory.id; Kafka adds one on start too.
            Some(Stored {
                directory_id: None, ..
            }) => write_new(dir, &cluster_id, node_id, random_kafka_uuid())?,
            None => {
                warn_if_not_empty(dir);
                tracing::info!(dir = %dir.display(), %cluster_id, node_id, "formatting log dir");
                let directory_id = match first_directory_id {
                    Some(id) if first.is_none() => kafka_uuid(&id),
                    _ => random_kafka_uuid(),
                };
                write_new(dir, &cluster_id, node_id, directory_id)?
            }
        };
        first.get_or_insert(meta);
    }
    first.ok_or_else(|| Error::config("log.dirs", "must name at least one directory"))
}

/// What a log dir's `meta.properties` holds.
struct Stored {
    cluster_id: String,
    node_id: i32,
    directory_id: Option<String>,
}

/// The directory id of a formatted log dir (`None` if it is not formatted or has none).
pub fn directory_id(dir: &Path) -> Result<Option<uuid::Uuid>, Error> {
    Ok(read(dir)?
        .and_then(|s| s.directory_id)
        .and_then(|d| parse_kafka_uuid(&d)))
}

fn read(dir: &Path) -> Result<Option<Stored>, Error> {
    let path = dir.join(META_PROPERTIES_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::path_io(path)(e)),
    };
    let malformed = |message: String| Error::Format(format!("{}: {message}", path.display()));
    let props = parse_properties(&text).map_err(|e| malformed(e.to_string()))?;
    match props.get("version").map(String::as_str) {
        Some("1") => {}
        Some("0") => {
            return Err(malformed(
                "version 0 is a ZooKeeper-mode log dir, which is not supported".to_owned(),
            ));
        }
        other => return Err(malformed(format!("unsupported version {other:?}"))),
    }
    let cluster_id = props
        .get("cluster.id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| malformed("cluster.id is missing".to_owned()))?
        .clone();
    let node_id = props
        .get("node.id")
        .ok_or_else(|| malformed("node.id is missing".to_owned()))?;
    let node_id = node_id
        .parse()
        .map_err(|_| malformed(format!("node.id \"{node_id}\" is not an integer")))?;
    Ok(Some(Stored {
        cluster_id,
        node_id,
        directory_id: props
            .get("directory.id")
            .filter(|id| !id.is_empty())
            .cloned(),
    }))
}

fn write_new(
    dir: &Path,
    cluster_id: &str,
    node_id: i32,
    directory_id: String,
) -> Result<MetaProperties, Error> {
    let meta = MetaProperties {
        cluster_id: cluster_id.to_owned(),
        node_id,
        directory_id,
    };
    let text = format!(
        "#\n#Written by Sluice\nversion=1\ncluster.id={}\nnode.id={}\ndirectory.id={}\n",
        meta.cluster_id, meta.node_id, meta.directory_id
    );
    write_atomically(dir, META_PROPERTIES_FILE, text.as_bytes())?;
    Ok(meta)
}

/// Writes via a temporary file, fsync and rename so a crash leaves either the old file or the
/// complete new one, then fsyncs the directory so the rename itself survives a crash.
fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = File::create(&tmp).map_err(Error::path_io(&tmp))?;
    file.write_all(contents).map_err(Error::path_io(&tmp))?;
    file.sync_all().map_err(Error::path_io(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(Error::path_io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::path_io(dir))?;
    Ok(())
}

/// Formatting proceeds anyway (a fresh volume often holds `lost+found`), but leftover data
/// without a meta.properties is worth a look.
fn warn_if_not_empty(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let others: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lost+found" && !name.starts_with('.'))
        .collect();
    if !others.is_empty() {
        tracing::warn!(dir = %dir.display(), entries = ?others, "formatting a log dir that is not empty");
    }
}

/// A random UUID in Kafka's text form: 22 characters of unpadded base64url. Like Kafka, avoid
/// ids starting with '-', which command-line tools would take for an option.
pub fn random_kafka_uuid() -> String {
    loop {
        let id = base64url(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// A given UUID in Kafka's text form.
pub fn kafka_uuid(id: &uuid::Uuid) -> String {
    base64url(id.as_bytes())
}

/// A UUID from Kafka's text form (`kafka_uuid`'s inverse); `None` if it is not 22 base64url characters.
pub fn parse_kafka_uuid(text: &str) -> Option<uuid::Uuid> {
    if text.len() != 22 {
        return None;
    }
    let mut bits: u128 = 0;
    for (i, c) in text.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u128;
        if i < 21 {
            bits = (bits << 6) | v;
        } else {
            // The last character carries the final 2 bits; its low 4 bits are padding and must be zero.
            if v & 0xf != 0 {
                return None;
            }
            bits = (bits << 2) | (v >> 4);
        }
    }
    Some(uuid::Uuid::from_u128(bits))
}

/// Unpadded base64url (RFC 4648 §5).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        // 1 byte -> 2 characters, 2 -> 3, 3 -> 4.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_uuids_read_back_as_written() {
        for _ in 0..100 {
            let id = uuid::Uuid::new_v4();
            assert_eq!(parse_kafka_uuid(&kafka_uuid(&id)), Some(id));
        }
        assert_eq!(
            parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAAA"),
            Some(uuid::Uuid::nil())
        );
        for bad in [
            "",
            "AAAA",
            "AAAAAAAAAAAAAAAAAAAAAB",
            "AAAAAAAAAAAAAAAAAAAA!A",
        ] {
            assert_eq!(parse_kafka_uuid(bad), None, "{bad}");
        }
    }

    const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qk";

    fn meta_file(dir: &Path) -> String {
        fs::read_to_string(dir.join(META_PROPERTIES_FILE)).unwrap()
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff], "-_8"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64url(input), *expected, "{input:?}");
        }
    }

    #[test]
    fn random_ids_look_like_kafka_uuids() {
        let a = random_kafka_uuid();
        let b = random_kafka_uuid();
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
        }
    }

    #[test]
    fn fresh_dir_is_formatted_and_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("missing/data");
        let meta = ensure_formatted(std::slice::from_ref(&dir), 3, None).unwrap();
        assert_eq!(meta.node_id, 3);
        assert_eq!(meta.cluster_id.len(), 22);
        assert_eq!(meta.directory_id.len(), 22);
        let props = parse_properties(&meta_file(&dir)).unwrap();
        assert_eq!(props["version"], "1");
        assert_eq!(props["cluster.id"], meta.cluster_id);
        assert_eq!(props["node.id"], "3");
        assert_eq!(props["directory.id"], meta.directory_id);
        assert!(!dir.join("meta.properties.tmp").exists());

        let again = ensure_formatted(std::slice::from_ref(&dir), 3, None).unwrap();
        assert_eq!(again, meta);
        let with_id =
            ensure_formatted(std::slice::from_ref(&dir), 3, Some(&meta.cluster_id)).unwrap();
        assert_eq!(with_id, meta);
    }

    #[test]
    fn configured_cluster_id_is_used_for_a_fresh_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [tmp.path().to_path_buf()];
        // A fresh volume's lost+found does not stop formatting.
        fs::create_dir(tmp.path().join("lost+found")).unwrap();
        let meta = ensure_formatted(&dirs, 1, Some(CLUSTER)).unwrap();
        assert_eq!(meta.cluster_id, CLUSTER);
        let err = ensure_formatted(&dirs, 1, Some("not valid!"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.id"), "{err}");
    }

    #[test]
    fn other_cluster_or_node_is_refused_and_left_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [tmp.path().to_path_buf()];
        ensure_formatted(&dirs, 1, Some(CLUSTER)).unwrap();
        let before = meta_file(tmp.path());

        let err = ensure_formatted(&dirs, 1, Some("AAAAAAAAAAAAAAAAAAAAAA")).unwrap_err();
        assert!(matches!(err, Error::ClusterIdMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(CLUSTER) && msg.contains("AAAAAAAAAAAAAAAAAAAAAA"),
            "{msg}"
        );

        let err = ensure_formatted(&dirs, 2, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NodeIdMismatch {
                    found: 1,
                    expected: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("node id 1") && msg.contains("node.id is 2"),
            "{msg}"
        );

        assert_eq!(meta_file(tmp.path()), before);
    }

    #[test]
    fn multiple_dirs_share_one_cluster_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|d| tmp.path().join(d)).collect();
        let first = ensure_formatted(&dirs, 5, None).unwrap();
        let mut directory_ids = std::collections::BTreeSet::new();
        for dir in &dirs {
            let props = parse_properties(&meta_file(dir)).unwrap();
            assert_eq!(props["cluster.id"], first.cluster_id);
            assert_eq!(props["node.id"], "5");
            directory_ids.insert(props["directory.id"].clone());
        }
        assert_eq!(directory_ids.len(), 3, "each dir gets its own directory.id");

        // A dir added later joins the existing cluster.
        let mut more = dirs.clone();
        more.push(tmp.path().join("d"));
        let again = ensure_formatted(&more, 5, None).unwrap();
        assert_eq!(again, first);
        assert_eq!(
            parse_properties(&meta_file(&more[3])).unwrap()["cluster.id"],
            first.cluster_id
        );
    }

    #[test]
    fn dirs_from_different_clusters_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        let fresh = tmp.path().join("fresh");
        ensure_formatted(std::slice::from_ref(&a), 1, None).unwrap();
        ensure_formatted(std::slice::from_ref(&b), 1, None).unwrap();
        let err = ensure_formatted(&[fresh.clone(), a.clone(), b.clone()], 1, None).unwrap_err();
        assert!(matches!(err, Error::ClusterIdMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&*a.to_string_lossy()) && msg.contains(&*b.to_string_lossy()),
            "{msg}"
        );
        assert!(!fresh.join(META_PROPERTIES_FILE).exists());
    }

    #[test]
    fn older_or_foreign_files_are_handled() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [tmp.path().to_path_buf()];
        let path = tmp.path().join(META_PROPERTIES_FILE);

        // Written by Kafka before 3.7: no directory.id yet, so one is added.
        fs::write(
            &path,
            format!("#\nversion=1\ncluster.id={CLUSTER}\nnode.id=4\n"),
        )
        .unwrap();
        let meta = ensure_formatted(&dirs, 4, None).unwrap();
        assert_eq!(meta.cluster_id, CLUSTER);
        assert_eq!(meta.directory_id.len(), 22);
        assert_eq!(
            parse_properties(&meta_file(tmp.path())).unwrap()["directory.id"],
            meta.directory_id
        );

        let cases: &[(&str, &str)] = &[
            ("version=0\nbroker.id=4\ncluster.id=x\n", "ZooKeeper"),
            (
                "version=2\ncluster.id=x\nnode.id=4\n",
                "unsupported version",
            ),
            ("version=1\nnode.id=4\n", "cluster.id is missing"),
            (
                "version=1\ncluster.id=x\nnode.id=four\n",
                "node.id \"four\"",
            ),
        ];
        for (text, needle) in cases {
            fs::write(&path, text).unwrap();
            let err = ensure_formatted(&dirs, 4, None).unwrap_err().to_string();
            assert!(
                err.contains(needle) && err.contains("meta.properties"),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn no_log_dirs_is_an_error() {
        let err = ensure_formatted(&[], 1, None).unwrap_err().to_string();
        assert!(err.contains("log.dirs"), "{err}");
    }
}
